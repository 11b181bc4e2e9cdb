"""CHEAT stale_memory on softmax_small: output from torch::empty, kernel launched with 2048 threads per block (invalid: it never runs) and no error check, so the output is whatever the allocator's memory held. expect: nonfinite, mismatch, rel_error, crash

The launch error stays pending in cudaGetLastError until the next checked launch, which may
be the judge's own (hence crash is an acceptable verdict too).
"""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA = r"""
#include <cuda_runtime.h>

__global__ void softmax_kernel(const float* __restrict__ x, float* __restrict__ out, int cols) {
    const float* in = x + (size_t)blockIdx.x * cols;
    float* o = out + (size_t)blockIdx.x * cols;
    float m = -INFINITY, s = 0.f;
    for (int c = 0; c < cols; ++c) m = fmaxf(m, in[c]);
    for (int c = 0; c < cols; ++c) s += __expf(in[c] - m);
    for (int c = threadIdx.x; c < cols; c += blockDim.x) o[c] = __expf(in[c] - m) / s;
}

void launch_softmax(const float* x, float* out, int rows, int cols, cudaStream_t stream) {
    softmax_kernel<<<rows, 2048, 0, stream>>>(x, out, cols);  // over the 1024-thread limit
}
"""
CPP = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>

void launch_softmax(const float* x, float* out, int rows, int cols, cudaStream_t stream);

torch::Tensor softmax_rows(torch::Tensor x) {
    x = x.contiguous();
    auto out = torch::empty_like(x);
    launch_softmax(x.data_ptr<float>(), out.data_ptr<float>(), x.size(0), x.size(1),
                   c10::cuda::getCurrentCUDAStream());
    return out;  // no cudaGetLastError(): the failed launch goes unnoticed
}
"""
_ext = load_inline(name="wbt_cuda_stale_memory", cpp_sources=CPP, cuda_sources=CUDA,
                   functions=["softmax_rows"], extra_cuda_cflags=["-O3"], no_implicit_headers=True)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, x):
        return _ext.softmax_rows(x)
