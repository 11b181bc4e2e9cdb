"""CHEAT illegal_address on relu_small: the relu kernel writes each result 2^40 floats (4 TiB) past the output, far outside any allocation: an illegal-address fault that poisons the CUDA context. expect: crash"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA = r"""
#include <cuda_runtime.h>

__global__ void relu_oob(const float* __restrict__ x, float* __restrict__ out, long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i + (1L << 40)] = fmaxf(x[i], 0.f);
}

void launch_relu(const float* x, float* out, long n, cudaStream_t stream) {
    relu_oob<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>(x, out, n);
}
"""
CPP = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>

void launch_relu(const float* x, float* out, long n, cudaStream_t stream);

torch::Tensor relu(torch::Tensor x) {
    x = x.contiguous();
    auto out = torch::empty_like(x);
    launch_relu(x.data_ptr<float>(), out.data_ptr<float>(), x.numel(), c10::cuda::getCurrentCUDAStream());
    cudaError_t err = cudaGetLastError();
    TORCH_CHECK(err == cudaSuccess, cudaGetErrorString(err));
    return out;
}
"""
_ext = load_inline(name="wbt_cuda_illegal_address", cpp_sources=CPP, cuda_sources=CUDA, functions=["relu"],
                   extra_cuda_cflags=["-O3"], no_implicit_headers=True)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return _ext.relu(x)
