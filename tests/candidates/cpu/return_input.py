"""CHEAT return_input on relu_small: does no work and returns the input tensor x itself. expect: output_aliases_input, mismatch, rel_error"""
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return x
