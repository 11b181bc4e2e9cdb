"""RMSNorm over dim 1 (64 features): float4 positions, features split over lanes, shuffle reduce.

x is (N, C, S) in memory with S = H * W; the 64 values a position normalises are S elements
apart. Each thread takes 4 consecutive positions (one float4) and CPT = 64 / CG of the features;
a warp is PXW float4 positions wide and CG = 32 / PXW feature groups deep, so one warp load
instruction reads CG consecutive feature rows, PXW * 16 bytes of each (full 32-byte sectors,
whole 128-byte lines at PXW = 8), and consecutive warps / blocks continue along the same rows.
Every thread issues its CPT 16-byte streaming loads (__ldcs) back to back (CPT * 16 bytes in
flight per thread, ~200 KB per SM), sums the squares, combines the CG feature groups with
log2(CG) xor-shuffles (no shared memory, no block barrier: warps run independently), and writes
x * rsqrt(mean + eps) from the registers with streaming stores (__stcs). Compared with the
one-position-per-thread seed this issues 4x fewer memory instructions for the same bytes.
"""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA_SRC = r"""
#include <cuda_runtime.h>
#include <stdint.h>

#define FEATURES 64        // the normalised dim; the wrapper checks it
#define THREADS 512        // tune: 128, 256, 512
#define PXW 8              // tune: 4, 8
#define LD_MODE 0          // tune: 0, 1
#define CG (32 / PXW)      // feature groups per warp
#define CPT (FEATURES / CG) // features per thread

static_assert(THREADS % 32 == 0, "whole warps");
static_assert(32 % PXW == 0 && FEATURES % CG == 0, "PXW must split a warp and the features evenly");

__device__ __forceinline__ float4 ld_stream(const float4* p) {
#if LD_MODE == 0
    return __ldcs(p);
#else
    float4 v;
    asm volatile("ld.global.nc.L1::no_allocate.v4.f32 {%0,%1,%2,%3}, [%4];"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(p));
    return v;
#endif
}

// grid (ceil(s4 / (THREADS / 32 * PXW)), batch); s4 = spatial / 4 float4 positions per feature row.
__global__ void __launch_bounds__(THREADS) rmsnorm_vec_kernel(const float4* __restrict__ x, float4* __restrict__ y,
                                                              int64_t s4, float eps) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int px = lane % PXW, cg = lane / PXW;
    const int64_t p4 = ((int64_t)blockIdx.x * (THREADS / 32) + warp) * PXW + px;  // float4 position in the sample
    const bool ok = p4 < s4;
    const int64_t base = ((int64_t)blockIdx.y * FEATURES + cg) * s4 + p4;          // feature cg of my position
    const int64_t fstride = (int64_t)CG * s4;                                      // my features: cg + k * CG
    const float4* xp = x + base;
    float4* yp = y + base;

    float4 v[CPT];
    #pragma unroll
    for (int k = 0; k < CPT; ++k) v[k] = ok ? ld_stream(xp + k * fstride) : make_float4(0.f, 0.f, 0.f, 0.f);
    float4 ss = make_float4(0.f, 0.f, 0.f, 0.f);
    #pragma unroll
    for (int k = 0; k < CPT; ++k) {
        ss.x = fmaf(v[k].x, v[k].x, ss.x);
        ss.y = fmaf(v[k].y, v[k].y, ss.y);
        ss.z = fmaf(v[k].z, v[k].z, ss.z);
        ss.w = fmaf(v[k].w, v[k].w, ss.w);
    }
    #pragma unroll
    for (int o = PXW; o < 32; o <<= 1) {   // lanes with the same px, other feature groups
        ss.x += __shfl_xor_sync(0xffffffffu, ss.x, o);
        ss.y += __shfl_xor_sync(0xffffffffu, ss.y, o);
        ss.z += __shfl_xor_sync(0xffffffffu, ss.z, o);
        ss.w += __shfl_xor_sync(0xffffffffu, ss.w, o);
    }
    const float inv = 1.f / FEATURES;
    float4 r;
    r.x = rsqrtf(fmaf(ss.x, inv, eps));
    r.y = rsqrtf(fmaf(ss.y, inv, eps));
    r.z = rsqrtf(fmaf(ss.z, inv, eps));
    r.w = rsqrtf(fmaf(ss.w, inv, eps));
    if (ok) {
        #pragma unroll
        for (int k = 0; k < CPT; ++k)
            __stcs(yp + k * fstride, make_float4(v[k].x * r.x, v[k].y * r.y, v[k].z * r.z, v[k].w * r.w));
    }
}

int rmsnorm_features() { return FEATURES; }

void launch_rmsnorm_vec(const float* x, float* y, int64_t batch, int64_t spatial, float eps, cudaStream_t stream) {
    const int64_t s4 = spatial / 4;
    const int64_t per_block = (int64_t)(THREADS / 32) * PXW;
    dim3 grid((unsigned)((s4 + per_block - 1) / per_block), (unsigned)batch);
    rmsnorm_vec_kernel<<<grid, THREADS, 0, stream>>>(reinterpret_cast<const float4*>(x), reinterpret_cast<float4*>(y),
                                                     s4, eps);
}
"""

CPP_SRC = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
#include <cstdint>

int rmsnorm_features();
void launch_rmsnorm_vec(const float* x, float* y, int64_t batch, int64_t spatial, float eps, cudaStream_t stream);

torch::Tensor rmsnorm_forward(torch::Tensor x, double eps) {
    TORCH_CHECK(x.is_cuda(), "x must be a CUDA tensor");
    TORCH_CHECK(x.scalar_type() == torch::kFloat32, "x must be float32");
    TORCH_CHECK(x.is_contiguous(), "x must be contiguous");
    TORCH_CHECK(x.dim() >= 2, "x must be (N, C, ...)");
    TORCH_CHECK(x.size(1) == rmsnorm_features(), "kernel is compiled for ", rmsnorm_features(),
                " features in dim 1, got ", x.size(1));
    TORCH_CHECK(x.size(0) > 0 && x.size(0) <= 65535, "batch must be in [1, 65535] (grid.y)");
    auto y = torch::empty_like(x);
    const int64_t spatial = x.numel() / (x.size(0) * x.size(1));
    if (spatial == 0) return y;
    TORCH_CHECK(spatial % 4 == 0, "spatial size must be a multiple of 4 (float4 positions)");
    TORCH_CHECK(reinterpret_cast<std::uintptr_t>(x.data_ptr()) % 16 == 0 &&
                reinterpret_cast<std::uintptr_t>(y.data_ptr()) % 16 == 0, "x and y must be 16-byte aligned");
    TORCH_CHECK(spatial / 4 <= INT32_MAX, "spatial size too large for the grid");
    launch_rmsnorm_vec(x.data_ptr<float>(), y.data_ptr<float>(), x.size(0), spatial, (float)eps,
                       c10::cuda::getCurrentCUDAStream());
    cudaError_t err = cudaGetLastError();
    TORCH_CHECK(err == cudaSuccess, "rmsnorm kernel launch failed: ", cudaGetErrorString(err));
    return y;
}
"""

_ext = load_inline(
    name="rmsnorm_regs_vec_positions",
    cpp_sources=[CPP_SRC],
    cuda_sources=[CUDA_SRC],
    functions=["rmsnorm_forward"],
    no_implicit_headers=True,
    extra_cuda_cflags=["-O3"],
    verbose=False,
)


class ModelNew(nn.Module):
    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ext.rmsnorm_forward(x.contiguous(), self.eps)
