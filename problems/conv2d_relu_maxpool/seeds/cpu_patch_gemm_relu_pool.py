"""CPU conv2d + bias + ReLU fused in one pass, then a 3x3 / stride 2 max-pool pass.

The convolution is the conv2d CPU seed's (cpu_patch_gemm) with max(0, .) applied at its store;
the pool then reads each window of the ReLU output (no padding, floor mode, as nn.MaxPool2d's
defaults), one output row of one plane per inner loop. Below, the convolution's own notes.

The weight is repacked once per call to wT[k][oc] (k runs over in-channel, ky, kx), so the
out-channels of one k are contiguous. A task takes PIXELS consecutive output pixels of one
output row, gathers their patches (zero where the padding lands) into a small buffer, and for
every k adds patch[p][k] * wT[k][:] to PIXELS accumulator rows of all out-channels, vectorised
over the out-channels: each loaded weight row serves PIXELS pixels. No im2col buffer of the
whole image. Any kernel size, stride and padding; plain FP32 multiply-adds.
"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

TARGET = "cpu"

CPP = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <vector>

#define PIXELS 4  // tune: 1, 2, 4, 8, 16
#define TASK_BLOCKS 1  // tune: 1, 2, 4

torch::Tensor conv_relu_pool(torch::Tensor x, torch::Tensor w, torch::Tensor bias, int64_t stride, int64_t pad,
                             int64_t pk, int64_t ps) {
    TORCH_CHECK(x.device().is_cpu() && x.dim() == 4 && w.dim() == 4 && x.size(1) == w.size(1), "expected (N, C, H, W) and (OC, C, KH, KW)");
    TORCH_CHECK(x.scalar_type() == torch::kFloat32 && w.scalar_type() == torch::kFloat32, "expected float32");
    TORCH_CHECK(bias.numel() == w.size(0), "bias must have one value per out-channel");
    x = x.contiguous();
    const int64_t N = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
    const int64_t OC = w.size(0), KH = w.size(2), KW = w.size(3), KD = C * KH * KW;
    const int64_t HO = (H + 2 * pad - KH) / stride + 1, WO = (W + 2 * pad - KW) / stride + 1;
    TORCH_CHECK(HO > 0 && WO > 0, "output would be empty");
    const int64_t PH = (HO - pk) / ps + 1, PW = (WO - pk) / ps + 1;
    TORCH_CHECK(pk > 0 && ps > 0 && HO >= pk && WO >= pk, "pool window larger than the conv output");
    auto out = torch::empty({N, OC, HO, WO}, x.options());
    auto pooled = torch::empty({N, OC, PH, PW}, x.options());
    auto wt = torch::empty({KD, OC}, x.options());
    const float* wsrc = w.contiguous().data_ptr<float>();
    const float* bv = bias.contiguous().data_ptr<float>();
    float* wT = wt.data_ptr<float>();
    for (int64_t oc = 0; oc < OC; ++oc)
        for (int64_t k = 0; k < KD; ++k) wT[k * OC + oc] = wsrc[oc * KD + k];
    const float* in = x.data_ptr<float>();
    float* o = out.data_ptr<float>();
    const int64_t blocks_per_row = (WO + PIXELS - 1) / PIXELS;
    at::parallel_for(0, N * HO * blocks_per_row, TASK_BLOCKS, [&](int64_t begin, int64_t end) {
        std::vector<float> patch(PIXELS * KD), acc(PIXELS * OC);
        for (int64_t t = begin; t < end; ++t) {
            const int64_t n = t / (HO * blocks_per_row), oy = (t / blocks_per_row) % HO;
            const int64_t ox0 = (t % blocks_per_row) * PIXELS, np = std::min<int64_t>(PIXELS, WO - ox0);
            for (int64_t p = 0; p < PIXELS; ++p)
                for (int64_t c = 0; c < C; ++c)
                    for (int64_t ky = 0; ky < KH; ++ky)
                        for (int64_t kx = 0; kx < KW; ++kx) {
                            const int64_t iy = oy * stride + ky - pad, ix = (ox0 + p) * stride + kx - pad;
                            const bool inside = p < np && iy >= 0 && iy < H && ix >= 0 && ix < W;
                            patch[p * KD + (c * KH + ky) * KW + kx] = inside ? in[((n * C + c) * H + iy) * W + ix] : 0.0f;
                        }
            std::fill(acc.begin(), acc.end(), 0.0f);
            for (int64_t k = 0; k < KD; ++k) {
                const float* wrow = wT + k * OC;
                for (int64_t p = 0; p < PIXELS; ++p) {
                    const float v = patch[p * KD + k];
                    float* a = acc.data() + p * OC;
                    #pragma omp simd
                    for (int64_t oc = 0; oc < OC; ++oc) a[oc] += v * wrow[oc];
                }
            }
            for (int64_t p = 0; p < np; ++p)
                for (int64_t oc = 0; oc < OC; ++oc)
                    o[((n * OC + oc) * HO + oy) * WO + ox0 + p] = std::max(0.0f, acc[p * OC + oc] + bv[oc]);
        }
    });
    float* po = pooled.data_ptr<float>();
    at::parallel_for(0, N * OC * PH, 8, [&](int64_t begin, int64_t end) {
        for (int64_t t = begin; t < end; ++t) {
            const int64_t plane = t / PH, py = t % PH;
            const float* src = o + plane * HO * WO;
            float* dst = po + (plane * PH + py) * PW;
            for (int64_t px = 0; px < PW; ++px) {
                float m = src[(py * ps) * WO + px * ps];
                for (int64_t dy = 0; dy < pk; ++dy)
                    for (int64_t dx = 0; dx < pk; ++dx) m = std::max(m, src[(py * ps + dy) * WO + px * ps + dx]);
                dst[px] = m;
            }
        }
    });
    return pooled;
}
"""
_ext = load_inline(name="cpu_conv_relu_pool", cpp_sources=CPP, functions=["conv_relu_pool"],
                   extra_cflags=["-O3", "-march=native", "-fopenmp"], extra_ldflags=["-fopenmp"])


class ModelNew(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int,
                 pool_kernel_size: int, pool_stride: int):
        super().__init__()
        self.pool_kernel_size, self.pool_stride = pool_kernel_size, pool_stride
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=padding)
        if self.conv.stride[0] != self.conv.stride[1] or self.conv.padding[0] != self.conv.padding[1]:
            raise ValueError("this kernel takes one stride and one padding for both dims")

    def forward(self, x):
        c = self.conv
        return _ext.conv_relu_pool(x, c.weight.detach(), c.bias.detach(), c.stride[0], c.padding[0],
                                   self.pool_kernel_size, self.pool_stride)
