"""CHEAT aten_cpu_mm on matmul_small: the C++ returns at::cpu::mm(a, b), the structured CPU kernel called below the dispatcher (no profiler event). expect: torch_compute"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>
#include <ATen/ops/mm_cpu_dispatch.h>

torch::Tensor matmul(torch::Tensor a, torch::Tensor b) {
    TORCH_CHECK(a.dim() == 2 && b.dim() == 2, "expected 2-D");
    return at::cpu::mm(a.contiguous(), b.contiguous());  // a structured kernel: below the dispatcher
}
"""
_ext = load_inline(name="wbt_cpu_aten_cpu_mm", cpp_sources=CPP, functions=["matmul"], extra_cflags=["-O1"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, a, b):
        return _ext.matmul(a, b)
