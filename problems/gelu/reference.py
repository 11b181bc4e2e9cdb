"""GELU, tanh approximation, on a (16384, 16384) FP32 tensor (1 GiB in, 1 GiB out).

0.5 * x * (1 + tanh(sqrt(2/pi) * (x + 0.044715 * x^3))), as in KernelBench's MinGPT GELU, run
through torch's fused F.gelu(approximate="tanh"). Purely memory-bound.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

ROWS = 16384
COLS = 16384

DESCRIPTION = "GELU (tanh approximation), x (16384, 16384) fp32"


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.gelu(x, approximate="tanh")


def get_inputs():
    x = torch.randn(ROWS, COLS)
    return [x]


def get_init_inputs():
    return []


# CPU sizes (docs/conventions.md): what the judge uses on a cpu target, where the stated GPU
# sizes would take minutes of compute per evaluation.
CPU_ROWS, CPU_COLS = 1024, 1024  # 4 MiB


def get_inputs_cpu():
    return [torch.randn(CPU_ROWS, CPU_COLS)]
