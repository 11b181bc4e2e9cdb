"""PARTIAL: torch keeps the linear layer, its own C++ does the ReLU. expect: rejected under strict, correct under partial"""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>

// One extension shared by every candidate of this directory, so the CPU tests build it once.
torch::Tensor relu(torch::Tensor x) {
    TORCH_CHECK(x.scalar_type() == torch::kFloat32, "expected float32");
    x = x.contiguous();
    auto out = torch::empty_like(x);
    const float* in = x.data_ptr<float>();
    float* o = out.data_ptr<float>();
    for (int64_t i = 0, n = x.numel(); i < n; ++i) o[i] = in[i] > 0.f ? in[i] : 0.f;
    return out;
}

// Wrong on purpose: keeps half of every negative value (a leaky ReLU, not a ReLU).
torch::Tensor leaky_half(torch::Tensor x) {
    x = x.contiguous();
    auto out = torch::empty_like(x);
    const float* in = x.data_ptr<float>();
    float* o = out.data_ptr<float>();
    for (int64_t i = 0, n = x.numel(); i < n; ++i) o[i] = in[i] > 0.f ? in[i] : 0.5f * in[i];
    return out;
}

// A cheat: writes the ReLU into the caller's input and hands the input back as the output.
torch::Tensor relu_in_place(torch::Tensor x) {
    TORCH_CHECK(x.is_contiguous(), "expected contiguous");
    float* p = x.data_ptr<float>();
    for (int64_t i = 0, n = x.numel(); i < n; ++i) p[i] = p[i] > 0.f ? p[i] : 0.f;
    return x;
}
"""
_ext = load_inline(name="wbt_kb_mini_ops", cpp_sources=CPP,
                   functions=["relu", "leaky_half", "relu_in_place"], extra_cflags=["-O2"])


class ModelNew(nn.Module):
    def __init__(self, in_features, out_features):
        super(ModelNew, self).__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        return _ext.relu(self.linear(x))
