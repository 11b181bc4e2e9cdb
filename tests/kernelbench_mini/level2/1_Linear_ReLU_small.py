import torch
import torch.nn as nn


class Model(nn.Module):
    """A linear layer followed by ReLU: the shape of KernelBench's level-2 fusions, tiny, for the CPU."""

    def __init__(self, in_features, out_features):
        super(Model, self).__init__()
        self.linear = nn.Linear(in_features, out_features)

    def forward(self, x):
        x = self.linear(x)
        return torch.relu(x)


batch_size = 32
in_features = 64
out_features = 128


def get_inputs():
    return [torch.randn(batch_size, in_features)]


def get_init_inputs():
    return [in_features, out_features]
