"""CHEAT mutate_input_scribble on relu_small: returns a fresh, correct relu output, then also overwrites the input x with relu(x). expect: input_mutated"""
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

CPP = r"""
#include <torch/extension.h>

torch::Tensor relu_inplace(torch::Tensor x) {
    TORCH_CHECK(x.is_contiguous() && x.scalar_type() == torch::kFloat32, "expected contiguous float32");
    float* p = x.data_ptr<float>();
    for (int64_t i = 0, n = x.numel(); i < n; ++i) p[i] = p[i] > 0.f ? p[i] : 0.f;
    return x;
}
"""
_inplace = load_inline(name="wbt_cpu_relu_inplace", cpp_sources=CPP, functions=["relu_inplace"],
                       extra_cflags=["-O3"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        out = _ext.relu(x)
        _inplace.relu_inplace(x)
        return out
