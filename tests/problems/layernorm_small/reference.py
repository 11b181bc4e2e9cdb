"""nn.LayerNorm(1024) (eps 1e-5, elementwise affine) on a (256, 1024) fp32 tensor."""
import torch
import torch.nn as nn

BATCH, DIM = 256, 1024


class Model(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x)


def get_inputs():
    return [torch.randn(BATCH, DIM)]


def get_init_inputs():
    return [DIM]
