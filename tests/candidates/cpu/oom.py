"""CHEAT oom on relu_small: the C++ forward allocates a 2^46-element float tensor (256 TiB, beyond any address space). expect: oom, crash"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>

torch::Tensor relu_oom(torch::Tensor x) {
    auto scratch = torch::empty({int64_t(1) << 46}, x.options());
    return scratch.narrow(0, 0, x.numel()).view(x.sizes());
}
"""
_ext = load_inline(name="wbt_cpu_oom", cpp_sources=CPP, functions=["relu_oom"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return _ext.relu_oom(x)
