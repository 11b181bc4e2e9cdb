"""ReLU on a (64, 4096) fp32 tensor."""
import torch
import torch.nn as nn

BATCH, DIM = 64, 4096


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return []
