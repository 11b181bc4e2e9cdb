"""GELU (tanh approximation), elementwise with float4 loads and streaming stores.

Uses the identity 0.5 * x * (1 + tanh(u)) = x / (1 + exp(-2u)), u = sqrt(2/pi) * (x + 0.044715 x^3),
which needs one fast exp and one fast divide instead of a full-precision tanhf, so the kernel
stays memory-bound. Each thread loads VEC_PER_THREAD float4s before computing any, to keep
enough loads in flight; loads and stores are marked streaming since nothing is reused.
"""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA_SRC = r"""
#include <cuda_runtime.h>
#include <stdint.h>

#define THREADS 256        // tune: 128, 256, 512, 1024
#define VEC_PER_THREAD 4   // tune: 1, 2, 4, 8

__device__ __forceinline__ float gelu_tanh(float x) {
    const float k0 = 0.7978845608028654f;   // sqrt(2 / pi)
    const float k1 = 0.044715f;
    float u = k0 * fmaf(k1 * x, x * x, x);
    // exp(-2u) overflows to inf for very negative x; x / inf -> 0 is the right limit.
    return __fdividef(x, 1.f + __expf(-2.f * u));
}

__global__ void __launch_bounds__(THREADS) gelu_vec4_kernel(const float4* __restrict__ x,
                                                            float4* __restrict__ y, int64_t n4) {
    const int64_t base = (int64_t)blockIdx.x * THREADS * VEC_PER_THREAD + threadIdx.x;
    float4 v[VEC_PER_THREAD];
    #pragma unroll
    for (int j = 0; j < VEC_PER_THREAD; ++j) {
        int64_t i = base + (int64_t)j * THREADS;
        if (i < n4) v[j] = __ldcs(x + i);
    }
    #pragma unroll
    for (int j = 0; j < VEC_PER_THREAD; ++j) {
        int64_t i = base + (int64_t)j * THREADS;
        if (i < n4) {
            float4 r;
            r.x = gelu_tanh(v[j].x);
            r.y = gelu_tanh(v[j].y);
            r.z = gelu_tanh(v[j].z);
            r.w = gelu_tanh(v[j].w);
            __stcs(y + i, r);
        }
    }
}

// Elements past the last full float4 (n % 4 of them).
__global__ void gelu_tail_kernel(const float* __restrict__ x, float* __restrict__ y, int64_t start, int64_t n) {
    int64_t i = start + threadIdx.x;
    if (i < n) y[i] = gelu_tanh(x[i]);
}

void launch_gelu(const float* x, float* y, int64_t n, cudaStream_t stream) {
    int64_t n4 = n / 4;
    if (n4 > 0) {
        int64_t per_block = (int64_t)THREADS * VEC_PER_THREAD;
        int64_t blocks = (n4 + per_block - 1) / per_block;
        gelu_vec4_kernel<<<(unsigned)blocks, THREADS, 0, stream>>>(
            reinterpret_cast<const float4*>(x), reinterpret_cast<float4*>(y), n4);
    }
    if (n % 4) gelu_tail_kernel<<<1, 4, 0, stream>>>(x, y, n4 * 4, n);
}
"""

CPP_SRC = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
#include <cstdint>

void launch_gelu(const float* x, float* y, int64_t n, cudaStream_t stream);

torch::Tensor gelu_tanh_forward(torch::Tensor x) {
    TORCH_CHECK(x.is_cuda(), "x must be a CUDA tensor");
    TORCH_CHECK(x.scalar_type() == torch::kFloat32, "x must be float32");
    TORCH_CHECK(x.is_contiguous(), "x must be contiguous");
    TORCH_CHECK(reinterpret_cast<std::uintptr_t>(x.data_ptr()) % 16 == 0, "x must be 16-byte aligned");
    auto y = torch::empty_like(x);
    if (x.numel() == 0) return y;
    launch_gelu(x.data_ptr<float>(), y.data_ptr<float>(), x.numel(), c10::cuda::getCurrentCUDAStream());
    cudaError_t err = cudaGetLastError();
    TORCH_CHECK(err == cudaSuccess, "gelu kernel launch failed: ", cudaGetErrorString(err));
    return y;
}
"""

_ext = load_inline(
    name="gelu_vec4_sigmoid",
    cpp_sources=[CPP_SRC],
    cuda_sources=[CUDA_SRC],
    functions=["gelu_tanh_forward"],
    no_implicit_headers=True,
    extra_cuda_cflags=["-O3"],
    verbose=False,
)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ext.gelu_tanh_forward(x.contiguous())
