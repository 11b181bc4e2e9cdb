"""LayerNorm over a large normalised shape, split across many blocks per sample (two kernels).

torch eager gives each normalised row (4M elements here) a single block, so only 16 blocks run.
Here kernel 1 splits every sample over STATS_BLOCKS blocks; each writes a partial (sum, sum of
squares) of x - K, where K is the sample's first element: shifting by a value from the data keeps
the one-pass variance free of cancellation even when the mean is large against the spread.
Kernel 2 has every block fold its sample's partials in double (cheap: a few hundred numbers),
then writes (x - mean) * rstd * weight + bias with float4 loads. Block x-index is the sample, so
the 16 blocks sharing one weight/bias chunk run together and that chunk is read from L2.
"""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA_SRC = r"""
#include <cuda_runtime.h>
#include <stdint.h>

#define STATS_BLOCKS 128      // tune: 32, 64, 128, 256, 512
#define STATS_THREADS 256     // tune: 128, 256, 512
#define NORM_THREADS 256      // tune: 128, 256, 512
#define NORM_VEC_PER_THREAD 4 // tune: 1, 2, 4, 8

template <int NT>
__device__ __forceinline__ float2 block_sum2(float2 v) {
    __shared__ float2 part[NT / 32];
    #pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        v.x += __shfl_xor_sync(0xffffffffu, v.x, o);
        v.y += __shfl_xor_sync(0xffffffffu, v.y, o);
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) part[warp] = v;
    __syncthreads();
    float2 t = make_float2(0.f, 0.f);
    if (warp == 0) {
        t = lane < NT / 32 ? part[lane] : make_float2(0.f, 0.f);
        #pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            t.x += __shfl_xor_sync(0xffffffffu, t.x, o);
            t.y += __shfl_xor_sync(0xffffffffu, t.y, o);
        }
    }
    return t;  // valid in thread 0
}

// grid (STATS_BLOCKS, N): partial sums of (x - K) and (x - K)^2 over one chunk of a sample.
__global__ void __launch_bounds__(STATS_THREADS) ln_stats_kernel(const float* __restrict__ x,
                                                                 float2* __restrict__ partial, int64_t d) {
    const int64_t sample = blockIdx.y;
    const float* xs = x + sample * d;
    const float4* x4 = reinterpret_cast<const float4*>(xs);
    const int64_t d4 = d / 4;
    const int64_t chunk = (d4 + STATS_BLOCKS - 1) / STATS_BLOCKS;
    const int64_t begin = blockIdx.x * chunk;
    const int64_t end = begin + chunk < d4 ? begin + chunk : d4;
    const float k = __ldg(xs);
    float s = 0.f, q = 0.f;
    #pragma unroll 4
    for (int64_t i = begin + threadIdx.x; i < end; i += STATS_THREADS) {
        float4 v = x4[i];
        float a = v.x - k, b = v.y - k, c = v.z - k, e = v.w - k;
        s += (a + b) + (c + e);
        q = fmaf(a, a, fmaf(b, b, fmaf(c, c, fmaf(e, e, q))));
    }
    float2 t = block_sum2<STATS_THREADS>(make_float2(s, q));
    if (threadIdx.x == 0) partial[sample * STATS_BLOCKS + blockIdx.x] = t;
}

// grid (N, chunks): y = (x - mean) * rstd * w + b.
__global__ void __launch_bounds__(NORM_THREADS) ln_norm_kernel(const float* __restrict__ x,
        const float* __restrict__ w, const float* __restrict__ bias, const float2* __restrict__ partial,
        float* __restrict__ y, int64_t d, float eps) {
    __shared__ float stats[2];
    const int64_t sample = blockIdx.x;
    if (threadIdx.x < 32) {
        double s = 0.0, q = 0.0;
        for (int i = threadIdx.x; i < STATS_BLOCKS; i += 32) {
            float2 p = partial[sample * STATS_BLOCKS + i];
            s += p.x;
            q += p.y;
        }
        #pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            s += __shfl_xor_sync(0xffffffffu, s, o);
            q += __shfl_xor_sync(0xffffffffu, q, o);
        }
        if (threadIdx.x == 0) {
            double mean_shift = s / (double)d;
            double var = q / (double)d - mean_shift * mean_shift;  // biased variance, as LayerNorm
            if (var < 0.0) var = 0.0;
            stats[0] = (float)((double)__ldg(x + sample * d) + mean_shift);
            stats[1] = (float)(1.0 / sqrt(var + (double)eps));
        }
    }
    __syncthreads();
    const float mean = stats[0], rstd = stats[1];
    const float4* x4 = reinterpret_cast<const float4*>(x + sample * d);
    float4* y4 = reinterpret_cast<float4*>(y + sample * d);
    const float4* w4 = reinterpret_cast<const float4*>(w);
    const float4* b4 = reinterpret_cast<const float4*>(bias);
    const int64_t d4 = d / 4;
    const int64_t base = (int64_t)blockIdx.y * NORM_THREADS * NORM_VEC_PER_THREAD + threadIdx.x;
    float4 v[NORM_VEC_PER_THREAD];
    #pragma unroll
    for (int j = 0; j < NORM_VEC_PER_THREAD; ++j) {
        int64_t i = base + (int64_t)j * NORM_THREADS;
        if (i < d4) v[j] = __ldcs(x4 + i);  // last read of x
    }
    #pragma unroll
    for (int j = 0; j < NORM_VEC_PER_THREAD; ++j) {
        int64_t i = base + (int64_t)j * NORM_THREADS;
        if (i < d4) {
            float4 g = __ldg(w4 + i), bb = __ldg(b4 + i), r;
            r.x = fmaf((v[j].x - mean) * rstd, g.x, bb.x);
            r.y = fmaf((v[j].y - mean) * rstd, g.y, bb.y);
            r.z = fmaf((v[j].z - mean) * rstd, g.z, bb.z);
            r.w = fmaf((v[j].w - mean) * rstd, g.w, bb.w);
            __stcs(y4 + i, r);
        }
    }
}

int ln_stats_blocks() { return STATS_BLOCKS; }

void launch_layernorm(const float* x, const float* w, const float* b, float* partial, float* y,
                      int64_t n, int64_t d, float eps, cudaStream_t stream) {
    ln_stats_kernel<<<dim3(STATS_BLOCKS, (unsigned)n), STATS_THREADS, 0, stream>>>(
        x, reinterpret_cast<float2*>(partial), d);
    const int64_t per_block = (int64_t)NORM_THREADS * NORM_VEC_PER_THREAD;
    const int64_t chunks = (d / 4 + per_block - 1) / per_block;
    ln_norm_kernel<<<dim3((unsigned)n, (unsigned)chunks), NORM_THREADS, 0, stream>>>(
        x, w, b, reinterpret_cast<const float2*>(partial), y, d, eps);
}
"""

CPP_SRC = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
#include <cstdint>

int ln_stats_blocks();
void launch_layernorm(const float* x, const float* w, const float* b, float* partial, float* y,
                      int64_t n, int64_t d, float eps, cudaStream_t stream);

torch::Tensor layernorm_forward(torch::Tensor x, torch::Tensor w, torch::Tensor b, double eps) {
    TORCH_CHECK(x.is_cuda() && w.is_cuda() && b.is_cuda(), "x, weight and bias must be CUDA tensors");
    TORCH_CHECK(x.scalar_type() == torch::kFloat32 && w.scalar_type() == torch::kFloat32 &&
                b.scalar_type() == torch::kFloat32, "x, weight and bias must be float32");
    TORCH_CHECK(x.is_contiguous() && w.is_contiguous() && b.is_contiguous(), "x, weight and bias must be contiguous");
    TORCH_CHECK(w.sizes() == b.sizes(), "weight and bias must have the same shape");
    TORCH_CHECK(x.dim() > w.dim(), "x needs a batch dim in front of the normalised shape");
    TORCH_CHECK(x.sizes().slice(x.dim() - w.dim()) == w.sizes(), "x's trailing dims must equal the normalised shape");
    const int64_t d = w.numel(), n = x.numel() / d;
    TORCH_CHECK(d > 0 && d % 4 == 0, "normalised size must be a positive multiple of 4 (float4 loads)");
    TORCH_CHECK(n > 0 && n <= 65535, "number of samples must be in [1, 65535] (grid dims)");
    for (const auto& t : {x, w, b})
        TORCH_CHECK(reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 16 == 0, "tensors must be 16-byte aligned");
    auto y = torch::empty_like(x);
    auto partial = torch::empty({n, ln_stats_blocks(), 2}, x.options());
    launch_layernorm(x.data_ptr<float>(), w.data_ptr<float>(), b.data_ptr<float>(), partial.data_ptr<float>(),
                     y.data_ptr<float>(), n, d, (float)eps, c10::cuda::getCurrentCUDAStream());
    cudaError_t err = cudaGetLastError();
    TORCH_CHECK(err == cudaSuccess, "layernorm kernel launch failed: ", cudaGetErrorString(err));
    return y;
}
"""

_ext = load_inline(
    name="layernorm_split_stats",
    cpp_sources=[CPP_SRC],
    cuda_sources=[CUDA_SRC],
    functions=["layernorm_forward"],
    no_implicit_headers=True,
    extra_cuda_cflags=["-O3"],
    verbose=False,
)


class ModelNew(nn.Module):
    def __init__(self, normalized_shape: tuple):
        super().__init__()
        self.ln = nn.LayerNorm(normalized_shape=normalized_shape)  # holds weight and bias, as Model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ext.layernorm_forward(x.contiguous(), self.ln.weight.contiguous(), self.ln.bias.contiguous(), self.ln.eps)
