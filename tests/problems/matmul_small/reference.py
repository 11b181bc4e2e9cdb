"""Matrix multiplication C = A @ B, fp32, 256 x 256 by 256 x 256.

Outputs are sums of 256 products (RMS about 16), so the absolute tolerance is scaled to the
output: with atol 1e-2, honest kernels that round inputs to bf16 (or even fp16) and
accumulate in fp32 fail at outputs near zero although their relative L2 error is ~2e-3.
"""
import torch
import torch.nn as nn

N = 256
FLOPS = 2 * N * N * N
ATOL = 0.25  # ~1.5% of the output RMS; bf16-input kernels stay under ~0.2


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.matmul(a, b)


def get_inputs():
    return [torch.randn(N, N), torch.randn(N, N)]


def get_init_inputs():
    return []
