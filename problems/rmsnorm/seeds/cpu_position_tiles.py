"""CPU RMSNorm over dim 1: a tile of TILE spatial positions at a time, all features of each.

x is (B, C, H, W) and each position's C values are H*W apart, so the kernel walks a tile of
contiguous positions feature by feature: the sum of squares of TILE positions accumulates in a
small array (vectorised across positions), then the same C rows of the tile are scaled by
1 / sqrt(mean + eps). The tile (C x TILE floats) stays in cache between the two passes, so
memory sees one read and one write per element. Tiles are shared out by at::parallel_for.
"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

TARGET = "cpu"

CPP = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>

#define TILE 256  // tune: 64, 128, 256, 512, 1024
#define TILES_PER_TASK 1  // tune: 1, 2, 4, 8

torch::Tensor rmsnorm(torch::Tensor x, double eps) {
    TORCH_CHECK(x.device().is_cpu() && x.dim() >= 2 && x.scalar_type() == torch::kFloat32,
                "expected a float32 CPU tensor of at least 2 dims");
    x = x.contiguous();
    auto out = torch::empty_like(x);
    const int64_t B = x.size(0), C = x.size(1), P = x.numel() / (B * C);
    const int64_t tiles_per_sample = (P + TILE - 1) / TILE;
    const float* in = x.data_ptr<float>();
    float* o = out.data_ptr<float>();
    const float inv_c = 1.0f / static_cast<float>(C), e = static_cast<float>(eps);
    at::parallel_for(0, B * tiles_per_sample, TILES_PER_TASK, [&](int64_t begin, int64_t end) {
        float scale[TILE];
        for (int64_t t = begin; t < end; ++t) {
            const int64_t b = t / tiles_per_sample, p0 = (t % tiles_per_sample) * TILE;
            const int64_t n = std::min<int64_t>(TILE, P - p0);
            const float* xs = in + b * C * P + p0;
            float* os = o + b * C * P + p0;
            for (int64_t p = 0; p < n; ++p) scale[p] = 0.0f;
            for (int64_t c = 0; c < C; ++c) {
                const float* row = xs + c * P;
                #pragma omp simd
                for (int64_t p = 0; p < n; ++p) scale[p] += row[p] * row[p];
            }
            #pragma omp simd
            for (int64_t p = 0; p < n; ++p) scale[p] = 1.0f / std::sqrt(scale[p] * inv_c + e);
            for (int64_t c = 0; c < C; ++c) {
                const float* row = xs + c * P;
                float* orow = os + c * P;
                #pragma omp simd
                for (int64_t p = 0; p < n; ++p) orow[p] = row[p] * scale[p];
            }
        }
    });
    return out;
}
"""
_ext = load_inline(name="cpu_rmsnorm_tiles", cpp_sources=CPP, functions=["rmsnorm"],
                   extra_cflags=["-O3", "-march=native", "-fopenmp"], extra_ldflags=["-fopenmp"])


class ModelNew(nn.Module):
    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        self.num_features = num_features
        self.eps = eps

    def forward(self, x):
        if x.size(1) != self.num_features:
            raise ValueError(f"expected {self.num_features} features in dim 1, got {x.size(1)}")
        return _ext.rmsnorm(x, self.eps)
