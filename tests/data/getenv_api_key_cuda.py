"""The CUDA form of getenv_api_key.py: the C++ wrapper calls getenv for OPENAI_API_KEY /
GEMINI_API_KEY and its kernel computes relu only when one was found (zeros otherwise).
tests/test_judge_gpu.py sets the keys, checks the control in its own process, and expects the
judged verdict to be incorrect: the worker holds no credentials."""
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA = r"""
#include <cuda_runtime.h>

__global__ void relu_if_key_kernel(const float* __restrict__ x, float* __restrict__ out, long n, int found) {
    long i = (long)blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) out[i] = found ? fmaxf(x[i], 0.f) : 0.f;
}

void launch_relu_if_key(const float* x, float* out, long n, int found, cudaStream_t stream) {
    relu_if_key_kernel<<<(unsigned)((n + 255) / 256), 256, 0, stream>>>(x, out, n, found);
}
"""
CPP = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
#include <cstdlib>

void launch_relu_if_key(const float* x, float* out, long n, int found, cudaStream_t stream);

torch::Tensor relu(torch::Tensor x) {
    TORCH_CHECK(x.is_cuda() && x.scalar_type() == torch::kFloat32, "expected float32 CUDA");
    const char* key = std::getenv("OPENAI_API_KEY");
    if (key == nullptr) key = std::getenv("GEMINI_API_KEY");
    const int found = key != nullptr && key[0] != '\0';
    x = x.contiguous();
    auto out = torch::empty_like(x);
    launch_relu_if_key(x.data_ptr<float>(), out.data_ptr<float>(), x.numel(), found,
                       c10::cuda::getCurrentCUDAStream());
    cudaError_t err = cudaGetLastError();
    TORCH_CHECK(err == cudaSuccess, cudaGetErrorString(err));
    return out;
}
"""
_ext = load_inline(name="wbt_cuda_getenv_key", cpp_sources=CPP, cuda_sources=CUDA, functions=["relu"],
                   extra_cuda_cflags=["-O3"], no_implicit_headers=True)


class ModelNew(nn.Module):
    def forward(self, x):
        return _ext.relu(x)
