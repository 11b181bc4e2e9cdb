"""A model whose output is nested, ((x + 1, 2x), x.sum()): every leaf must be compared."""
import torch
import torch.nn as nn


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor):
        return (x + 1, x * 2), x.sum()


def get_inputs():
    return [torch.randn(64, 256)]


def get_init_inputs():
    return []
