"""Depthwise 2D convolution, 64 channels, 3x3, stride 1, padding 1, no bias, on (16, 64, 256, 256).

KernelBench level 1 style depthwise conv (groups = channels). 9 multiply-adds per output
element against 8 bytes of traffic: memory-bound at this size (256 MiB in, 256 MiB out).
"""
import torch
import torch.nn as nn

BATCH_SIZE = 16
IN_CHANNELS = 64
KERNEL_SIZE = 3
STRIDE = 1
PADDING = 1
HEIGHT = 256
WIDTH = 256

DESCRIPTION = "Depthwise Conv2d 64 ch, k3 s1 p1, no bias, x (16, 64, 256, 256) fp32"
FLOPS = 2 * BATCH_SIZE * IN_CHANNELS * HEIGHT * WIDTH * KERNEL_SIZE * KERNEL_SIZE


class Model(nn.Module):
    def __init__(self, in_channels: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = False):
        super().__init__()
        self.conv2d = nn.Conv2d(in_channels, in_channels, kernel_size, stride=stride, padding=padding,
                                groups=in_channels, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv2d(x)


def get_inputs():
    x = torch.randn(BATCH_SIZE, IN_CHANNELS, HEIGHT, WIDTH)
    return [x]


def get_init_inputs():
    return [IN_CHANNELS, KERNEL_SIZE, STRIDE, PADDING, False]


# CPU sizes (docs/conventions.md): what the judge uses on a cpu target, where the stated GPU
# sizes would take minutes of compute per evaluation.
CPU_BATCH, CPU_HEIGHT, CPU_WIDTH = 2, 64, 64  # 64 channels as stated, 2 MiB
FLOPS_CPU = 2 * CPU_BATCH * IN_CHANNELS * CPU_HEIGHT * CPU_WIDTH * KERNEL_SIZE * KERNEL_SIZE


def get_inputs_cpu():
    return [torch.randn(CPU_BATCH, IN_CHANNELS, CPU_HEIGHT, CPU_WIDTH)]
