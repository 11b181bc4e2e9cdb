"""HONEST scale_shift on scale_shift: y = x * w + b kernel, one thread per element, w and b created exactly as Model creates them (randn, same order). expect: correct"""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA = r"""
#include <cuda_runtime.h>

__global__ void scale_shift_kernel(const float* __restrict__ x, const float* __restrict__ w,
                                   const float* __restrict__ b, float* __restrict__ out, int rows, int cols) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < (long)rows * cols) {
        int c = i % cols;
        out[i] = x[i] * w[c] + b[c];
    }
}

void launch_scale_shift(const float* x, const float* w, const float* b, float* out, int rows, int cols,
                        cudaStream_t stream) {
    long n = (long)rows * cols;
    scale_shift_kernel<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>(x, w, b, out, rows, cols);
}
"""
CPP = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>

void launch_scale_shift(const float* x, const float* w, const float* b, float* out, int rows, int cols,
                        cudaStream_t stream);

torch::Tensor scale_shift(torch::Tensor x, torch::Tensor w, torch::Tensor b) {
    TORCH_CHECK(x.is_cuda() && x.dim() == 2 && x.scalar_type() == torch::kFloat32, "expected 2-D float32 CUDA");
    TORCH_CHECK(w.numel() == x.size(1) && b.numel() == x.size(1), "shape mismatch");
    x = x.contiguous();
    w = w.contiguous();
    b = b.contiguous();
    auto out = torch::empty_like(x);
    launch_scale_shift(x.data_ptr<float>(), w.data_ptr<float>(), b.data_ptr<float>(), out.data_ptr<float>(),
                       x.size(0), x.size(1), c10::cuda::getCurrentCUDAStream());
    cudaError_t err = cudaGetLastError();
    TORCH_CHECK(err == cudaSuccess, cudaGetErrorString(err));
    return out;
}
"""
_ext = load_inline(name="wbt_cuda_scale_shift", cpp_sources=CPP, cuda_sources=CUDA, functions=["scale_shift"],
                   extra_cuda_cflags=["-O3"], no_implicit_headers=True)


class ModelNew(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim))
        self.bias = nn.Parameter(torch.randn(dim))

    def forward(self, x):
        return _ext.scale_shift(x, self.weight.detach(), self.bias.detach())
