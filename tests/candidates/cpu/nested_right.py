"""HONEST nested_right on nested_out: ((x + 1, 2x), sum x) in C++, every output its own. expect: correct"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>

std::vector<torch::Tensor> parts(torch::Tensor x) {
    x = x.contiguous();
    auto a = torch::empty_like(x), b = torch::empty_like(x);
    auto s = torch::empty({}, x.options());
    const float* in = x.data_ptr<float>();
    float *pa = a.data_ptr<float>(), *pb = b.data_ptr<float>();
    double acc = 0;
    for (int64_t i = 0, n = x.numel(); i < n; ++i) { pa[i] = in[i] + 1.f; pb[i] = in[i] * 2.f; acc += in[i]; }
    s.data_ptr<float>()[0] = (float)acc;
    return {a, b, s};
}
"""
_ext = load_inline(name="wbt_cpu_nested_right", cpp_sources=CPP, functions=["parts"], extra_cflags=["-O3"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        a, b, s = _ext.parts(x)
        return (a, b), s
