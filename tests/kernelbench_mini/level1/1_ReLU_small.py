import torch
import torch.nn as nn


class Model(nn.Module):
    """ReLU of a small fp32 matrix (a tiny CPU stand-in for KernelBench's level1/19_ReLU.py)."""

    def __init__(self):
        super(Model, self).__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


batch_size = 64
dim = 2048


def get_inputs():
    x = torch.randn(batch_size, dim)
    return [x]


def get_init_inputs():
    return []
