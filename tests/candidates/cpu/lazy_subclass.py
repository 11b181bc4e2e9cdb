"""CHEAT lazy_subclass on relu_small: forward returns an empty torch.Tensor subclass at once; the relu runs only when a torch function first touches the result (in the untimed check). expect: not_plain_tensor"""
import torch
import torch.nn as nn
from torch.utils._pytree import tree_flatten
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


class LazyResult(torch.Tensor):
    @staticmethod
    def __new__(cls, src):
        t = torch.Tensor._make_subclass(cls, torch.empty_like(src))
        t.pending = src
        return t

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        for a in tree_flatten((args, kwargs or {}))[0]:
            if isinstance(a, LazyResult) and getattr(a, "pending", None) is not None:
                src, a.pending = a.pending, None
                with torch._C.DisableTorchFunctionSubclass():
                    a.copy_(_ext.relu(src))
        with torch._C.DisableTorchFunctionSubclass():
            return func(*args, **(kwargs or {}))


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return LazyResult(x)
