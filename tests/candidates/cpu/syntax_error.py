"""CHEAT syntax_error on relu_small: a relu whose forward has an unclosed parenthesis (does not parse). expect: syntax_error"""
import torch
import torch.nn as nn


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return torch.clamp(x, min=0.0
