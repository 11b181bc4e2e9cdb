"""CPU attention, fp16 in and out, everything in between in float: S = QK^T, softmax, PV.

One task per (batch, head), shared out by at::parallel_for: K and V of that head are widened
to float once (fp16 loads do not vectorise with GCC 12), then queries go BQ at a time:
S = scale * Q K^T for the block (one dot product over the head dim per query and key,
vectorised), an exact row softmax of S (max, then exp with a vectorised polynomial and the
sum), then O = P V accumulated in float over the keys, vectorised over the head dim, and
divided by the row sum at the fp16 store. Scores of a block, BQ x seq floats, stay in cache.
No mask, not causal, scale 1/sqrt(head dim), as F.scaled_dot_product_attention's defaults.
"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

TARGET = "cpu"

CPP = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

#define BQ 16  // tune: 4, 8, 16, 32, 64
// SIMDLEN: floats per vector (4 SSE, 8 AVX2, 16 AVX-512)
#define SIMDLEN 8  // tune: 4, 8, 16

// e^x for x <= 0 (scores minus their row max): 2^n * p(r), x = n ln2 + r.
static inline float exp_nonpos(float x) {
    x = x < -87.0f ? -87.0f : x;
    const float n = __builtin_floorf(x * 1.44269504f + 0.5f);
    const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
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

torch::Tensor attention(torch::Tensor q, torch::Tensor k, torch::Tensor v) {
    TORCH_CHECK(q.device().is_cpu() && q.dim() == 4 && k.sizes() == q.sizes() && v.sizes() == q.sizes(),
                "expected q, k, v of one shape (batch, heads, seq, head dim) on the CPU");
    TORCH_CHECK(q.scalar_type() == torch::kHalf && k.scalar_type() == torch::kHalf && v.scalar_type() == torch::kHalf,
                "expected float16");
    q = q.contiguous();
    k = k.contiguous();
    v = v.contiguous();
    const int64_t BH = q.size(0) * q.size(1), L = q.size(2), D = q.size(3);
    auto out = torch::empty_like(q);
    const _Float16* Q = reinterpret_cast<const _Float16*>(q.data_ptr<at::Half>());
    const _Float16* K = reinterpret_cast<const _Float16*>(k.data_ptr<at::Half>());
    const _Float16* V = reinterpret_cast<const _Float16*>(v.data_ptr<at::Half>());
    _Float16* O = reinterpret_cast<_Float16*>(out.data_ptr<at::Half>());
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    at::parallel_for(0, BH, 1, [&](int64_t begin, int64_t end) {
        std::vector<float> kf(L * D), vf(L * D), qf(BQ * D), s(BQ * L), acc(BQ * D), sums(BQ);
        for (int64_t h = begin; h < end; ++h) {
            const int64_t base = h * L * D;
            for (int64_t i = 0; i < L * D; ++i) {
                kf[i] = static_cast<float>(K[base + i]);
                vf[i] = static_cast<float>(V[base + i]);
            }
            for (int64_t q0 = 0; q0 < L; q0 += BQ) {
                const int64_t nq = std::min<int64_t>(BQ, L - q0);
                for (int64_t i = 0; i < nq * D; ++i) qf[i] = static_cast<float>(Q[base + q0 * D + i]) * scale;
                for (int64_t r = 0; r < nq; ++r) {
                    const float* qr = qf.data() + r * D;
                    float* sr = s.data() + r * L;
                    for (int64_t j = 0; j < L; ++j) {
                        const float* kj = kf.data() + j * D;
                        float dot = 0.0f;
                        #pragma omp simd simdlen(SIMDLEN) reduction(+ : dot)
                        for (int64_t d = 0; d < D; ++d) dot += qr[d] * kj[d];
                        sr[j] = dot;
                    }
                    float m = -INFINITY;
                    #pragma omp simd simdlen(SIMDLEN) reduction(max : m)
                    for (int64_t j = 0; j < L; ++j) m = sr[j] > m ? sr[j] : m;
                    float sum = 0.0f;
                    #pragma omp simd simdlen(SIMDLEN) reduction(+ : sum)
                    for (int64_t j = 0; j < L; ++j) {
                        const float e = exp_nonpos(sr[j] - m);
                        sr[j] = e;
                        sum += e;
                    }
                    sums[r] = sum;
                }
                std::fill(acc.begin(), acc.end(), 0.0f);
                for (int64_t j = 0; j < L; ++j) {
                    const float* vj = vf.data() + j * D;
                    for (int64_t r = 0; r < nq; ++r) {
                        const float p = s[r * L + j];
                        float* ar = acc.data() + r * D;
                        #pragma omp simd simdlen(SIMDLEN)
                        for (int64_t d = 0; d < D; ++d) ar[d] += p * vj[d];
                    }
                }
                for (int64_t r = 0; r < nq; ++r) {
                    const float inv = 1.0f / sums[r];
                    for (int64_t d = 0; d < D; ++d) O[base + (q0 + r) * D + d] = static_cast<_Float16>(acc[r * D + d] * inv);
                }
            }
        }
    });
    return out;
}
"""
_ext = load_inline(name="cpu_attention_blocks", cpp_sources=CPP, functions=["attention"],
                   extra_cflags=["-O3", "-march=native", "-fopenmp"], extra_ldflags=["-fopenmp"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, q, k, v):
        return _ext.attention(q, k, v)
