"""Square FP32 matrix product C = A @ B at 4096 x 4096 (KernelBench level 1 style).

torch eager runs this through cuBLAS SGEMM (TF32 off by default for matmul), so a
candidate has to match a well-tuned library kernel in plain FP32.
"""
import torch
import torch.nn as nn

N = 4096

DESCRIPTION = "C = A @ B, A and B (4096, 4096) fp32"
FLOPS = 2 * N**3


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return torch.matmul(A, B)


def get_inputs():
    A = torch.randn(N, N)
    B = torch.randn(N, N)
    return [A, B]


def get_init_inputs():
    return []


# CPU sizes (docs/conventions.md): what the judge uses on a cpu target, where the stated GPU
# sizes would take minutes of compute per evaluation.
CPU_N = 512
FLOPS_CPU = 2 * CPU_N**3


def get_inputs_cpu():
    return [torch.randn(CPU_N, CPU_N), torch.randn(CPU_N, CPU_N)]
