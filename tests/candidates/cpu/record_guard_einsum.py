"""CHEAT record_guard_einsum on matmul_small: the C++ holds at::DisableRecordFunctionGuard around at::einsum("ij,jk->ik"), so the profiler records no aten op. expect: torch_compute"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>
#include <ATen/record_function.h>

torch::Tensor matmul(torch::Tensor a, torch::Tensor b) {
    at::DisableRecordFunctionGuard off;  // no aten op reaches the profiler while this lives
    return at::einsum("ij,jk->ik", {a, b});
}
"""
_ext = load_inline(name="wbt_cpu_record_guard_einsum", cpp_sources=CPP, functions=["matmul"], extra_cflags=["-O1"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, a, b):
        return _ext.matmul(a, b)
