import torch
import torch.nn as nn


class Model(nn.Module):
    """A linear layer of 2^18 x 2^18 fp32 weights (256 GiB): too large for any device here, found before it allocates."""

    def __init__(self, features):
        super(Model, self).__init__()
        self.linear = nn.Linear(features, features, bias=False)

    def forward(self, x):
        return self.linear(x)


features = 1 << 18


def get_inputs():
    return [torch.randn(2, features)]


def get_init_inputs():
    return [features]
