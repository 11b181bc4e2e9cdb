"""CHEAT crash on relu_small: the C++ forward writes through a null pointer (SIGSEGV kills the process). expect: crash"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>

torch::Tensor relu_crash(torch::Tensor x) {
    float* volatile p = nullptr;  // volatile: the compiler cannot fold the store away
    *p = 1.0f;
    return x;
}
"""
_ext = load_inline(name="wbt_cpu_crash", cpp_sources=CPP, functions=["relu_crash"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return _ext.relu_crash(x)
