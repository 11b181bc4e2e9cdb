"""Conv2d as an implicit GEMM: per image, out[oc][pixel] = W[oc][k] @ patches[k][pixel], bias fused.

The patch matrix is never built: each block gathers a BK x BN slice of it straight from x (with
zeros for the padding) into shared memory, next to the matching BK x BM slice of the weights,
and multiplies them with register blocking (TM output channels x TN pixels per thread). The next
slice is gathered into registers while the current one is multiplied (double buffering). A
block covers all 96 output channels, so each gathered input value is used 96 times. FP32 FMAs.
Compiled for an 11x11 kernel, stride 4, padding 2 (ModelNew and the wrapper check this).
"""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA_SRC = r"""
#include <cuda_runtime.h>
#include <stdint.h>

// Compiled for one conv geometry; the wrapper checks the weight shape and ModelNew the stride/pad.
#define KS 11       // kernel size
#define STRIDE 4
#define PAD 2

#define EPILOGUE(v) (v)  // plain conv: bias only

#define BM 96       // tune: 32, 48, 96
#define TM 6        // tune: 2, 4, 6
#define BN 128      // tune: 64, 128
#define TN 8        // tune: 4, 8
#define BK 8        // tune: 8, 16
#define NT ((BM / TM) * (BN / TN))
#define AS_LD (BM + 4)  // padded row: the transposed weight stores hit 32 different banks

static_assert(BM % TM == 0 && BN % TN == 0 && TM % 2 == 0, "thread tile must divide the block tile; TM even (float2 reads)");
static_assert((BM * BK) % NT == 0 && (BK * BN) % NT == 0, "tile loads must split evenly over threads");
static_assert(NT % BN == 0, "each thread must keep the same pixel columns across K tiles");
static_assert(NT >= 32 && NT <= 1024, "thread count out of range");

constexpr int A_LOADS = BM * BK / NT;
constexpr int B_LOADS = BK * BN / NT;
constexpr int KK = KS * KS;

// out[n][oc][p] = bias[oc] + sum_k w[oc][k] * patch_n[k][p], k = (c, kh, kw), p = (oh, ow):
// a GEMM per image whose B operand is gathered from x on the fly (implicit im2col, no buffer).
__global__ void __launch_bounds__(NT) conv2d_igemm_kernel(
        const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
        float* __restrict__ out, int Cin, int H, int W, int Cout, int Hout, int Wout) {
    __shared__ __align__(16) float As[2][BK][AS_LD];  // weights, transposed: As[k][oc]
    __shared__ __align__(16) float Bs[2][BK][BN];     // gathered input patches: Bs[k][p]
    const int tid = threadIdx.x;
    const int tx = tid % (BN / TN), ty = tid / (BN / TN);
    const int n = blockIdx.z;
    const int m0 = blockIdx.y * BM, p0 = blockIdx.x * BN;
    const int P = Hout * Wout, Ktot = Cin * KK;
    const float* xn = x + (int64_t)n * Cin * H * W;

    // The pixel a thread gathers is the same for every K tile: decode it once.
    const int my_j = tid % BN;
    const int my_p = p0 + my_j;
    const bool p_ok = my_p < P;
    const int oh = p_ok ? my_p / Wout : 0, ow = p_ok ? my_p % Wout : 0;
    const int ih0 = oh * STRIDE - PAD, iw0 = ow * STRIDE - PAD;

    float ra[A_LOADS], rb[B_LOADS];
    auto load_global = [&](int k0) {
        #pragma unroll
        for (int i = 0; i < A_LOADS; ++i) {
            int idx = tid + i * NT, m = idx / BK, kk = idx % BK;
            int oc = m0 + m, k = k0 + kk;
            ra[i] = (oc < Cout && k < Ktot) ? __ldg(w + (int64_t)oc * Ktot + k) : 0.f;
        }
        #pragma unroll
        for (int i = 0; i < B_LOADS; ++i) {
            int kk = (tid + i * NT) / BN;
            int k = k0 + kk;
            int c = k / KK, r = k - c * KK;
            int kh = r / KS, kw = r - kh * KS;
            int ih = ih0 + kh, iw = iw0 + kw;
            bool ok = p_ok && k < Ktot && ih >= 0 && ih < H && iw >= 0 && iw < W;
            rb[i] = ok ? __ldg(xn + ((int64_t)c * H + ih) * W + iw) : 0.f;
        }
    };
    auto store_shared = [&](int buf) {
        #pragma unroll
        for (int i = 0; i < A_LOADS; ++i) {
            int idx = tid + i * NT;
            As[buf][idx % BK][idx / BK] = ra[i];
        }
        #pragma unroll
        for (int i = 0; i < B_LOADS; ++i) Bs[buf][(tid + i * NT) / BN][my_j] = rb[i];
    };

    float acc[TM][TN];
    #pragma unroll
    for (int i = 0; i < TM; ++i)
        #pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.f;

    load_global(0);
    store_shared(0);
    __syncthreads();
    int buf = 0;
    for (int k0 = 0; k0 < Ktot; k0 += BK) {
        const bool more = k0 + BK < Ktot;
        if (more) load_global(k0 + BK);  // gather the next slice while computing this one
        #pragma unroll
        for (int k = 0; k < BK; ++k) {
            float a[TM], b[TN];
            #pragma unroll
            for (int i = 0; i < TM / 2; ++i) {
                float2 v = *reinterpret_cast<const float2*>(&As[buf][k][ty * TM + 2 * i]);
                a[2 * i] = v.x;
                a[2 * i + 1] = v.y;
            }
            // Pixels of a thread are BN/TN apart so a warp reads consecutive words (no conflicts).
            #pragma unroll
            for (int j = 0; j < TN; ++j) b[j] = Bs[buf][k][j * (BN / TN) + tx];
            #pragma unroll
            for (int i = 0; i < TM; ++i)
                #pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
        }
        if (more) store_shared(buf ^ 1);  // the other buffer was last read before the previous barrier
        __syncthreads();
        buf ^= 1;
    }

    #pragma unroll
    for (int i = 0; i < TM; ++i) {
        const int oc = m0 + ty * TM + i;
        if (oc >= Cout) continue;
        const float bv = __ldg(bias + oc);
        float* orow = out + ((int64_t)n * Cout + oc) * P;
        #pragma unroll
        for (int j = 0; j < TN; ++j) {
            const int p = p0 + j * (BN / TN) + tx;
            if (p < P) orow[p] = EPILOGUE(acc[i][j] + bv);
        }
    }
}

int conv_kernel_size() { return KS; }
int conv_stride() { return STRIDE; }
int conv_padding() { return PAD; }

void launch_conv2d(const float* x, const float* w, const float* b, float* out, int N, int Cin, int H, int W,
                   int Cout, int Hout, int Wout, cudaStream_t stream) {
    dim3 grid((Hout * Wout + BN - 1) / BN, (Cout + BM - 1) / BM, N);
    conv2d_igemm_kernel<<<grid, NT, 0, stream>>>(x, w, b, out, Cin, H, W, Cout, Hout, Wout);
}
"""

CPP_SRC = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>

int conv_kernel_size();
int conv_stride();
int conv_padding();
void launch_conv2d(const float* x, const float* w, const float* b, float* out, int N, int Cin, int H, int W,
                   int Cout, int Hout, int Wout, cudaStream_t stream);

torch::Tensor conv2d_forward(torch::Tensor x, torch::Tensor w, torch::Tensor b) {
    TORCH_CHECK(x.is_cuda() && w.is_cuda() && b.is_cuda(), "x, weight and bias must be CUDA tensors");
    TORCH_CHECK(x.scalar_type() == torch::kFloat32 && w.scalar_type() == torch::kFloat32 &&
                b.scalar_type() == torch::kFloat32, "x, weight and bias must be float32");
    TORCH_CHECK(x.is_contiguous() && w.is_contiguous() && b.is_contiguous(), "x, weight and bias must be contiguous");
    TORCH_CHECK(x.dim() == 4, "x must be (N, Cin, H, W)");
    const int64_t N = x.size(0), Cin = x.size(1), H = x.size(2), W = x.size(3), Cout = w.size(0);
    const int64_t ks = conv_kernel_size(), st = conv_stride(), pad = conv_padding();
    TORCH_CHECK(w.dim() == 4 && w.size(1) == Cin && w.size(2) == ks && w.size(3) == ks,
                "weight must be (Cout, ", Cin, ", ", ks, ", ", ks, "); the kernel is compiled for that size");
    TORCH_CHECK(b.dim() == 1 && b.size(0) == Cout, "bias must be (Cout,)");
    TORCH_CHECK(N > 0 && N <= 65535, "batch must be in [1, 65535] (grid.z)");
    const int64_t Hout = (H + 2 * pad - ks) / st + 1, Wout = (W + 2 * pad - ks) / st + 1;
    TORCH_CHECK(H + 2 * pad >= ks && W + 2 * pad >= ks, "input smaller than the kernel");
    TORCH_CHECK(Cin * H * W <= INT32_MAX && Hout * Wout <= INT32_MAX, "image too large for 32-bit indexing");
    auto out = torch::empty({N, Cout, Hout, Wout}, x.options());
    launch_conv2d(x.data_ptr<float>(), w.data_ptr<float>(), b.data_ptr<float>(), out.data_ptr<float>(), (int)N,
                  (int)Cin, (int)H, (int)W, (int)Cout, (int)Hout, (int)Wout, c10::cuda::getCurrentCUDAStream());
    cudaError_t err = cudaGetLastError();
    TORCH_CHECK(err == cudaSuccess, "conv2d kernel launch failed: ", cudaGetErrorString(err));
    return out;
}
"""

_ext = load_inline(
    name="conv2d_implicit_gemm",
    cpp_sources=[CPP_SRC],
    cuda_sources=[CUDA_SRC],
    functions=["conv2d_forward"],
    no_implicit_headers=True,
    extra_cuda_cflags=["-O3"],
    verbose=False,
)


class ModelNew(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int = 1, padding: int = 0):
        super().__init__()
        if (kernel_size, stride, padding) != (11, 4, 2):
            raise ValueError("this kernel is compiled for kernel_size=11, stride=4, padding=2")
        # Same parameters as Model (same order and shapes), used only for their values.
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ext.conv2d_forward(x.contiguous(), self.conv.weight.contiguous(), self.conv.bias.contiguous())
