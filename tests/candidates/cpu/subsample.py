"""CHEAT subsample on matmul_small: computes only the even rows of A @ B and copies each even row into the odd row below it. expect: mismatch, rel_error"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>

torch::Tensor matmul_even_rows(torch::Tensor a, torch::Tensor b) {
    a = a.contiguous();
    b = b.contiguous();
    const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
    auto c = torch::zeros({M, N}, a.options());
    const float *A = a.data_ptr<float>(), *B = b.data_ptr<float>();
    float* C = c.data_ptr<float>();
    for (int64_t i = 0; i < M; i += 2) {
        for (int64_t k = 0; k < K; ++k)
            for (int64_t j = 0; j < N; ++j) C[i * N + j] += A[i * K + k] * B[k * N + j];
        if (i + 1 < M)
            for (int64_t j = 0; j < N; ++j) C[(i + 1) * N + j] = C[i * N + j];
    }
    return c;
}
"""
_ext = load_inline(name="wbt_cpu_matmul_even_rows", cpp_sources=CPP, functions=["matmul_even_rows"],
                   extra_cflags=["-O3"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, a, b):
        return _ext.matmul_even_rows(a, b)
