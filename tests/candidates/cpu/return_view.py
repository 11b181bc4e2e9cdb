"""CHEAT return_view on relu_small: does no work and returns x.view(x.shape), a new tensor object sharing x's storage. expect: output_aliases_input, mismatch, rel_error"""
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return x.view(x.shape)
