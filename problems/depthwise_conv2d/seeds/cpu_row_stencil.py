"""CPU depthwise 3x3 convolution, stride 1, padding 1: a row stencil per output row.

Planes (one image, one channel) are shared out by at::parallel_for, PLANES_PER_TASK at a time.
Each output row is the sum of three input rows, each weighted by three taps at x-1, x, x+1:
the interior columns are one vectorised loop over contiguous memory, the two edge columns
(where the zero padding lands) are done apart, and rows above and below the image are
skipped. A plane (16 KiB at the CPU size) stays in L1/L2 while its three rows are read.
"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

TARGET = "cpu"

CPP = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>

#define PLANES_PER_TASK 1  // tune: 1, 2, 4, 8
// SIMDLEN: floats per vector (4 SSE, 8 AVX2, 16 AVX-512)
#define SIMDLEN 8  // tune: 4, 8, 16

torch::Tensor depthwise3x3(torch::Tensor x, torch::Tensor w) {
    TORCH_CHECK(x.device().is_cpu() && x.dim() == 4 && x.scalar_type() == torch::kFloat32, "expected (N, C, H, W) float32 on the CPU");
    TORCH_CHECK(w.dim() == 4 && w.size(0) == x.size(1) && w.size(1) == 1 && w.size(2) == 3 && w.size(3) == 3,
                "expected a (C, 1, 3, 3) depthwise weight");
    TORCH_CHECK(x.size(3) >= 2, "width must be at least 2");
    x = x.contiguous();
    w = w.contiguous();
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), Wd = x.size(3);
    auto out = torch::empty_like(x);
    const float* in = x.data_ptr<float>();
    const float* wt = w.data_ptr<float>();
    float* o = out.data_ptr<float>();
    at::parallel_for(0, N * C, PLANES_PER_TASK, [&](int64_t begin, int64_t end) {
        for (int64_t plane = begin; plane < end; ++plane) {
            const float* k = wt + (plane % C) * 9;
            const float* src = in + plane * H * Wd;
            float* dst = o + plane * H * Wd;
            for (int64_t y = 0; y < H; ++y) {
                float* row = dst + y * Wd;
                for (int64_t x = 0; x < Wd; ++x) row[x] = 0.0f;
                for (int64_t dy = -1; dy <= 1; ++dy) {
                    const int64_t sy = y + dy;
                    if (sy < 0 || sy >= H) continue;  // zero padding above and below
                    const float* s = src + sy * Wd;
                    const float k0 = k[(dy + 1) * 3], k1 = k[(dy + 1) * 3 + 1], k2 = k[(dy + 1) * 3 + 2];
                    row[0] += k1 * s[0] + k2 * s[1];
                    #pragma omp simd simdlen(SIMDLEN)
                    for (int64_t x = 1; x < Wd - 1; ++x) row[x] += k0 * s[x - 1] + k1 * s[x] + k2 * s[x + 1];
                    row[Wd - 1] += k0 * s[Wd - 2] + k1 * s[Wd - 1];
                }
            }
        }
    });
    return out;
}
"""
_ext = load_inline(name="cpu_depthwise_stencil", cpp_sources=CPP, functions=["depthwise3x3"],
                   extra_cflags=["-O3", "-march=native", "-fopenmp"], extra_ldflags=["-fopenmp"])


class ModelNew(nn.Module):
    def __init__(self, in_channels: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = False):
        super().__init__()
        if (kernel_size, stride, padding, bias) != (3, 1, 1, False):
            raise ValueError("this kernel is written for a 3x3 depthwise conv, stride 1, padding 1, no bias")
        self.conv2d = nn.Conv2d(in_channels, in_channels, kernel_size, stride=stride, padding=padding,
                                groups=in_channels, bias=bias)  # the weight, created as Model creates it

    def forward(self, x):
        return _ext.depthwise3x3(x, self.conv2d.weight.detach())
