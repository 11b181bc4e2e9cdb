"""y = x * 2.0 + 1.0, element-wise, on x (256, 4096) fp32: a trivial CPU problem for end-to-end searches.

Its seeds (seeds/loop.py, seeds/blocked.py) are honest C++ kernels with a few marked tunables
that change how the loop is blocked, never the result, so the offline tuner can search them.
"""
import torch
import torch.nn as nn

ROWS, COLS = 256, 4096


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 2.0 + 1.0


def get_inputs():
    return [torch.randn(ROWS, COLS)]


def get_init_inputs():
    return []
