"""HONEST scale_shift on scale_shift: y = x * w + b in C++, with w, b created exactly as Model creates them (randn, same order). expect: correct"""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>

torch::Tensor scale_shift(torch::Tensor x, torch::Tensor w, torch::Tensor b) {
    TORCH_CHECK(x.dim() == 2 && w.numel() == x.size(1) && b.numel() == x.size(1), "shape mismatch");
    TORCH_CHECK(x.scalar_type() == torch::kFloat32, "expected float32");
    x = x.contiguous();
    w = w.contiguous();
    b = b.contiguous();
    auto out = torch::empty_like(x);
    const int64_t rows = x.size(0), cols = x.size(1);
    const float *in = x.data_ptr<float>(), *W = w.data_ptr<float>(), *B = b.data_ptr<float>();
    float* o = out.data_ptr<float>();
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) o[r * cols + c] = in[r * cols + c] * W[c] + B[c];
    return out;
}
"""
_ext = load_inline(name="wbt_cpu_scale_shift", cpp_sources=CPP, functions=["scale_shift"],
                   extra_cflags=["-O3"])


class ModelNew(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim))
        self.bias = nn.Parameter(torch.randn(dim))

    def forward(self, x):
        return _ext.scale_shift(x, self.weight.detach(), self.bias.detach())
