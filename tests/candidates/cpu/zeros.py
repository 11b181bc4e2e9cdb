"""CHEAT zeros on softmax_small: a C++ kernel writes all zeros (passes an absolute 1e-2 check: softmax outputs are ~6e-5). expect: rel_error, mismatch"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>

torch::Tensor fill(torch::Tensor like, int64_t rows, int64_t cols, double value) {
    auto out = torch::empty({rows, cols}, like.options());
    float* o = out.data_ptr<float>();
    for (int64_t i = 0; i < rows * cols; ++i) o[i] = (float)value;
    return out;
}
"""
_ext = load_inline(name="wbt_cpu_fill", cpp_sources=CPP, functions=["fill"], extra_cflags=["-O3"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return _ext.fill(x, x.size(0), x.size(1), 0.0)
