# The torch CUDA fixture's kernel against the same sum computed by torch on the CPU.
import torch
import torchcudafix

torch.manual_seed(0)
x, y = torch.randn(1_000_000), torch.randn(1_000_000)
gpu = torchcudafix.axpy(2.5, x.cuda(), y.cuda()).cpu()
assert torch.allclose(gpu, 2.5 * x + y, atol=1e-5), "GPU and CPU differ"
print(f"torchcudafix.axpy on {torch.cuda.get_device_name(0)} matches the CPU (1e6 values)")
