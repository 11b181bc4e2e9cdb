"""CPU GELU (tanh form) as x * sigmoid(2u) = x / (1 + e^(-2u)), u = sqrt(2/pi) (x + 0.044715 x^3).

One read and one write per element, chunks of GRAIN elements shared out by at::parallel_for.
e^y is a branch-free polynomial (2^n * p(r), relative error ~1e-7) that the compiler vectorises
(std::exp and std::tanh stay scalar); y is clamped to [-87, 88], where e^y is still a finite
normal float, so huge |x| give x or -0 as the reference does. fp32 throughout.
"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

TARGET = "cpu"

CPP = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cstdint>
#include <cstring>

#define GRAIN 16384  // tune: 4096, 16384, 65536, 262144
// SIMDLEN: floats per vector (4 SSE, 8 AVX2, 16 AVX-512)
#define SIMDLEN 8  // tune: 4, 8, 16

static inline float exp_clamped(float y) {
    y = y < -87.0f ? -87.0f : (y > 88.0f ? 88.0f : y);
    const float n = __builtin_floorf(y * 1.44269504f + 0.5f);
    const float r = (y - n * 0.693359375f) + n * 2.12194440e-4f;  // ln2 split in two for accuracy
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

torch::Tensor gelu_tanh(torch::Tensor x) {
    TORCH_CHECK(x.device().is_cpu() && x.scalar_type() == torch::kFloat32, "expected a float32 CPU tensor");
    x = x.contiguous();
    auto out = torch::empty_like(x);
    const float* in = x.data_ptr<float>();
    float* o = out.data_ptr<float>();
    at::parallel_for(0, x.numel(), GRAIN, [&](int64_t begin, int64_t end) {
        #pragma omp simd simdlen(SIMDLEN)
        for (int64_t i = begin; i < end; ++i) {
            const float v = in[i];
            const float u = 0.7978845608f * (v + 0.044715f * v * v * v);
            o[i] = v / (1.0f + exp_clamped(-2.0f * u));
        }
    });
    return out;
}
"""
_ext = load_inline(name="cpu_gelu_sigmoid", cpp_sources=CPP, functions=["gelu_tanh"],
                   extra_cflags=["-O3", "-march=native", "-fopenmp"], extra_ldflags=["-fopenmp"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return _ext.gelu_tanh(x)
