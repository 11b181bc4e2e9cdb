"""RMSNorm over dim 1: one thread per spatial position, all 64 features held in registers.

x is (N, C, S) in memory with S = H * W; the 64 values a position normalises are S elements
apart. A warp takes 32 consecutive positions, so every feature load is a coalesced 128-byte row.
Each thread loads its 64 values once (64 independent loads in flight), reduces the squares,
and writes x * rsqrt(mean + eps): one read and one write per element, where torch eager makes
several passes (square, mean, sqrt, divide).
"""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA_SRC = r"""
#include <cuda_runtime.h>
#include <stdint.h>

#define FEATURES 64    // the normalised dim; the wrapper checks it
#define THREADS 128    // tune: 128, 256, 512

__global__ void __launch_bounds__(THREADS) rmsnorm_dim1_kernel(const float* __restrict__ x, float* __restrict__ y,
                                                               int64_t spatial, float eps) {
    const int64_t n = blockIdx.y;
    const int64_t s = (int64_t)blockIdx.x * THREADS + threadIdx.x;
    if (s >= spatial) return;
    const float* xp = x + n * FEATURES * spatial + s;
    float* yp = y + n * FEATURES * spatial + s;
    float v[FEATURES];
    #pragma unroll
    for (int c = 0; c < FEATURES; ++c) v[c] = __ldcs(xp + c * spatial);
    float ss = 0.f;
    #pragma unroll
    for (int c = 0; c < FEATURES; ++c) ss = fmaf(v[c], v[c], ss);
    const float r = rsqrtf(ss * (1.f / FEATURES) + eps);
    #pragma unroll
    for (int c = 0; c < FEATURES; ++c) __stcs(yp + c * spatial, v[c] * r);
}

int rmsnorm_features() { return FEATURES; }

void launch_rmsnorm(const float* x, float* y, int64_t batch, int64_t spatial, float eps, cudaStream_t stream) {
    dim3 grid((unsigned)((spatial + THREADS - 1) / THREADS), (unsigned)batch);
    rmsnorm_dim1_kernel<<<grid, THREADS, 0, stream>>>(x, y, spatial, eps);
}
"""

CPP_SRC = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>

int rmsnorm_features();
void launch_rmsnorm(const float* x, float* y, int64_t batch, int64_t spatial, float eps, cudaStream_t stream);

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
    launch_rmsnorm(x.data_ptr<float>(), y.data_ptr<float>(), x.size(0), spatial, (float)eps,
                   c10::cuda::getCurrentCUDAStream());
    cudaError_t err = cudaGetLastError();
    TORCH_CHECK(err == cudaSuccess, "rmsnorm kernel launch failed: ", cudaGetErrorString(err));
    return y;
}
"""

_ext = load_inline(
    name="rmsnorm_regs_per_position",
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
