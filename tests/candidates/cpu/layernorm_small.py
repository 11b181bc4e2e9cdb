"""HONEST layernorm_small on layernorm_small: per-row two-pass mean and variance in C++, then (x - mean) * rstd * w + b. expect: correct

Parameters live in an nn.LayerNorm (created like Model's, never called) so state_dict keys,
eps and any parameter values the judge sets carry over.
"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>
#include <cmath>

torch::Tensor layernorm(torch::Tensor x, torch::Tensor w, torch::Tensor b, double eps) {
    TORCH_CHECK(x.dim() == 2 && w.numel() == x.size(1) && b.numel() == x.size(1), "shape mismatch");
    TORCH_CHECK(x.scalar_type() == torch::kFloat32, "expected float32");
    x = x.contiguous();
    w = w.contiguous();
    b = b.contiguous();
    auto out = torch::empty_like(x);
    const int64_t rows = x.size(0), cols = x.size(1);
    const float *W = w.data_ptr<float>(), *B = b.data_ptr<float>();
    for (int64_t r = 0; r < rows; ++r) {
        const float* in = x.data_ptr<float>() + r * cols;
        float* o = out.data_ptr<float>() + r * cols;
        double sum = 0.0;
        for (int64_t c = 0; c < cols; ++c) sum += in[c];
        const double mean = sum / cols;
        double sq = 0.0;
        for (int64_t c = 0; c < cols; ++c) sq += (in[c] - mean) * (in[c] - mean);
        const float rstd = 1.0 / std::sqrt(sq / cols + eps);
        for (int64_t c = 0; c < cols; ++c) o[c] = (in[c] - (float)mean) * rstd * W[c] + B[c];
    }
    return out;
}
"""
_ext = load_inline(name="wbt_cpu_layernorm", cpp_sources=CPP, functions=["layernorm"],
                   extra_cflags=["-O3"])


class ModelNew(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        n = self.norm
        return _ext.layernorm(x, n.weight.detach(), n.bias.detach(), n.eps)
