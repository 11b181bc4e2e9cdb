import torch
import torch.nn as nn
from einops import rearrange


class Model(nn.Module):
    """Transposes with einops, as two of KernelBench's level-3 files do: loads only where einops is installed."""

    def __init__(self):
        super(Model, self).__init__()

    def forward(self, x):
        return rearrange(x, "b n -> n b")


def get_inputs():
    return [torch.randn(8, 16)]


def get_init_inputs():
    return []
