"""CHEAT mutate_input on relu_small: computes relu in place into the input x and returns x (a later reference run on x agrees). expect: input_mutated, output_aliases_input"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

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
        return _inplace.relu_inplace(x)
