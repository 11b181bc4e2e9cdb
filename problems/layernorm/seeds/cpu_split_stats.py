"""CPU LayerNorm over the trailing dims: split statistics, then one normalising pass.

Each sample is cut into chunks of CHUNK elements so that all cores work even when there are
fewer samples than cores. Pass 1: every chunk sums x - x0 and (x - x0)^2 (x0, the sample's
first element, is a shift that keeps the variance from cancelling) in float `omp simd`
reductions and stores the two partials in double. The partials of a sample are folded in
double into mean and rstd. Pass 2 writes (x - mean) * rstd * w + b chunk by chunk. Two reads
and one write per element; w and b are read once per sample.
"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

TARGET = "cpu"

CPP = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <vector>

#define CHUNK 4096  // tune: 1024, 2048, 4096, 8192, 16384
// SIMDLEN: floats per vector (4 SSE, 8 AVX2, 16 AVX-512)
#define SIMDLEN 8  // tune: 4, 8, 16

torch::Tensor layernorm(torch::Tensor x, torch::Tensor w, torch::Tensor b, double eps) {
    TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat32, "expected a float32 CPU tensor");
    TORCH_CHECK(w.numel() == b.numel() && w.numel() > 0 && x.numel() % w.numel() == 0,
                "weight and bias must cover the normalised trailing dims");
    x = x.contiguous();
    w = w.contiguous();
    b = b.contiguous();
    auto out = torch::empty_like(x);
    const int64_t N = w.numel(), S = x.numel() / N, chunks = (N + CHUNK - 1) / CHUNK;
    const float* in = x.data_ptr<float>();
    const float* W = w.data_ptr<float>();
    const float* Bv = b.data_ptr<float>();
    float* o = out.data_ptr<float>();
    std::vector<double> s1(S * chunks), s2(S * chunks);
    std::vector<float> mean(S), rstd(S);

    at::parallel_for(0, S * chunks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
            const int64_t s = t / chunks, c0 = (t % chunks) * CHUNK, n = std::min<int64_t>(CHUNK, N - c0);
            const float* xs = in + s * N;
            const float shift = xs[0];
            float a = 0.0f, q = 0.0f;
            #pragma omp simd simdlen(SIMDLEN) reduction(+ : a, q)
            for (int64_t i = c0; i < c0 + n; ++i) {
                const float d = xs[i] - shift;
                a += d;
                q += d * d;
            }
            s1[t] = a;
            s2[t] = q;
        }
    });
    for (int64_t s = 0; s < S; ++s) {
        double a = 0.0, q = 0.0;
        for (int64_t c = 0; c < chunks; ++c) {
            a += s1[s * chunks + c];
            q += s2[s * chunks + c];
        }
        const double m = a / N, var = std::max(0.0, q / N - m * m);
        mean[s] = static_cast<float>(in[s * N] + m);
        rstd[s] = static_cast<float>(1.0 / std::sqrt(var + eps));
    }
    at::parallel_for(0, S * chunks, 1, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
            const int64_t s = t / chunks, c0 = (t % chunks) * CHUNK, n = std::min<int64_t>(CHUNK, N - c0);
            const float* xs = in + s * N;
            float* os = o + s * N;
            const float m = mean[s], r = rstd[s];
            #pragma omp simd simdlen(SIMDLEN)
            for (int64_t i = c0; i < c0 + n; ++i) os[i] = (xs[i] - m) * r * W[i] + Bv[i];
        }
    });
    return out;
}
"""
_ext = load_inline(name="cpu_layernorm_split", cpp_sources=CPP, functions=["layernorm"],
                   extra_cflags=["-O3", "-march=native", "-fopenmp"], extra_ldflags=["-fopenmp"])


class ModelNew(nn.Module):
    def __init__(self, normalized_shape: tuple):
        super().__init__()
        self.ln = nn.LayerNorm(normalized_shape=normalized_shape)  # the parameters, created as Model creates them

    def forward(self, x):
        ln = self.ln
        if tuple(x.shape[x.dim() - len(ln.normalized_shape):]) != tuple(ln.normalized_shape):
            raise ValueError(f"trailing dims {tuple(x.shape)} do not match {ln.normalized_shape}")
        return _ext.layernorm(x, ln.weight.detach(), ln.bias.detach(), ln.eps)
