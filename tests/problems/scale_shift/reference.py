"""y = x * w + b on x (64, 1024), with parameters w, b of shape (1024,).

The parameters are drawn with torch.randn in __init__, so a candidate is correct only if it
creates its own parameters in the same order under the judge's seed.
"""
import torch
import torch.nn as nn

BATCH, DIM = 64, 1024


class Model(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(dim))
        self.bias = nn.Parameter(torch.randn(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight + self.bias


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return [DIM]
