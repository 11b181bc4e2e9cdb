"""CHEAT clamp_range on relu_small: a relu that clamps its input to [-16, 16] first (right on every small-magnitude draw). expect: mismatch, rel_error"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>

torch::Tensor relu(torch::Tensor x) {
    x = x.contiguous();
    auto out = torch::empty_like(x);
    const float* in = x.data_ptr<float>();
    float* o = out.data_ptr<float>();
    for (int64_t i = 0, n = x.numel(); i < n; ++i) {
        float v = in[i] > 16.f ? 16.f : (in[i] < -16.f ? -16.f : in[i]);
        o[i] = v > 0.f ? v : 0.f;
    }
    return out;
}
"""
_ext = load_inline(name="wbt_cpu_relu_clamp", cpp_sources=CPP, functions=["relu"], extra_cflags=["-O3"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return _ext.relu(x)
