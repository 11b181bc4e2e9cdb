// at::cuda::mm from the C++ of a CUDA extension: the ATen CUDA kernel (cuBLAS) below the dispatcher.
#include <ATen/core/Tensor.h>
#include <ATen/ops/mm_cuda_dispatch.h>
// The CPU torch wheel ships no c10/cuda headers: declare the stream getter as c10 does (the
// symbol, c10::cuda::getCurrentCUDAStream(signed char), is what the audit reads).
namespace c10 { namespace cuda {
struct CUDAStream { void* stream[2]; };
CUDAStream getCurrentCUDAStream(signed char device_index = -1);
} }
at::Tensor forward(const at::Tensor& a, const at::Tensor& b) {
    (void)c10::cuda::getCurrentCUDAStream();
    return at::cuda::mm(a, b);
}
