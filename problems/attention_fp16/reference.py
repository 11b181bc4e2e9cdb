"""Scaled dot-product attention, FP16, q, k, v (16, 16, 2048, 128), no mask, not causal.

torch eager dispatches to a flash-attention kernel (fp32 accumulation, tensor cores).
Output (16, 16, 2048, 128) fp16.
"""
import torch
import torch.nn as nn
import torch.nn.functional as F

BATCH_SIZE = 16
NUM_HEADS = 16
SEQ_LEN = 2048
HEAD_DIM = 128

DESCRIPTION = "SDPA(q, k, v), (16, 16, 2048, 128) fp16, no mask"
FLOPS = 4 * BATCH_SIZE * NUM_HEADS * SEQ_LEN * SEQ_LEN * HEAD_DIM  # QK^T and PV
# With randn q, k, v the scores are ~N(0, 1) and each output is an average over ~2048 keys, so
# outputs have std sqrt(e / 2048) ~ 0.036: the default absolute 1e-2 would be a quarter of a
# typical value and lets near-zero outputs through. fp16 output rounding (~3e-5 here) and fp16
# rounding of the probabilities (~1e-4) leave a correct kernel far inside 2e-3.
ATOL = 2e-3
RTOL = 1e-2


class Model(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return F.scaled_dot_product_attention(q, k, v)


def get_inputs():
    shape = (BATCH_SIZE, NUM_HEADS, SEQ_LEN, HEAD_DIM)
    q = torch.randn(shape, dtype=torch.float16)
    k = torch.randn(shape, dtype=torch.float16)
    v = torch.randn(shape, dtype=torch.float16)
    return [q, k, v]


def get_init_inputs():
    return []


# CPU sizes (docs/conventions.md): what the judge uses on a cpu target, where the stated GPU
# sizes would take minutes of compute per evaluation.
# 256 keys instead of 2048: outputs have std ~0.1, so ATOL 2e-3 is tighter relative to them
# than at the stated size; the CPU reference (fp32 accumulation) is 2.3e-4 from float64.
CPU_BATCH, CPU_HEADS, CPU_SEQ, CPU_HEAD_DIM = 2, 4, 256, 64
FLOPS_CPU = 4 * CPU_BATCH * CPU_HEADS * CPU_SEQ * CPU_SEQ * CPU_HEAD_DIM


def get_inputs_cpu():
    shape = (CPU_BATCH, CPU_HEADS, CPU_SEQ, CPU_HEAD_DIM)
    return [torch.randn(shape, dtype=torch.float16) for _ in range(3)]
