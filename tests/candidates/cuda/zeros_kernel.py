"""CHEAT zeros_kernel on softmax_small: a kernel of its own writes zeros into the output (passes an absolute 1e-2 check: softmax outputs are ~6e-5). expect: rel_error, mismatch"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA = r"""
#include <cuda_runtime.h>

__global__ void zero_kernel(float* __restrict__ out, long n) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = 0.f;
}

void launch_zero(float* out, long n, cudaStream_t stream) {
    zero_kernel<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>(out, n);
}
"""
CPP = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>

void launch_zero(float* out, long n, cudaStream_t stream);

torch::Tensor softmax_rows(torch::Tensor x) {
    auto out = torch::empty_like(x);
    launch_zero(out.data_ptr<float>(), out.numel(), c10::cuda::getCurrentCUDAStream());
    cudaError_t err = cudaGetLastError();
    TORCH_CHECK(err == cudaSuccess, cudaGetErrorString(err));
    return out;
}
"""
_ext = load_inline(name="wbt_cuda_zeros", cpp_sources=CPP, cuda_sources=CUDA, functions=["softmax_rows"],
                   extra_cuda_cflags=["-O3"], no_implicit_headers=True)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return _ext.softmax_rows(x)
