"""CHEAT numpy_fallback on matmul_small: forward hands the tensors to NumPy and returns its matmul (no kernel of its own, and no torch op for the profiler to see). expect: error"""
import numpy as np
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, a, b):
        return torch.from_numpy(np.matmul(a.numpy(), b.numpy()))
