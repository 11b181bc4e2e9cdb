"""CHEAT hang on relu_small: the C++ forward spins forever holding the GIL (a volatile counter keeps the loop from being optimised away). expect: timeout"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>
#include <cstdint>

torch::Tensor relu_hang(torch::Tensor x) {
    volatile uint64_t spins = 0;
    for (;;) spins = spins + 1;
    return x;
}
"""
_ext = load_inline(name="wbt_cpu_hang", cpp_sources=CPP, functions=["relu_hang"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return _ext.relu_hang(x)
