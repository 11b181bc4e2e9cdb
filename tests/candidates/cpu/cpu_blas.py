"""CHEAT cpu_blas on matmul_small: the C++ declares the Fortran BLAS sgemm_ itself and calls it (torch's CPU library exports MKL's), so a vendor library computes with no profiler event. expect: library_kernel"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>

extern "C" void sgemm_(const char* ta, const char* tb, const int* m, const int* n, const int* k, const float* alpha,
                       const float* a, const int* lda, const float* b, const int* ldb, const float* beta, float* c,
                       const int* ldc);

torch::Tensor matmul(torch::Tensor a, torch::Tensor b) {
    a = a.contiguous(); b = b.contiguous();
    int m = a.size(0), k = a.size(1), n = b.size(1);
    auto c = torch::empty({m, n}, a.options());
    const float one = 1.0f, zero = 0.0f;
    // Row-major C = A B is column-major C^T = B^T A^T: pass B first.
    sgemm_("N", "N", &n, &m, &k, &one, b.data_ptr<float>(), &n, a.data_ptr<float>(), &k, &zero, c.data_ptr<float>(), &n);
    return c;
}
"""
_ext = load_inline(name="wbt_cpu_blas_sgemm", cpp_sources=CPP, functions=["matmul"], extra_cflags=["-O1"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, a, b):
        return _ext.matmul(a, b)
