"""Softmax over dim 1 of a (4096, 65536) FP32 matrix (KernelBench level 1 style).

Memory-bound: 1 GiB in, 1 GiB out. A row is 256 KiB, too large for one SM's shared memory.
"""
import torch
import torch.nn as nn

BATCH_SIZE = 4096
DIM = 65536

DESCRIPTION = "softmax(x, dim=1), x (4096, 65536) fp32"
# Outputs average 1/65536 = 1.5e-5 and stay under ~2e-3 for randn rows, so the default absolute
# tolerance of 1e-2 would accept an all-zeros output. 1e-6 absolute keeps every element of a
# correct fp32 kernel (relative error ~1e-6, a few ulp from exp and the summation order) well
# inside, while zeros, constants and most wrong outputs fail element by element.
ATOL = 1e-6
RTOL = 1e-3


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(x, dim=1)


def get_inputs():
    x = torch.randn(BATCH_SIZE, DIM)
    return [x]


def get_init_inputs():
    return []


# CPU sizes (docs/conventions.md): what the judge uses on a cpu target, where the stated GPU
# sizes would take minutes of compute per evaluation.
CPU_BATCH, CPU_DIM = 256, 4096  # 4 MiB


def get_inputs_cpu():
    return [torch.randn(CPU_BATCH, CPU_DIM)]
