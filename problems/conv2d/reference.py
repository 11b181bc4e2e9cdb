"""Standard 2D convolution, 3 -> 96 channels, 11x11 kernel, stride 4, padding 2, on (100, 3, 224, 224).

The first layer of AlexNet (KernelBench level 1 style). Output (100, 96, 55, 55). The conv has
a bias, as nn.Conv2d does by default.
"""
import torch
import torch.nn as nn

BATCH = 100
IN_CHANNELS = 3
OUT_CHANNELS = 96
KERNEL_SIZE = 11
STRIDE = 4
PADDING = 2
HEIGHT = 224
WIDTH = 224
H_OUT = (HEIGHT + 2 * PADDING - KERNEL_SIZE) // STRIDE + 1  # 55
W_OUT = (WIDTH + 2 * PADDING - KERNEL_SIZE) // STRIDE + 1  # 55

DESCRIPTION = "Conv2d 3->96, k11 s4 p2, x (100, 3, 224, 224) fp32"
FLOPS = 2 * OUT_CHANNELS * H_OUT * W_OUT * IN_CHANNELS * KERNEL_SIZE * KERNEL_SIZE * BATCH


class Model(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


def get_inputs():
    x = torch.randn(BATCH, IN_CHANNELS, HEIGHT, WIDTH)
    return [x]


def get_init_inputs():
    return [IN_CHANNELS, OUT_CHANNELS, KERNEL_SIZE, STRIDE, PADDING]


# CPU sizes (docs/conventions.md): what the judge uses on a cpu target, where the stated GPU
# sizes would take minutes of compute per evaluation.
CPU_BATCH, CPU_HEIGHT, CPU_WIDTH = 2, 112, 112  # the same layer on 2 half-size images: conv output 27 x 27
CPU_H_OUT = (CPU_HEIGHT + 2 * PADDING - KERNEL_SIZE) // STRIDE + 1
CPU_W_OUT = (CPU_WIDTH + 2 * PADDING - KERNEL_SIZE) // STRIDE + 1
FLOPS_CPU = 2 * OUT_CHANNELS * CPU_H_OUT * CPU_W_OUT * IN_CHANNELS * KERNEL_SIZE * KERNEL_SIZE * CPU_BATCH


def get_inputs_cpu():
    return [torch.randn(CPU_BATCH, IN_CHANNELS, CPU_HEIGHT, CPU_WIDTH)]
