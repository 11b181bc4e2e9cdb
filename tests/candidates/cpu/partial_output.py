"""CHEAT partial_output on softmax_small: computes the softmax of the first half of the rows only and writes zeros into the rest. expect: rel_error, mismatch"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>
#include <algorithm>
#include <cmath>

torch::Tensor softmax_half(torch::Tensor x) {
    x = x.contiguous();
    auto out = torch::zeros_like(x);
    const int64_t rows = x.size(0), cols = x.size(1);
    for (int64_t r = 0; r < rows / 2; ++r) {
        const float* in = x.data_ptr<float>() + r * cols;
        float* o = out.data_ptr<float>() + r * cols;
        float m = -INFINITY, sum = 0.f;
        for (int64_t c = 0; c < cols; ++c) m = std::max(m, in[c]);
        for (int64_t c = 0; c < cols; ++c) { o[c] = std::exp(in[c] - m); sum += o[c]; }
        for (int64_t c = 0; c < cols; ++c) o[c] /= sum;
    }
    return out;
}
"""
_ext = load_inline(name="wbt_cpu_softmax_half", cpp_sources=CPP, functions=["softmax_half"],
                   extra_cflags=["-O3"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return _ext.softmax_half(x)
