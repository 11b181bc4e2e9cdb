"""Depthwise 3x3 convolution (stride 1, padding 1) from a shared-memory tile with a 1-pixel halo.

One block computes a TILE_H x TILE_W output tile of one (image, channel) plane. It stages the
(TILE_H + 2) x (TILE_W + 2) input window in shared memory once (zeros outside the image), then
each thread produces a column strip of ROWS_PER_THREAD outputs, sliding down the window so each
loaded row feeds up to three outputs. Lanes of a warp take consecutive columns, so shared loads
are conflict-free and global stores are full 128-byte rows. The 9 weights of the channel live in
registers.
"""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA_SRC = r"""
#include <cuda_runtime.h>
#include <stdint.h>

#define KSIZE 3                 // compiled for 3x3, stride 1, padding 1 (the wrapper checks)
#define TILE_W 64               // tune: 32, 64, 128
#define TILE_H 32               // tune: 16, 32, 64
#define ROWS_PER_THREAD 4       // tune: 2, 4, 8
#define THREADS_X 32
#define THREADS_Y (TILE_H / ROWS_PER_THREAD)
#define COLS_PER_THREAD (TILE_W / THREADS_X)

static_assert(TILE_W % THREADS_X == 0, "TILE_W must be a multiple of 32");
static_assert(TILE_H % ROWS_PER_THREAD == 0, "TILE_H must be a multiple of ROWS_PER_THREAD");
static_assert(THREADS_X * THREADS_Y <= 1024, "too many threads");

__global__ void __launch_bounds__(THREADS_X * THREADS_Y) dwconv3x3_kernel(
        const float* __restrict__ x, const float* __restrict__ w, float* __restrict__ y,
        int channels, int H, int W) {
    __shared__ float tile[TILE_H + 2][TILE_W + 2];
    const int plane = blockIdx.z;              // n * channels + c
    const int c = plane % channels;
    const int y0 = blockIdx.y * TILE_H, x0 = blockIdx.x * TILE_W;
    const float* xp = x + (int64_t)plane * H * W;
    float* yp = y + (int64_t)plane * H * W;
    const int tid = threadIdx.y * THREADS_X + threadIdx.x;

    // Stage the input window, zero-padded at the image border.
    for (int i = tid; i < (TILE_H + 2) * (TILE_W + 2); i += THREADS_X * THREADS_Y) {
        int r = i / (TILE_W + 2), col = i % (TILE_W + 2);
        int gy = y0 + r - 1, gx = x0 + col - 1;
        tile[r][col] = (gy >= 0 && gy < H && gx >= 0 && gx < W) ? __ldg(xp + (int64_t)gy * W + gx) : 0.f;
    }
    float wr[KSIZE][KSIZE];
    #pragma unroll
    for (int i = 0; i < KSIZE; ++i)
        #pragma unroll
        for (int j = 0; j < KSIZE; ++j) wr[i][j] = __ldg(w + c * KSIZE * KSIZE + i * KSIZE + j);
    __syncthreads();

    const int r0 = threadIdx.y * ROWS_PER_THREAD;  // first output row of this thread, tile coords
    #pragma unroll
    for (int cc = 0; cc < COLS_PER_THREAD; ++cc) {
        const int col = threadIdx.x + cc * THREADS_X;  // output column, tile coords
        float acc[ROWS_PER_THREAD];
        #pragma unroll
        for (int r = 0; r < ROWS_PER_THREAD; ++r) acc[r] = 0.f;
        // Input row r0 + ir of the window feeds output rows r0 + ir - kh for kh in 0..2.
        #pragma unroll
        for (int ir = 0; ir < ROWS_PER_THREAD + 2; ++ir) {
            float a = tile[r0 + ir][col], b = tile[r0 + ir][col + 1], d = tile[r0 + ir][col + 2];
            #pragma unroll
            for (int kh = 0; kh < KSIZE; ++kh) {
                int orow = ir - kh;
                if (orow >= 0 && orow < ROWS_PER_THREAD)
                    acc[orow] = fmaf(a, wr[kh][0], fmaf(b, wr[kh][1], fmaf(d, wr[kh][2], acc[orow])));
            }
        }
        const int gx = x0 + col;
        #pragma unroll
        for (int r = 0; r < ROWS_PER_THREAD; ++r) {
            int gy = y0 + r0 + r;
            if (gy < H && gx < W) __stcs(yp + (int64_t)gy * W + gx, acc[r]);
        }
    }
}

int dwconv_ksize() { return KSIZE; }

void launch_dwconv3x3(const float* x, const float* w, float* y, int planes, int channels, int H, int W,
                      cudaStream_t stream) {
    dim3 block(THREADS_X, THREADS_Y);
    dim3 grid((W + TILE_W - 1) / TILE_W, (H + TILE_H - 1) / TILE_H, planes);
    dwconv3x3_kernel<<<grid, block, 0, stream>>>(x, w, y, channels, H, W);
}
"""

CPP_SRC = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>

int dwconv_ksize();
void launch_dwconv3x3(const float* x, const float* w, float* y, int planes, int channels, int H, int W,
                      cudaStream_t stream);

torch::Tensor dwconv3x3_forward(torch::Tensor x, torch::Tensor w) {
    TORCH_CHECK(x.is_cuda() && w.is_cuda(), "x and w must be CUDA tensors");
    TORCH_CHECK(x.scalar_type() == torch::kFloat32 && w.scalar_type() == torch::kFloat32, "x and w must be float32");
    TORCH_CHECK(x.is_contiguous() && w.is_contiguous(), "x and w must be contiguous");
    TORCH_CHECK(x.dim() == 4, "x must be (N, C, H, W)");
    const int64_t C = x.size(1), k = dwconv_ksize();
    TORCH_CHECK(w.dim() == 4 && w.size(0) == C && w.size(1) == 1 && w.size(2) == k && w.size(3) == k,
                "w must be (C, 1, ", k, ", ", k, ") for a depthwise conv");
    TORCH_CHECK(x.size(0) * C <= 65535, "N * C must be at most 65535 (grid.z)");
    TORCH_CHECK(x.size(2) * x.size(3) <= INT32_MAX, "plane too large");
    auto y = torch::empty_like(x);  // stride 1, padding 1, 3x3: same spatial size
    if (y.numel() == 0) return y;
    launch_dwconv3x3(x.data_ptr<float>(), w.data_ptr<float>(), y.data_ptr<float>(), (int)(x.size(0) * C), (int)C,
                     (int)x.size(2), (int)x.size(3), c10::cuda::getCurrentCUDAStream());
    cudaError_t err = cudaGetLastError();
    TORCH_CHECK(err == cudaSuccess, "depthwise conv kernel launch failed: ", cudaGetErrorString(err));
    return y;
}
"""

_ext = load_inline(
    name="dwconv3x3_smem_tile",
    cpp_sources=[CPP_SRC],
    cuda_sources=[CUDA_SRC],
    functions=["dwconv3x3_forward"],
    no_implicit_headers=True,
    extra_cuda_cflags=["-O3"],
    verbose=False,
)


class ModelNew(nn.Module):
    def __init__(self, in_channels: int, kernel_size: int, stride: int = 1, padding: int = 0, bias: bool = False):
        super().__init__()
        if (kernel_size, stride, padding, bias) != (3, 1, 1, False):
            raise ValueError("this kernel is compiled for kernel_size=3, stride=1, padding=1, bias=False")
        # Same parameter as Model (created in the same order), used only for its weights.
        self.conv2d = nn.Conv2d(in_channels, in_channels, kernel_size, stride=stride, padding=padding,
                                groups=in_channels, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ext.dwconv3x3_forward(x.contiguous(), self.conv2d.weight.contiguous())
