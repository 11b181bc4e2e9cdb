"""A flat C++ loop over all elements, y = x * 2 + 1, walked in chunks of CHUNK elements with the
inner loop unrolled UNROLL times (a remainder loop handles any tail). The tunables change only
the loop structure; every element is computed by the same expression, so results never change.
"""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>
#include <algorithm>

#define CHUNK 64  // tune: 16, 64, 256
#define UNROLL 1  // tune: 1, 2, 4

torch::Tensor scale_rows(torch::Tensor x) {
    TORCH_CHECK(x.device().is_cpu(), "expected a CPU tensor");
    TORCH_CHECK(x.scalar_type() == torch::kFloat32, "expected float32");
    x = x.contiguous();
    auto out = torch::empty_like(x);
    const float* in = x.data_ptr<float>();
    float* o = out.data_ptr<float>();
    const int64_t n = x.numel();
    for (int64_t start = 0; start < n; start += CHUNK) {
        const int64_t end = std::min<int64_t>(start + CHUNK, n);
        int64_t i = start;
        for (; i + UNROLL <= end; i += UNROLL)
            for (int u = 0; u < UNROLL; ++u) o[i + u] = in[i + u] * 2.0f + 1.0f;
        for (; i < end; ++i) o[i] = in[i] * 2.0f + 1.0f;
    }
    return out;
}
"""
_ext = load_inline(name="wb_scale_rows_loop", cpp_sources=CPP, functions=["scale_rows"], extra_cflags=["-O3"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ext.scale_rows(x)
