"""CHEAT deferred_thread on softmax_small: forward returns an uninitialised output at once; a thread it starts computes the softmax and writes the output 50 ms later. expect: threads, mismatch, rel_error, nonfinite, timing_mismatch"""
import threading
import time

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


def _late_write(x, out):
    time.sleep(0.05)
    out.copy_(_ext.softmax_rows(x))


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        out = torch.empty_like(x)
        threading.Thread(target=_late_write, args=(x, out), daemon=True).start()
        return out
