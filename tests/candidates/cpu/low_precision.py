"""CHEAT low_precision on matmul_small: fp32 A @ B, then each output rounded to 3 significant bits (relative error up to 12.5%): fails the tolerance. expect: mismatch, rel_error"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>
#include <cstdint>
#include <cstring>

static inline float keep_3_bits(float f) {  // implicit leading 1 plus 2 mantissa bits
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u = (u + (1u << 20)) & ~((1u << 21) - 1u);
    std::memcpy(&f, &u, 4);
    return f;
}

torch::Tensor matmul_3bit(torch::Tensor a, torch::Tensor b) {
    a = a.contiguous();
    b = b.contiguous();
    const int64_t M = a.size(0), K = a.size(1), N = b.size(1);
    auto c = torch::zeros({M, N}, a.options());
    const float *A = a.data_ptr<float>(), *B = b.data_ptr<float>();
    float* C = c.data_ptr<float>();
    for (int64_t i = 0; i < M; ++i)
        for (int64_t k = 0; k < K; ++k)
            for (int64_t j = 0; j < N; ++j) C[i * N + j] += A[i * K + k] * B[k * N + j];
    for (int64_t i = 0; i < M * N; ++i) C[i] = keep_3_bits(C[i]);
    return c;
}
"""
_ext = load_inline(name="wbt_cpu_matmul_3bit", cpp_sources=CPP, functions=["matmul_3bit"],
                   extra_cflags=["-O3"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, a, b):
        return _ext.matmul_3bit(a, b)
