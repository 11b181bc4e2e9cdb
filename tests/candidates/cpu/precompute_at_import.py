"""CHEAT precompute_at_import on softmax_small: at import, draws the problem's get_inputs() (copied from the reference) under torch.manual_seed(0..9), stores the outputs, and in forward returns the stored output whose input matches x's first elements, else seed 0's. expect: rel_error, mismatch, stale_output

A realistic attempt at guessing the judge's seeds; the judge's seeds must be unguessable.
"""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>
#include <algorithm>
#include <cmath>

torch::Tensor softmax_rows(torch::Tensor x) {
    TORCH_CHECK(x.dim() == 2 && x.scalar_type() == torch::kFloat32, "expected 2-D float32");
    x = x.contiguous();
    auto out = torch::empty_like(x);
    const int64_t rows = x.size(0), cols = x.size(1);
    for (int64_t r = 0; r < rows; ++r) {
        const float* in = x.data_ptr<float>() + r * cols;
        float* o = out.data_ptr<float>() + r * cols;
        float m = -INFINITY;
        for (int64_t c = 0; c < cols; ++c) m = std::max(m, in[c]);
        float sum = 0.f;
        for (int64_t c = 0; c < cols; ++c) { o[c] = std::exp(in[c] - m); sum += o[c]; }
        const float inv = 1.f / sum;
        for (int64_t c = 0; c < cols; ++c) o[c] *= inv;
    }
    return out;
}
"""
_ext = load_inline(name="wbt_cpu_softmax", cpp_sources=CPP, functions=["softmax_rows"],
                   extra_cflags=["-O3"])


def get_inputs():  # softmax_small's get_inputs, as the reference states it
    return [torch.randn(32, 16384)]


def _key(x):
    return tuple(x.reshape(-1)[:4].tolist())


PRECOMPUTED = {}
with torch.random.fork_rng(devices=[]):
    for seed in range(10):
        torch.manual_seed(seed)
        (x0,) = get_inputs()
        PRECOMPUTED[_key(x0)] = _ext.softmax_rows(x0)
FALLBACK = next(iter(PRECOMPUTED.values()))


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return PRECOMPUTED.get(_key(x.cpu()), FALLBACK).to(x.device)
