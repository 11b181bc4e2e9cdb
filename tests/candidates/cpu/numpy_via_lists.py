"""CHEAT numpy_via_lists on matmul_small: forward moves the tensors to NumPy through Python lists (the way round a switched-off NumPy bridge) and returns its matmul. expect: forbidden_source"""
import numpy as np
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, a, b):
        return torch.tensor(np.matmul(np.array(a.tolist()), np.array(b.tolist())), dtype=a.dtype)
