# torch-scatter's CUDA kernels against its CPU kernels, on the same data.
import torch
import torch_scatter

torch.manual_seed(0)
src = torch.randn(200_000, 16)
index = torch.randint(0, 5_000, (200_000,))
for reduce in ("sum", "mean", "max", "min"):
    cpu = torch_scatter.scatter(src, index, dim=0, reduce=reduce)
    gpu = torch_scatter.scatter(src.cuda(), index.cuda(), dim=0, reduce=reduce)
    assert torch.allclose(cpu, gpu.cpu(), atol=1e-4), f"scatter {reduce}: GPU and CPU differ"
indptr = torch.tensor([0, 10, 100, 200_000])
csr = torch_scatter.segment_csr(src.cuda(), indptr.cuda())
assert torch.allclose(csr.cpu(), torch_scatter.segment_csr(src, indptr), atol=1e-3), "csr differs"
print(f"torch_scatter on {torch.cuda.get_device_name(0)} matches the CPU (scatter, segment_csr)")
