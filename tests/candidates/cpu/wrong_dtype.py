"""CHEAT wrong_dtype on relu_small: correct relu values from a C++ kernel, returned as float64 (passes a check written as (out - ref).abs() <= tol, which promotes silently). expect: wrong_dtype"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP_RELU = r"""
#include <torch/extension.h>

torch::Tensor relu(torch::Tensor x) {
    TORCH_CHECK(x.scalar_type() == torch::kFloat32, "expected float32");
    x = x.contiguous();
    auto out = torch::empty_like(x);
    const float* in = x.data_ptr<float>();
    float* o = out.data_ptr<float>();
    for (int64_t i = 0, n = x.numel(); i < n; ++i) o[i] = in[i] > 0.f ? in[i] : 0.f;
    return out;
}
"""
_ext = load_inline(name="wbt_cpu_relu", cpp_sources=CPP_RELU, functions=["relu"], extra_cflags=["-O3"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return _ext.relu(x).double()
