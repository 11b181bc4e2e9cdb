"""A 2-D blocked C++ loop, y = x * 2 + 1: tiles of ROWS rows by COLS columns, each tile walked row
by row. The tunables change only the traversal order (edges are clamped), never a result.
"""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CPP = r"""
#include <torch/extension.h>
#include <algorithm>

#define ROWS 4  // tune: 1, 4, 16
#define COLS 512  // tune: 128, 512, 2048

torch::Tensor scale_rows(torch::Tensor x) {
    TORCH_CHECK(x.device().is_cpu(), "expected a CPU tensor");
    TORCH_CHECK(x.scalar_type() == torch::kFloat32, "expected float32");
    x = x.contiguous();
    auto out = torch::empty_like(x);
    const float* in = x.data_ptr<float>();
    float* o = out.data_ptr<float>();
    const int64_t cols = x.dim() ? x.size(-1) : 1;
    const int64_t rows = cols ? x.numel() / cols : 0;
    for (int64_t r0 = 0; r0 < rows; r0 += ROWS) {
        const int64_t r1 = std::min<int64_t>(r0 + ROWS, rows);
        for (int64_t c0 = 0; c0 < cols; c0 += COLS) {
            const int64_t c1 = std::min<int64_t>(c0 + COLS, cols);
            for (int64_t r = r0; r < r1; ++r)
                for (int64_t c = c0; c < c1; ++c) o[r * cols + c] = in[r * cols + c] * 2.0f + 1.0f;
        }
    }
    return out;
}
"""
_ext = load_inline(name="wb_scale_rows_blocked", cpp_sources=CPP, functions=["scale_rows"], extra_cflags=["-O3"])


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ext.scale_rows(x)
