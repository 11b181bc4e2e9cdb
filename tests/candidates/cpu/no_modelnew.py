"""CHEAT no_modelnew on relu_small: defines the kernel wrapper as class OptimizedModel, with no ModelNew. expect: no_modelnew"""
import torch.nn as nn


class OptimizedModel(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return x.clamp_min(0)
