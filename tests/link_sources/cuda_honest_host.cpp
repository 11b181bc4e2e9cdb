// Honest host side of cuda_honest.cu: checks, allocation, the current stream.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
// The CPU torch wheel ships no c10/cuda headers: declare the stream getter as c10 does (the
// symbol, c10::cuda::getCurrentCUDAStream(signed char), is what the audit reads).
namespace c10 { namespace cuda {
struct CUDAStream { void* stream[2]; };
CUDAStream getCurrentCUDAStream(signed char device_index = -1);
} }
#include <c10/util/Exception.h>
int launch_relu(const float* x, float* y, long n, void* s);
at::Tensor forward(const at::Tensor& x) {
    TORCH_CHECK(x.is_cuda() && x.is_contiguous(), "expected a contiguous CUDA tensor");
    at::Tensor y = at::empty_like(x);
    int err = launch_relu(x.data_ptr<float>(), y.data_ptr<float>(), x.numel(), c10::cuda::getCurrentCUDAStream().stream[1]);
    TORCH_CHECK(err == 0, "launch failed");
    return y;
}
