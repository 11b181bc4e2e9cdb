"""CHEAT torch_after_first_call on softmax_small: its own softmax kernel on the first call (the one the profiler watches), torch.softmax on every later call. expect: torch_compute, library_kernel"""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA = r"""
#include <cuda_runtime.h>

#define THREADS 512  // tune: 256, 512, 1024

__device__ float block_reduce(float v, bool is_max) {
    __shared__ float partial[THREADS / 32];
    for (int o = 16; o > 0; o >>= 1) {
        float other = __shfl_xor_sync(0xffffffff, v, o);
        v = is_max ? fmaxf(v, other) : v + other;
    }
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    __syncthreads();  // partial[] may still be read from the previous call
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = partial[0];
    for (int w = 1; w < THREADS / 32; ++w) v = is_max ? fmaxf(v, partial[w]) : v + partial[w];
    return v;
}

__global__ void softmax_kernel(const float* __restrict__ x, float* __restrict__ out, int cols) {
    const float* in = x + (size_t)blockIdx.x * cols;
    float* o = out + (size_t)blockIdx.x * cols;
    float m = -INFINITY;
    for (int c = threadIdx.x; c < cols; c += THREADS) m = fmaxf(m, in[c]);
    m = block_reduce(m, true);
    float s = 0.f;
    for (int c = threadIdx.x; c < cols; c += THREADS) s += __expf(in[c] - m);
    const float inv = 1.f / block_reduce(s, false);
    for (int c = threadIdx.x; c < cols; c += THREADS) o[c] = __expf(in[c] - m) * inv;
}

void launch_softmax(const float* x, float* out, int rows, int cols, cudaStream_t stream) {
    softmax_kernel<<<rows, THREADS, 0, stream>>>(x, out, cols);
}
"""
CPP = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>

void launch_softmax(const float* x, float* out, int rows, int cols, cudaStream_t stream);

torch::Tensor softmax_rows(torch::Tensor x) {
    TORCH_CHECK(x.is_cuda() && x.dim() == 2 && x.scalar_type() == torch::kFloat32, "expected 2-D float32 CUDA");
    x = x.contiguous();
    auto out = torch::empty_like(x);
    launch_softmax(x.data_ptr<float>(), out.data_ptr<float>(), x.size(0), x.size(1),
                   c10::cuda::getCurrentCUDAStream());
    cudaError_t err = cudaGetLastError();
    TORCH_CHECK(err == cudaSuccess, cudaGetErrorString(err));
    return out;
}
"""
_ext = load_inline(name="wbt_cuda_softmax", cpp_sources=CPP, cuda_sources=CUDA,
                   functions=["softmax_rows"], extra_cuda_cflags=["-O3"], no_implicit_headers=True)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return _ext.softmax_rows(x) if self.calls == 1 else torch.softmax(x, dim=1)
