"""Conv2d 3->96, k11 s4 p2 as a persistent implicit GEMM on TF32 tensor cores (mma.sync m16n8k8).

GEMM view per tile: out[oc][pixel] = W[oc][k] * patch[k][pixel] + bias, k = (c, kh, kw), K = 363
padded to 368 (46 k-steps of 8). One CTA per SM (persistent, 256 threads, ~224 KB smem) walks a
contiguous strip of tiles; a tile is 2 conv output rows of one image (110 pixels, 14 n8-tiles) x all
96 output channels (6 m16-tiles).
- The weights are loaded once per CTA (raw copy through cp.async, then rearranged in shared memory
  into the exact m16n8k8 A-fragment order and rounded to TF32), so each warp reads one conflict-free
  float4 per m-tile per k-step for the whole kernel: no per-tile weight traffic.
- The input patch of a tile (3 channels x 15 input rows x 227 columns, zero padding included) is
  staged in shared memory as TF32 (cvt.rna). Its row stride (239 = 3 mod 4) makes koff(k) = k mod 4
  so the B-fragment gathers (pixel g, k = t / t+4) hit 32 different banks; a tiny table gives koff.
- The next tile's patch is loaded into registers (coalesced, one column per thread) while the
  tensor cores work on the current one, then stored into the second patch buffer (double buffer).
- 8 warps = 2 channel halves (3 m-tiles) x 4 pixel groups (4,4,3,3 n-tiles; each SM sub-partition
  gets 7 n-tiles' worth). FP32 accumulate; bias added in the epilogue.
- The epilogue stages the 96 x 110 tile (swizzled, conflict-free float2 stores) in the just-used
  patch buffer and writes each channel's 110 (or 55) consecutive outputs with coalesced stores.
TF32 operands with FP32 accumulation match the reference's own precision (torch's eager conv runs
with TF32 allowed). Compiled for x (N, 3, 224, 224), weight (96, 3, 11, 11); the wrapper checks.
"""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA_SRC = r"""
#include <cuda_runtime.h>
#include <stdint.h>

// ---- problem geometry (fixed; the wrapper checks shapes) ----
#define CIN 3
#define COUT 96
#define KS 11
#define STRIDE 4
#define PAD 2
#define H_IN 224
#define W_IN 224
#define H_OUT 55
#define W_OUT 55
#define KTOT (CIN * KS * KS)          // 363
#define KSTEPS ((KTOT + 7) / 8)       // 46 k-steps of 8
#define KPAD (KSTEPS * 8)             // 368
#define MTILES (COUT / 16)            // 6 m16 tiles of output channels

// ---- tiling ----
#define NTHREADS 256                  // 8 warps: 2 channel halves x 4 pixel groups (hard-wired)
#define TROWS 2                       // conv output rows per tile (smem budget: 2 patch buffers)
#define TILE_PX (TROWS * W_OUT)       // 110 pixels (14 n8 tiles, the last one 6/8 used)
#define TILES_PER_IMG ((H_OUT + TROWS - 1) / TROWS)   // 28 (the last tile has 1 row)
#define PROWS ((TROWS - 1) * STRIDE + KS)             // 15 input rows per channel
#define PCOLS ((W_OUT - 1) * STRIDE + KS)             // 227 input columns (iw = -2 .. 224)
#define LDX 239                       // patch row stride: >= PCOLS and == 3 mod 4 (conflict-free gathers)
#define PATCH_FLOATS (CIN * PROWS * LDX)              // 10755
#define PATCH_STRIDE ((PATCH_FLOATS + 3) / 4 * 4)     // 10756 (keeps buffer 1 16-byte aligned)
#define STAGE_LD 112                  // epilogue staging row (one output channel), swizzled
#define WFRAG_FLOATS (KSTEPS * MTILES * 32 * 4)       // 35328: weights in A-fragment order
#define HALF_W_FLOATS (COUT / 2 * KTOT)               // 17424: raw weight half staged via cp.async
#define SMEM_FLOATS (WFRAG_FLOATS + 2 * PATCH_STRIDE)
#define SMEM_BYTES (SMEM_FLOATS * 4 + KPAD * 4)       // + koff table

#define KUNROLL 2        // tune: 1, 2, 3, 4
// STRIP_ORDER 1: each CTA walks a contiguous strip of tiles (neighbour tiles share 7 input rows
// through L2); 0: round-robin over CTAs.
#define STRIP_ORDER 1    // tune: 0, 1

constexpr int kUnroll = KUNROLL;  // #pragma unroll does not expand macros

static_assert(LDX >= PCOLS && (LDX % 4) == 3, "patch stride must cover 227 columns and be 3 mod 4");
static_assert(COUT * STAGE_LD <= PATCH_FLOATS, "epilogue staging must fit in one patch buffer");
static_assert(STAGE_LD >= TILE_PX && STAGE_LD % 16 == 0, "staging row must hold a tile row pair");
static_assert(HALF_W_FLOATS <= 2 * PATCH_STRIDE && HALF_W_FLOATS % 4 == 0, "raw weight half must fit");
static_assert(PCOLS <= NTHREADS, "one patch column per thread");
static_assert(SMEM_BYTES <= 232448, "shared memory over the 227 KB opt-in limit");

__device__ __forceinline__ float to_tf32(float f) {
    uint32_t r;
    asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(r) : "f"(f));
    return __uint_as_float(r);
}

// D += A(16x8, row) * B(8x8, col), TF32 inputs, FP32 accumulate.
__device__ __forceinline__ void mma_tf32(float (&d)[4], const float4& a, float b0, float b1) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(__float_as_uint(a.x)), "r"(__float_as_uint(a.y)), "r"(__float_as_uint(a.z)),
          "r"(__float_as_uint(a.w)), "r"(__float_as_uint(b0)), "r"(__float_as_uint(b1)));
}

__device__ __forceinline__ void cp_async16(void* smem_dst, const void* gmem_src) {
    const uint32_t d = (uint32_t)__cvta_generic_to_shared(smem_dst);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" :: "r"(d), "l"(gmem_src) : "memory");
}
__device__ __forceinline__ void cp_async_wait_all() {
    asm volatile("cp.async.commit_group;\n\tcp.async.wait_group 0;" ::: "memory");
}

__global__ void __launch_bounds__(NTHREADS, 1) conv_tf32_kernel(
        const float* __restrict__ x, const float* __restrict__ w, const float* __restrict__ bias,
        float* __restrict__ out, int N) {
    extern __shared__ __align__(16) float smem[];
    float* wfrag = smem;                                   // [KSTEPS][MTILES][32 lanes][4]
    float* patch = smem + WFRAG_FLOATS;                    // 2 buffers of [CIN*PROWS][LDX]
    int* ktab = reinterpret_cast<int*>(smem + SMEM_FLOATS);  // [KSTEPS][4 t][2]: koff(8s+t), koff(8s+t+4)

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t = lane & 3;

    // ---- weights -> A fragments (TF32), once per CTA; raw halves staged in the patch buffers ----
    for (int h = 0; h < 2; ++h) {
        const float* src = w + h * HALF_W_FLOATS;
        for (int i = tid; i < HALF_W_FLOATS / 4; i += NTHREADS) cp_async16(patch + 4 * i, src + 4 * i);
        cp_async_wait_all();
        __syncthreads();
        for (int e = tid; e < (COUT / 2) * KPAD; e += NTHREADS) {
            const int ocl = e / KPAD, k = e - ocl * KPAD;
            const float v = k < KTOT ? patch[ocl * KTOT + k] : 0.f;
            const int oc = h * (COUT / 2) + ocl;
            const int mt = oc >> 4, r = oc & 15, s = k >> 3, kk = k & 7;
            // a0:(row g, col t) a1:(g+8, t) a2:(g, t+4) a3:(g+8, t+4)
            wfrag[((s * MTILES + mt) * 32 + (r & 7) * 4 + (kk & 3)) * 4 + (r >> 3) + 2 * (kk >> 2)] = to_tf32(v);
        }
        __syncthreads();  // the raw half is consumed before the next copy / the first patch lands
    }
    // ---- koff table: smem offset of k = (c, kh, kw) relative to a pixel's window origin ----
    for (int k = tid; k < KPAD; k += NTHREADS) {
        int kk = k;
        while (kk >= KTOT) kk -= 4;  // padded k (zero weight): a real, same-bank element
        const int c = kk / (KS * KS), rr = kk - c * (KS * KS), kh = rr / KS, kw = rr - kh * KS;
        ktab[((k >> 3) * 4 + (k & 3)) * 2 + ((k >> 2) & 1)] = (c * PROWS + kh) * LDX + kw;
    }

    // ---- warp roles ----
    const int ocg = warp & 1, pg = warp >> 1;
    const int mt0 = ocg * 3;                              // m16 tiles mt0..mt0+2 (48 channels)
    const int nt0 = pg < 2 ? pg * 4 : 8 + (pg - 2) * 3;   // n8 tiles: 4,4,3,3 per pixel group
    const bool full = pg < 2;                             // has a 4th n-tile
    int pb[4];                                            // window origin of pixel (nt0+j)*8+g
    #pragma unroll
    for (int j = 0; j < 4; ++j) {
        int p = (nt0 + ((j == 3 && !full) ? 2 : j)) * 8 + g;
        p = p < TILE_PX ? p : TILE_PX - 1;                // padded pixels reuse a real one (discarded)
        pb[j] = (p / W_OUT) * STRIDE * LDX + (p % W_OUT) * STRIDE;
    }
    float bv[3][2];
    #pragma unroll
    for (int i = 0; i < 3; ++i) {
        bv[i][0] = __ldg(bias + (mt0 + i) * 16 + g);
        bv[i][1] = __ldg(bias + (mt0 + i) * 16 + g + 8);
    }
    const int sw = ((g >> 1) & 1) << 3;                   // staging swizzle (channel bit 1 -> px bit 3)

    // ---- tiles of this CTA ----
    const int T = N * TILES_PER_IMG;
    int t_begin, t_step, count;
#if STRIP_ORDER
    t_begin = (int)((int64_t)blockIdx.x * T / gridDim.x);
    count = (int)((int64_t)(blockIdx.x + 1) * T / gridDim.x) - t_begin;
    t_step = 1;
#else
    t_begin = blockIdx.x;
    count = blockIdx.x < T ? (T - 1 - (int)blockIdx.x) / (int)gridDim.x + 1 : 0;
    t_step = gridDim.x;
#endif

    // One patch column per thread (tid < 227): 45 rows, zero outside the image.
    float pre[CIN * PROWS];
    const int iw = tid - PAD;
    const bool col_ok = tid < PCOLS && iw >= 0 && iw < W_IN;
    auto load_patch = [&](int tile) {
        const int n = tile / TILES_PER_IMG, rt = tile - n * TILES_PER_IMG;
        const int ih0 = rt * TROWS * STRIDE - PAD;
        const float* xn = x + (int64_t)n * (CIN * H_IN * W_IN);
        #pragma unroll
        for (int c = 0; c < CIN; ++c)
            #pragma unroll
            for (int r = 0; r < PROWS; ++r) {
                const int ih = ih0 + r;
                pre[c * PROWS + r] = (col_ok && ih >= 0 && ih < H_IN) ? __ldg(xn + (c * H_IN + ih) * W_IN + iw) : 0.f;
            }
    };
    auto store_patch = [&](float* buf) {
        if (tid < PCOLS) {
            #pragma unroll
            for (int r = 0; r < CIN * PROWS; ++r) buf[r * LDX + tid] = to_tf32(pre[r]);
        }
    };

    if (count > 0) {
        load_patch(t_begin);
        store_patch(patch);
    }
    const float4* wf4 = reinterpret_cast<const float4*>(wfrag) + mt0 * 32 + lane;
    const int2* kt2 = reinterpret_cast<const int2*>(ktab) + t;

    for (int it = 0; it < count; ++it) {
        const int tile = t_begin + it * t_step;
        float* cur = patch + (it & 1) * PATCH_STRIDE;
        float* nxt = patch + ((it & 1) ^ 1) * PATCH_STRIDE;
        __syncthreads();  // cur is complete; the previous epilogue is done reading nxt
        const bool has_next = it + 1 < count;
        if (has_next) load_patch(tile + t_step);  // in flight during the MMAs

        float acc[3][4][4];
        #pragma unroll
        for (int i = 0; i < 3; ++i)
            #pragma unroll
            for (int j = 0; j < 4; ++j)
                #pragma unroll
                for (int q = 0; q < 4; ++q) acc[i][j][q] = 0.f;

        #pragma unroll kUnroll
        for (int s = 0; s < KSTEPS; ++s) {
            const float4 a0 = wf4[(s * MTILES + 0) * 32];
            const float4 a1 = wf4[(s * MTILES + 1) * 32];
            const float4 a2 = wf4[(s * MTILES + 2) * 32];
            const int2 ko = kt2[s * 4];
            #pragma unroll
            for (int j = 0; j < 4; ++j) {
                if (j < 3 || full) {
                    const float b0 = cur[pb[j] + ko.x];   // B(k=t,   n=g)
                    const float b1 = cur[pb[j] + ko.y];   // B(k=t+4, n=g)
                    mma_tf32(acc[0][j], a0, b0, b1);
                    mma_tf32(acc[1][j], a1, b0, b1);
                    mma_tf32(acc[2][j], a2, b0, b1);
                }
            }
        }
        if (has_next) store_patch(nxt);
        __syncthreads();  // everyone is done reading cur: reuse it as the output staging tile

        #pragma unroll
        for (int i = 0; i < 3; ++i) {
            const int oc = (mt0 + i) * 16 + g;
            #pragma unroll
            for (int j = 0; j < 4; ++j) {
                if (j < 3 || full) {
                    const int px = ((nt0 + j) * 8 + 2 * t) ^ sw;
                    *reinterpret_cast<float2*>(cur + oc * STAGE_LD + px) =
                        make_float2(acc[i][j][0] + bv[i][0], acc[i][j][1] + bv[i][0]);
                    *reinterpret_cast<float2*>(cur + (oc + 8) * STAGE_LD + px) =
                        make_float2(acc[i][j][2] + bv[i][1], acc[i][j][3] + bv[i][1]);
                }
            }
        }
        __syncthreads();

        const int n = tile / TILES_PER_IMG, rt = tile - n * TILES_PER_IMG;
        const int oh0 = rt * TROWS;
        const int valid = (H_OUT - oh0 < TROWS ? H_OUT - oh0 : TROWS) * W_OUT;
        float* outp = out + (int64_t)n * (COUT * H_OUT * W_OUT) + oh0 * W_OUT;
        for (int idx = tid; idx < COUT * TILE_PX; idx += NTHREADS) {
            const int oc = idx / TILE_PX, px = idx - oc * TILE_PX;
            if (px < valid)
                __stcs(outp + oc * (H_OUT * W_OUT) + px, cur[oc * STAGE_LD + (px ^ (((oc >> 1) & 1) << 3))]);
        }
    }
}

int conv_tf32_launch(const float* x, const float* w, const float* b, float* out, int N, cudaStream_t stream) {
    static bool attr_set = false;
    if (!attr_set) {
        cudaError_t e = cudaFuncSetAttribute(conv_tf32_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_BYTES);
        if (e != cudaSuccess) return (int)e;
        attr_set = true;
    }
    int dev = 0, sms = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
    if (sms <= 0) sms = 132;
    const int tiles = N * TILES_PER_IMG;
    const int grid = tiles < sms ? tiles : sms;
    conv_tf32_kernel<<<grid, NTHREADS, SMEM_BYTES, stream>>>(x, w, b, out, N);
    return (int)cudaGetLastError();
}
"""

CPP_SRC = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>

int conv_tf32_launch(const float* x, const float* w, const float* b, float* out, int N, cudaStream_t stream);

torch::Tensor conv2d_forward(torch::Tensor x, torch::Tensor w, torch::Tensor b) {
    TORCH_CHECK(x.is_cuda() && w.is_cuda() && b.is_cuda(), "x, weight and bias must be CUDA tensors");
    TORCH_CHECK(x.scalar_type() == torch::kFloat32 && w.scalar_type() == torch::kFloat32 &&
                b.scalar_type() == torch::kFloat32, "x, weight and bias must be float32");
    TORCH_CHECK(x.is_contiguous() && w.is_contiguous() && b.is_contiguous(), "x, weight and bias must be contiguous");
    TORCH_CHECK(x.dim() == 4 && x.size(1) == 3 && x.size(2) == 224 && x.size(3) == 224,
                "x must be (N, 3, 224, 224): the kernel is compiled for that size");
    TORCH_CHECK(w.dim() == 4 && w.size(0) == 96 && w.size(1) == 3 && w.size(2) == 11 && w.size(3) == 11,
                "weight must be (96, 3, 11, 11)");
    TORCH_CHECK(b.dim() == 1 && b.size(0) == 96, "bias must be (96,)");
    TORCH_CHECK(reinterpret_cast<uintptr_t>(w.data_ptr()) % 16 == 0, "weight must be 16-byte aligned");
    const int64_t N = x.size(0);
    TORCH_CHECK(N > 0 && N * 28 <= INT32_MAX, "bad batch size");
    auto out = torch::empty({N, 96, 55, 55}, x.options());
    int err = conv_tf32_launch(x.data_ptr<float>(), w.data_ptr<float>(), b.data_ptr<float>(), out.data_ptr<float>(),
                               (int)N, c10::cuda::getCurrentCUDAStream());
    TORCH_CHECK(err == 0, "conv2d tf32 kernel launch failed: ", cudaGetErrorString((cudaError_t)err));
    return out;
}
"""

_ext = load_inline(
    name="conv2d_tf32_mma_implicit",
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
        if (in_channels, out_channels, kernel_size, stride, padding) != (3, 96, 11, 4, 2):
            raise ValueError("this kernel is compiled for Conv2d(3, 96, 11, stride=4, padding=2)")
        # Same parameters as Model (same order and shapes), used only for their values.
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size=kernel_size, stride=stride, padding=padding)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ext.conv2d_forward(x.contiguous(), self.conv.weight.contiguous(), self.conv.bias.contiguous())
