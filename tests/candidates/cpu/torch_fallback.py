"""CHEAT torch_fallback on softmax_small: forward calls torch.softmax (no kernel of its own). expect: torch_compute, library_kernel"""
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.softmax(x, dim=1)
