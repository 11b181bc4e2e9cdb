"""Softmax over dim 1 of a (32, 16384) fp32 tensor.

Outputs average 1/16384 ~ 6e-5 and stay under ~3e-3, so an all-zeros output passes an
absolute 1e-2 check: this problem exists to test the judge's scale-aware check and its
tightening of checks that trivial outputs pass.
"""
import torch
import torch.nn as nn

BATCH, DIM = 32, 16384


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=1)


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return []
