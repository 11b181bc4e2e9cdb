"""LayerNorm over (64, 256, 256) with x read from HBM exactly once: persistent, sample by sample.

One sample is 4M floats (16 MB), small enough to live on chip: a persistent cooperative grid (one
512-thread CTA per SM, all co-resident, launched with cudaLaunchCooperativeKernel) walks the batch
one sample at a time. Every CTA owns the same contiguous ~127 KB chunk of every sample (and of
weight/bias); each thread owns SLOTS float4 positions of it, kept in shared memory (thread-private
slots, so moving data in and out needs no block syncs).

Per sample s:
  * consume(s): the thread's slots of x[s] arrive through a ring of PF in-flight streaming loads
    (__ldcs) that runs on into x[s+1]; each is folded into shifted partial sums ((x - x[s][0]) and
    its square: a large mean costs no bits) and parked in shared memory. Block-reduce, publish
    the CTA's partial, arrive on a monotone global counter (red.release; zeroed per call by
    cudaMemsetAsync).
  * barrier: warp 0 spins until all CTAs arrived for s, folds the partials in double (identical
    in every CTA), mean / rstd to the block. The ring keeps the first PF slots of x[s+1] in
    flight meanwhile, so HBM stays busy through the barrier.
  * normalise x[s] from shared memory with weight/bias, streaming stores (__stcs) of y[s]; the
    dirty y lines drain to HBM while the next consume reads.
x costs one HBM read (the 2-kernel seed reads it twice). weight/bias are re-read every sample:
W_EIGHTHS/8 of each CTA's weight chunk stays in the spare shared memory (copied during sample 0),
the rest of weight and all of bias come from L2 with an evict_last policy (demoted back to
evict_normal at the end of the call), so streaming x/y (evict-first) do not push them out.
"""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA_SRC = r"""
#include <cuda_runtime.h>
#include <stdint.h>

#define THREADS 512           // tune: 256, 512
#define CAP4 8192             // float4 of one sample a CTA can hold (128 KB of shared memory)
#define SLOTS (CAP4 / THREADS)
#define PF 8                  // tune: 4, 8, 16
#define W_EIGHTHS 6           // tune: 0, 2, 4, 6
#define WS (SLOTS * W_EIGHTHS / 8)
#define NB 2                  // tune: 1, 2, 4
#define EVICT_LAST 1          // tune: 0, 1

static_assert(CAP4 % THREADS == 0, "THREADS must divide CAP4");
static_assert(SLOTS % PF == 0 && PF <= SLOTS, "PF must divide SLOTS");
static_assert(SLOTS % NB == 0, "NB must divide SLOTS");
static_assert(WS <= SLOTS, "weight slots");
static_assert((SLOTS + WS) * THREADS * 16 + 512 <= 232448, "shared memory over 227 KB");

#define DYN_SMEM ((SLOTS + WS) * THREADS * 16)

__device__ __forceinline__ uint64_t make_policy() {
    uint64_t p;
    asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(p));
    return p;
}

__device__ __forceinline__ float4 ld_keep(const float4* ptr, uint64_t pol) {
#if EVICT_LAST
    float4 v;
    asm("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.f32 {%0,%1,%2,%3}, [%4], %5;"
        : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(ptr), "l"(pol));
    return v;
#else
    return __ldg(ptr);
#endif
}

__device__ __forceinline__ void demote_line(const float4* ptr) {
#if EVICT_LAST
    const uintptr_t a = reinterpret_cast<uintptr_t>(ptr) & ~(uintptr_t)127;
    asm volatile("applypriority.global.L2::evict_normal [%0], 128;" :: "l"(a) : "memory");
#endif
}

__device__ __forceinline__ void red_release_add(unsigned* p, unsigned v) {
    asm volatile("red.release.gpu.global.add.u32 [%0], %1;" :: "l"(p), "r"(v) : "memory");
}

__device__ __forceinline__ unsigned ld_relaxed(const unsigned* p) {
    unsigned v;
    asm volatile("ld.relaxed.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

__device__ __forceinline__ unsigned ld_acquire(const unsigned* p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}

// Persistent cooperative kernel; grid = all co-resident CTAs (1 per SM).
// partial: [nsamples][gridDim.x] float2 (shifted sum, shifted sum of squares); counter zeroed per call.
// All float4 indices fit in int (host checks x.numel() / 4 < 2^31).
__global__ void __launch_bounds__(THREADS, 1) ln_resident_kernel(
        const float4* __restrict__ x, const float4* __restrict__ w, const float4* __restrict__ b,
        float4* __restrict__ y, float2* __restrict__ partial, unsigned* __restrict__ counter,
        int nsamples, int d4, float eps) {
    extern __shared__ float4 smem[];
    float4* A = smem;                        // [SLOTS][THREADS]: x of the current sample (thread-private slots)
    float4* Wsm = smem + SLOTS * THREADS;    // [WS][THREADS]: weight slots kept for the whole call
    __shared__ float2 red[THREADS / 32];
    __shared__ float stat[2];

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int G = gridDim.x;
    const int begin = (int)((int64_t)blockIdx.x * d4 / G);
    const int end = (int)((int64_t)(blockIdx.x + 1) * d4 / G);
    const int n = end - begin;                                   // <= CAP4 (host checks)
    const int nv = tid < n ? min(SLOTS, (n - tid + THREADS - 1) / THREADS) : 0;  // my valid slots
    const int toff = begin + tid;                                // float4 index of my slot 0 in a sample
    // Slot j of this thread is float4 toff + j * THREADS of a sample, valid when j < nv. Loads of
    // invalid slots are predicated off (their register keeps a stale value that is never used:
    // stats select 0 for them and their stores are predicated off); shared slots exist for all j.
    const double dcount = 4.0 * (double)d4;
    const float* xf = reinterpret_cast<const float*>(x);

    // Ring of PF in-flight x loads over the stream of items (sample t, slot j): item j lives in R[j % PF].
    float4 R[PF];
    #pragma unroll
    for (int j = 0; j < PF; ++j) {
        R[j] = make_float4(0.f, 0.f, 0.f, 0.f);
        if (j < nv) R[j] = __ldcs(x + toff + j * THREADS);
    }
    float kcur = __ldg(xf);         // shift of sample 0 (its first element)
    float knext = 0.f;

    // consume(t): stats of x[t] with shift kcur while moving it R -> A, keeping PF loads in flight
    // (running on into sample t+1), then block-reduce and publish the partial of t (release-add).
    auto consume = [&](int t) {
        const bool more = t + 1 < nsamples;
        const float4* xt = x + t * d4 + toff;
        const float4* xn = xt + d4;
        if (more) knext = __ldg(xf + (int64_t)(t + 1) * d4 * 4);
        float s1 = 0.f, s2 = 0.f;
        #pragma unroll
        for (int j = 0; j < SLOTS; ++j) {
            const float4 v = R[j % PF];
            A[j * THREADS + tid] = v;            // slot storage exists for every j; tails are never stored
            const bool ok = j < nv;
            const float a0 = ok ? v.x - kcur : 0.f, a1 = ok ? v.y - kcur : 0.f;
            const float a2 = ok ? v.z - kcur : 0.f, a3 = ok ? v.w - kcur : 0.f;
            s1 += (a0 + a1) + (a2 + a3);
            s2 = fmaf(a0, a0, fmaf(a1, a1, fmaf(a2, a2, fmaf(a3, a3, s2))));
            if (j + PF < SLOTS) {
                if (j + PF < nv) R[j % PF] = __ldcs(xt + (j + PF) * THREADS);
            } else {
                if (more && j + PF - SLOTS < nv) R[j % PF] = __ldcs(xn + (j + PF - SLOTS) * THREADS);
            }
        }
        #pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            s1 += __shfl_xor_sync(0xffffffffu, s1, o);
            s2 += __shfl_xor_sync(0xffffffffu, s2, o);
        }
        if (lane == 0) red[warp] = make_float2(s1, s2);
        __syncthreads();
        if (warp == 0) {
            float2 p = lane < THREADS / 32 ? red[lane] : make_float2(0.f, 0.f);
            #pragma unroll
            for (int o = 16; o > 0; o >>= 1) {
                p.x += __shfl_xor_sync(0xffffffffu, p.x, o);
                p.y += __shfl_xor_sync(0xffffffffu, p.y, o);
            }
            if (lane == 0) {
                partial[t * G + blockIdx.x] = p;
                red_release_add(counter, 1u);     // release: the partial store is visible before the arrival
            }
        }
    };

    consume(0);

    for (int s = 0; s < nsamples; ++s) {
        // ---- grid barrier for sample s, then mean / rstd (bitwise identical in every CTA) ----
        if (warp == 0) {
            const unsigned target = (unsigned)(s + 1) * (unsigned)G;
            while (!__all_sync(0xffffffffu, ld_relaxed(counter) >= target)) { }
            (void)ld_acquire(counter);    // per-lane acquire: the partials below are read after it
            double ps = 0.0, pq = 0.0;
            for (int i = lane; i < G; i += 32) {
                const float2 p = __ldcg(partial + s * G + i);
                ps += p.x;
                pq += p.y;
            }
            #pragma unroll
            for (int o = 16; o > 0; o >>= 1) {
                ps += __shfl_xor_sync(0xffffffffu, ps, o);
                pq += __shfl_xor_sync(0xffffffffu, pq, o);
            }
            if (lane == 0) {
                const double ms = ps / dcount;
                double var = pq / dcount - ms * ms;   // biased variance, as nn.LayerNorm
                if (var < 0.0) var = 0.0;
                stat[0] = (float)((double)kcur + ms);
                stat[1] = (float)(1.0 / sqrt(var + (double)eps));
            }
        }
        __syncthreads();
        const float mean = stat[0], rstd = stat[1];

        // ---- normalise x[s] (shared memory) -> y[s]; weight/bias from L2 (or the kept weight slots) ----
        {
            const uint64_t pol = make_policy();
            float4* ys = y + s * d4 + toff;
            const float4* wt = w + toff;
            const float4* bt = b + toff;
            const bool first = s == 0;
            #pragma unroll
            for (int jg = 0; jg < SLOTS; jg += NB) {
                float4 wv[NB], bv[NB];
                #pragma unroll
                for (int u = 0; u < NB; ++u) {
                    const int j = jg + u;
                    bv[u] = wv[u] = make_float4(0.f, 0.f, 0.f, 0.f);
                    if (j < nv) bv[u] = ld_keep(bt + j * THREADS, pol);
                    if (j >= WS) {
                        if (j < nv) wv[u] = ld_keep(wt + j * THREADS, pol);
                    } else if (first) {
                        if (j < nv) wv[u] = __ldcs(wt + j * THREADS);
                    } else {
                        wv[u] = Wsm[j * THREADS + tid];
                    }
                }
                #pragma unroll
                for (int u = 0; u < NB; ++u) {
                    const int j = jg + u;
                    if (j < WS && first) Wsm[j * THREADS + tid] = wv[u];
                    const float4 v = A[j * THREADS + tid];
                    float4 r;
                    r.x = fmaf((v.x - mean) * rstd, wv[u].x, bv[u].x);
                    r.y = fmaf((v.y - mean) * rstd, wv[u].y, bv[u].y);
                    r.z = fmaf((v.z - mean) * rstd, wv[u].z, bv[u].z);
                    r.w = fmaf((v.w - mean) * rstd, wv[u].w, bv[u].w);
                    if (j < nv) __stcs(ys + j * THREADS, r);
                }
            }
        }

        if (s + 1 < nsamples) {
            kcur = knext;
            consume(s + 1);
        }
    }

    // Demote the evict_last lines of weight/bias this CTA read from L2 (one thread per 128 B line).
    #pragma unroll
    for (int j = 0; j < SLOTS; ++j) {
        const int i = toff + j * THREADS;
        if (j < nv && ((i & 7) == 0 || (j == 0 && tid == 0))) {
            demote_line(b + i);
            if (j >= WS) demote_line(w + i);
        }
    }
}

int ln_resident_cap4() { return CAP4; }

// Number of co-resident CTAs (0 when the device cannot run this kernel cooperatively); cached per device.
int ln_resident_grid() {
    static int cached[64];
    static bool done[64];
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) return 0;
    if (!done[dev]) {
        int sms = 0, coop = 0, per_sm = 0;
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
        cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev);
        if (cudaFuncSetAttribute(ln_resident_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, DYN_SMEM) != cudaSuccess ||
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, ln_resident_kernel, THREADS, DYN_SMEM) != cudaSuccess)
            per_sm = 0;
        cached[dev] = coop ? per_sm * sms : 0;
        done[dev] = true;
    }
    return cached[dev];
}

cudaError_t launch_ln_resident(const float* x, const float* w, const float* b, float* y, float* partial,
                               unsigned* counter, int nsamples, int d4, float eps, int grid, cudaStream_t stream) {
    cudaError_t err = cudaMemsetAsync(counter, 0, sizeof(unsigned), stream);
    if (err != cudaSuccess) return err;
    const float4* x4 = reinterpret_cast<const float4*>(x);
    const float4* w4 = reinterpret_cast<const float4*>(w);
    const float4* b4 = reinterpret_cast<const float4*>(b);
    float4* y4 = reinterpret_cast<float4*>(y);
    float2* p2 = reinterpret_cast<float2*>(partial);
    void* args[] = {(void*)&x4, (void*)&w4, (void*)&b4, (void*)&y4, (void*)&p2, (void*)&counter,
                    (void*)&nsamples, (void*)&d4, (void*)&eps};
    return cudaLaunchCooperativeKernel((const void*)ln_resident_kernel, dim3((unsigned)grid), dim3(THREADS), args,
                                       (size_t)DYN_SMEM, stream);
}
"""

CPP_SRC = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
#include <cstdint>

int ln_resident_cap4();
int ln_resident_grid();
cudaError_t launch_ln_resident(const float* x, const float* w, const float* b, float* y, float* partial,
                               unsigned* counter, int nsamples, int d4, float eps, int grid, cudaStream_t stream);

torch::Tensor layernorm_forward(torch::Tensor x, torch::Tensor w, torch::Tensor b, double eps) {
    TORCH_CHECK(x.is_cuda() && w.is_cuda() && b.is_cuda(), "x, weight and bias must be CUDA tensors");
    TORCH_CHECK(x.scalar_type() == torch::kFloat32 && w.scalar_type() == torch::kFloat32 &&
                b.scalar_type() == torch::kFloat32, "x, weight and bias must be float32");
    TORCH_CHECK(x.is_contiguous() && w.is_contiguous() && b.is_contiguous(), "x, weight and bias must be contiguous");
    TORCH_CHECK(w.sizes() == b.sizes(), "weight and bias must have the same shape");
    TORCH_CHECK(x.dim() > w.dim(), "x needs a batch dim in front of the normalised shape");
    TORCH_CHECK(x.sizes().slice(x.dim() - w.dim()) == w.sizes(), "x's trailing dims must equal the normalised shape");
    const int64_t d = w.numel(), n = x.numel() / d;
    TORCH_CHECK(d > 0 && d % 4 == 0, "normalised size must be a positive multiple of 4 (float4 loads)");
    TORCH_CHECK(n > 0 && x.numel() / 4 < (int64_t)1 << 31, "x too large for 32-bit float4 indices");
    for (const auto& t : {x, w, b})
        TORCH_CHECK(reinterpret_cast<std::uintptr_t>(t.data_ptr()) % 16 == 0, "tensors must be 16-byte aligned");
    const int grid = ln_resident_grid();
    TORCH_CHECK(grid > 0, "device cannot run the persistent cooperative layernorm kernel");
    TORCH_CHECK(n * grid < ((int64_t)1 << 31), "too many samples for the barrier counter");
    TORCH_CHECK(d / 4 >= grid, "normalised size too small for ", grid, " blocks");
    const int64_t d4 = d / 4;
    TORCH_CHECK((d4 + grid - 1) / grid <= ln_resident_cap4(), "sample of ", d, " floats does not fit in the ",
                grid, " resident blocks' shared memory (", ln_resident_cap4(), " float4 each)");
    auto y = torch::empty_like(x);
    // scratch: partials [n][grid] float2, then the barrier counter
    auto scratch = torch::empty({n * grid * 2 + 4}, x.options());
    float* partial = scratch.data_ptr<float>();
    unsigned* counter = reinterpret_cast<unsigned*>(partial + n * grid * 2);
    cudaError_t err = launch_ln_resident(x.data_ptr<float>(), w.data_ptr<float>(), b.data_ptr<float>(),
                                         y.data_ptr<float>(), partial, counter, (int)n, (int)d4, (float)eps, grid,
                                         c10::cuda::getCurrentCUDAStream());
    TORCH_CHECK(err == cudaSuccess, "layernorm kernel launch failed: ", cudaGetErrorString(err));
    err = cudaGetLastError();
    TORCH_CHECK(err == cudaSuccess, "layernorm kernel launch failed: ", cudaGetErrorString(err));
    return y;
}
"""

_ext = load_inline(
    name="layernorm_l2_resident",
    cpp_sources=[CPP_SRC],
    cuda_sources=[CUDA_SRC],
    functions=["layernorm_forward"],
    no_implicit_headers=True,
    extra_cuda_cflags=["-O3"],
    verbose=False,
)


class ModelNew(nn.Module):
    def __init__(self, normalized_shape: tuple):
        super().__init__()
        self.ln = nn.LayerNorm(normalized_shape=normalized_shape)  # holds weight and bias, as Model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _ext.layernorm_forward(x.contiguous(), self.ln.weight.contiguous(), self.ln.bias.contiguous(), self.ln.eps)
