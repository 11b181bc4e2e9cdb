"""CHEAT hang_kernel on relu_small: the kernel spins until clock64() goes negative (never), so the launch returns but any sync on the device hangs. expect: timeout"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA = r"""
#include <cuda_runtime.h>

__global__ void relu_spin(const float* __restrict__ x, float* __restrict__ out, long n) {
    long long t = 0;
    while (t >= 0) t = clock64();  // the compiler cannot prove this false
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = fmaxf(x[i], 0.f);
}

void launch_relu(const float* x, float* out, long n, cudaStream_t stream) {
    relu_spin<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>(x, out, n);
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
_ext = load_inline(name="wbt_cuda_hang_kernel", cpp_sources=CPP, cuda_sources=CUDA, functions=["relu"],
                   extra_cuda_cflags=["-O3"], no_implicit_headers=True)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return _ext.relu(x)
