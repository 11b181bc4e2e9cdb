// Honest: its own relu kernel, launched on the stream it is given, error checked.
#include <cuda_runtime.h>
__global__ void relu_kernel(const float* x, float* y, long n) {
    long i = blockIdx.x * (long)blockDim.x + threadIdx.x;
    if (i < n) y[i] = fmaxf(x[i], 0.f);
}
int launch_relu(const float* x, float* y, long n, void* stream) {
    cudaStream_t s = (cudaStream_t)stream;
    relu_kernel<<<(unsigned)((n + 255) / 256), 256, 0, s>>>(x, y, n);
    return (int)cudaGetLastError();
}
