# The CUDA fixture's kernel on the GPU against the same sum on the CPU.
import cudafix

x = [float(i) for i in range(1000)]
y = [1.0] * len(x)
gpu = cudafix.axpy(2.0, x, y)
cpu = [2.0 * a + b for a, b in zip(x, y, strict=True)]
assert gpu == cpu, f"GPU and CPU differ: {gpu[:4]} vs {cpu[:4]}"
print(f"cudafix.axpy on the GPU matches the CPU ({len(x)} values)")
