"""LayerNorm over the last three dims (64, 256, 256) of a (16, 64, 256, 256) FP32 tensor.

KernelBench level 1 style. Each of the 16 samples normalises 4M elements, with an elementwise
affine weight and bias of shape (64, 256, 256) (nn.LayerNorm defaults, eps 1e-5). torch eager
uses one block per normalised row here, so only 16 blocks run: a kernel that spreads each
sample over many blocks wins by a wide margin.
"""
import torch
import torch.nn as nn

BATCH_SIZE = 16
FEATURES = 64
DIM1 = 256
DIM2 = 256

DESCRIPTION = "LayerNorm((64, 256, 256)) on x (16, 64, 256, 256) fp32"


class Model(nn.Module):
    def __init__(self, normalized_shape: tuple):
        super().__init__()
        self.ln = nn.LayerNorm(normalized_shape=normalized_shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln(x)


def get_inputs():
    x = torch.randn(BATCH_SIZE, FEATURES, DIM1, DIM2)
    return [x]


def get_init_inputs():
    return [(FEATURES, DIM1, DIM2)]


# CPU sizes (docs/conventions.md): what the judge uses on a cpu target, where the stated GPU
# sizes would take minutes of compute per evaluation.
CPU_BATCH, CPU_FEATURES, CPU_DIM1, CPU_DIM2 = 8, 16, 64, 64  # 2 MiB, 64 Ki elements per sample


def get_inputs_cpu():
    return [torch.randn(CPU_BATCH, CPU_FEATURES, CPU_DIM1, CPU_DIM2)]


def get_init_inputs_cpu():
    return [(CPU_FEATURES, CPU_DIM1, CPU_DIM2)]
