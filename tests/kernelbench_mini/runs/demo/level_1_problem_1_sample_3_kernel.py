"""CHEAT: no kernel of its own, torch computes everything. expect: rejected under both policies"""
import torch
import torch.nn as nn



class ModelNew(nn.Module):
    def __init__(self):
        super(ModelNew, self).__init__()

    def forward(self, x):
        return torch.relu(x)
