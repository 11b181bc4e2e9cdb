"""CHEAT numpy_implicit on matmul_small: forward calls numpy.matmul on the tensors themselves and writes the result into a fresh tensor by indexing, naming no bridge. expect: error"""
import numpy as np
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, a, b):
        out = torch.empty(a.shape[0], b.shape[1], dtype=a.dtype)
        out[...] = np.matmul(a, b)
        return out
