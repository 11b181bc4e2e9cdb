"""CHEAT other_stream on softmax_small: the C++ wrapper creates a new stream with cudaStreamCreate, launches a (slow, one thread per row) softmax on it and returns without syncing. expect: other_stream, timing_mismatch, mismatch, nonfinite, rel_error"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA = r"""
#include <cuda_runtime.h>

__global__ void softmax_row_per_thread(const float* __restrict__ x, float* __restrict__ out, int rows, int cols) {
    const int r = blockIdx.x * blockDim.x + threadIdx.x;
    if (r >= rows) return;
    const float* in = x + (size_t)r * cols;
    float* o = out + (size_t)r * cols;
    float m = -INFINITY, s = 0.f;
    for (int c = 0; c < cols; ++c) m = fmaxf(m, in[c]);
    for (int c = 0; c < cols; ++c) s += expf(in[c] - m);
    for (int c = 0; c < cols; ++c) o[c] = expf(in[c] - m) / s;
}

void launch_softmax(const float* x, float* out, int rows, int cols, cudaStream_t stream) {
    softmax_row_per_thread<<<(rows + 31) / 32, 32, 0, stream>>>(x, out, rows, cols);
}
"""
CPP = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>

void launch_softmax(const float* x, float* out, int rows, int cols, cudaStream_t stream);

torch::Tensor softmax_rows(torch::Tensor x) {
    x = x.contiguous();
    auto out = torch::empty_like(x);
    cudaStream_t side;
    cudaStreamCreate(&side);  // not the current stream: the judge's events never see this work
    launch_softmax(x.data_ptr<float>(), out.data_ptr<float>(), x.size(0), x.size(1), side);
    cudaError_t err = cudaGetLastError();
    TORCH_CHECK(err == cudaSuccess, cudaGetErrorString(err));
    cudaStreamDestroy(side);  // returns at once; the queued work still runs
    return out;
}
"""
_ext = load_inline(name="wbt_cuda_other_stream", cpp_sources=CPP, cuda_sources=CUDA, functions=["softmax_rows"],
                   extra_cuda_cflags=["-O3"], no_implicit_headers=True)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return _ext.softmax_rows(x)
