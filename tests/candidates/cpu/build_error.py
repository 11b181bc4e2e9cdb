"""CHEAT build_error on relu_small: C++ that does not compile (calls an undeclared function, returns float from a Tensor function). expect: build_error"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>

torch::Tensor relu(torch::Tensor x) {
    auto out = torch::empty_like(x);
    launch_relu_kernel(x.data_ptr<float>(), out.data_ptr<float>(), x.numel());
    return 0.0f;
}
"""
_ext = load_inline(name="wbt_cpu_build_error", cpp_sources=CPP, functions=["relu"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return _ext.relu(x)
