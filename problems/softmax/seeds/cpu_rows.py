"""CPU softmax by rows: max, then exp and sum, then scale; rows shared out by at::parallel_for.

Each row (16 KiB at the CPU size) stays in L1/L2 across its three passes, so memory sees one
read and one write per element. exp is a branch-free polynomial (2^n * p(r), |r| <= ln2/2,
relative error ~1e-7) that the compiler vectorises where std::exp stays scalar; the max and
the sum are `omp simd` reductions. fp32 throughout.
"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

TARGET = "cpu"

CPP = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cstdint>
#include <cstring>

#define ROWS_PER_TASK 4  // tune: 1, 2, 4, 8, 16, 32
// SIMDLEN: floats per vector (4 SSE, 8 AVX2, 16 AVX-512)
#define SIMDLEN 8  // tune: 4, 8, 16

// e^x for x <= 0 (softmax arguments are x - max): 2^n * p(r), x = n ln2 + r.
static inline float exp_nonpos(float x) {
    x = x < -87.0f ? -87.0f : x;  // below this e^x underflows a float; keeps 2^n a normal number
    const float n = __builtin_floorf(x * 1.44269504f + 0.5f);
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;  // ln2 split in two for accuracy
    float p = 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(n) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

static void softmax_row(const float* __restrict in, float* __restrict out, int64_t n) {
    float m = -INFINITY;
    #pragma omp simd simdlen(SIMDLEN) reduction(max : m)
    for (int64_t c = 0; c < n; ++c) m = in[c] > m ? in[c] : m;
    float sum = 0.0f;
    #pragma omp simd simdlen(SIMDLEN) reduction(+ : sum)
    for (int64_t c = 0; c < n; ++c) {
        const float e = exp_nonpos(in[c] - m);
        out[c] = e;
        sum += e;
    }
    const float inv = 1.0f / sum;
    #pragma omp simd simdlen(SIMDLEN)
    for (int64_t c = 0; c < n; ++c) out[c] *= inv;
}

torch::Tensor softmax_rows(torch::Tensor x) {
    TORCH_CHECK(x.device().is_cpu() && x.dim() == 2 && x.scalar_type() == torch::kFloat32,
                "expected a 2-D float32 CPU tensor");
    x = x.contiguous();
    auto out = torch::empty_like(x);
    const int64_t rows = x.size(0), cols = x.size(1);
    const float* in = x.data_ptr<float>();
    float* o = out.data_ptr<float>();
    at::parallel_for(0, rows, ROWS_PER_TASK, [&](int64_t begin, int64_t end) {
        for (int64_t r = begin; r < end; ++r) softmax_row(in + r * cols, o + r * cols, cols);
    });
    return out;
}
"""
_ext = load_inline(name="cpu_softmax_rows", cpp_sources=CPP, functions=["softmax_rows"],
                   extra_cflags=["-O3", "-march=native", "-fopenmp"], extra_ldflags=["-fopenmp"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return _ext.softmax_rows(x)
