"""Square FP16 matrix product C = A @ B at 4096 x 4096, fp16 in and out.

torch eager runs this through cuBLAS on the tensor cores (fp32 accumulation); a candidate
needs tensor cores (WMMA / mma / wgmma) to come close.
"""
import torch
import torch.nn as nn

N = 4096

DESCRIPTION = "C = A @ B, A and B (4096, 4096) fp16"
FLOPS = 2 * N**3
# With randn inputs |C| is about 64, where one fp16 ulp is 0.0625. A product accumulated in fp32
# and rounded once to fp16 (what cuBLAS does) stays within half an ulp of the exact result: on
# a (256 x 4096) @ (4096 x 512) CPU simulation its worst element used 5% of the 1e-2 + 1e-2*|ref|
# budget against a float64 reference. Accumulating in fp16 instead used 37x the budget, so these
# tolerances accept fp32-accumulated kernels and reject fp16-accumulated ones.
ATOL = 1e-2
RTOL = 1e-2


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return torch.matmul(A, B)


def get_inputs():
    A = torch.randn(N, N, dtype=torch.float16)
    B = torch.randn(N, N, dtype=torch.float16)
    return [A, B]


def get_init_inputs():
    return []


# CPU sizes (docs/conventions.md): what the judge uses on a cpu target, where the stated GPU
# sizes would take minutes of compute per evaluation.
# At K = 512, |C| is about 23 (fp16 ulp 0.016): fp32-accumulated kernels still use ~5% of the
# budget (measured against float64 on this CPU), as at the stated size.
CPU_N = 512
FLOPS_CPU = 2 * CPU_N**3


def get_inputs_cpu():
    return [torch.randn(CPU_N, CPU_N, dtype=torch.float16), torch.randn(CPU_N, CPU_N, dtype=torch.float16)]
