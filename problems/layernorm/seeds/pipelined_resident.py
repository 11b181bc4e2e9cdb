"""LayerNorm over (64, 256, 256), x read from HBM once, the read of sample s+1 overlapping the write of s.

Persistent cooperative grid (one THREADS-thread CTA per SM, all co-resident, cudaLaunchCooperativeKernel
sized from the occupancy API), walking the batch sample by sample like l2_resident, but double-buffered
across samples: one sample's chunk of x sits in a register array R (16 float4 a thread at 512 threads =
128 KB per SM), the next one arrives in shared memory A (128 KB) meanwhile. Every CTA owns the same
contiguous chunk of every sample and of weight/bias; thread tid owns float4 slots j = 0..SLOTS-1 of it
(chunk index tid + j * THREADS, = A[j * THREADS + tid]). Per sample t:
  take(t):    wait for x[t] in A, copy it to R while summing (x - k) and (x - k)^2 over the thread's slots
              (k = x[t] at this CTA's chunk start), block-reduce, publish the CTA's (S1, S2, k, count),
              arrive on a monotone grid counter (red.release), and at once issue the bulk copy (TMA,
              cp.async.bulk + mbarrier, evict-first) of the chunk of x[t+1] into A: A is free again;
  barrier(t): warp 0 waits for all arrivals of t (acquire) and folds the partials in double in the same
              order in every CTA (bitwise identical mean / rstd): sum x = S1 + n k, sum x^2 = S2 + k (2 S1 + n k);
  norm(t):    y[t] = (R - mean) * rstd * w + b, streaming stores, while x[t+1] streams into A.
HBM thus carries the reads of t+1 and the writes of t together, like a copy, and the grid barrier of t
hides under the reads of t+1. Per sample the critical path is max(read of 16 MB with the write-back of
16 MB, barrier + norm) + take: about 8 us, against ~16 us for l2_resident's read / barrier / write.

Chunks: the last CTA takes exactly CAP4 float4 and the others split the rest, so a slot past a CTA's own
chunk still lies inside the sample (in the next chunk): every load is unconditional with base + immediate
addressing (per-slot predicated loads cost a 64-bit address register per slot and spilled); the stats
select 0 for non-own slots and their stores are predicated off.
Weight/bias as in l2_resident: W_EIGHTHS/8 of each CTA's weight slots are copied once per call into the
spare shared memory (cp.async, 96 KB at 6), the rest of weight and all of bias are re-read from L2 every
sample with an evict_last policy (demoted back to evict_normal at the end of the call).

PREFETCH_TMA 0 is the variant first planned: x[t+1] is loaded with ld.global.cs straight into R (SLOTS
loads in flight per thread), take() folds R, moves it to A (own slots: no block sync) and reloads R with
x[t+2]; norm reads A, in a rolled loop over groups of 4 slots (R is pinned by loads in flight; unrolled,
ptxas hoisted every slot's loads and spilled). Its norm issues its L2 loads behind up to SLOTS HBM loads
of the same thread; mode 1 has no global load outstanding in norm but its own weight/bias hits.
Every tunable combination (96) compiles for sm_90a without spills.
"""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA_SRC = r"""
#include <cuda_runtime.h>
#include <stdint.h>

#define THREADS 512           // tune: 256, 512
#define CAP4 8192             // float4 of a sample per CTA (128 KB, in the register array R and in the shared buffer A)
#define SLOTS (CAP4 / THREADS)
#define W_EIGHTHS 6           // tune: 0, 2, 4, 6
#define WS (SLOTS * W_EIGHTHS / 8)
#define EVICT_LAST 1          // tune: 0, 1
#define PREFETCH_TMA 1        // tune: 0, 1
#define TMA_PIECES 4          // tune: 1, 4, 16

static_assert(CAP4 % THREADS == 0 && SLOTS % 4 == 0, "THREADS must divide CAP4 / 4");
static_assert(WS <= SLOTS, "weight slots");
static_assert(TMA_PIECES >= 1 && TMA_PIECES <= 64, "TMA_PIECES");
static_assert(CAP4 * 16 < (1 << 20), "mbarrier tx-count limit");
static_assert((SLOTS + WS) * THREADS * 16 + 1024 <= 232448, "shared memory over 227 KB");

#define DYN_SMEM ((SLOTS + WS) * THREADS * 16)

__device__ __forceinline__ uint64_t policy_keep() {
    uint64_t p;
    asm volatile("createpolicy.fractional.L2::evict_last.b64 %0, 1.0;" : "=l"(p));
    return p;
}

__device__ __forceinline__ uint64_t policy_stream() {
    uint64_t p;
    asm volatile("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(p));
    return p;
}

// weight/bias load from L2 (evict_last policy).
__device__ __forceinline__ float4 ld_keep(const float4* ptr, uint64_t pol) {
#if EVICT_LAST
    float4 v;
    asm("ld.global.nc.L1::no_allocate.L2::cache_hint.v4.f32 {%0,%1,%2,%3}, [%4], %5;"
        : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(ptr), "l"(pol));
    return v;
#else
    (void)pol;
    return __ldg(ptr);
#endif
}

__device__ __forceinline__ void demote_line(const float4* ptr) {
#if EVICT_LAST
    const uintptr_t a = reinterpret_cast<uintptr_t>(ptr) & ~(uintptr_t)127;
    asm volatile("applypriority.global.L2::evict_normal [%0], 128;" :: "l"(a) : "memory");
#endif
}

// Streaming (read-once) loads; volatile so they stay where they are written (the prefetch of the next
// sample ahead of the stores of the current one). Unpredicated, as ld_keep.
__device__ __forceinline__ float4 ld_stream(const float4* ptr) {
    float4 v;
    asm volatile("ld.global.cs.v4.f32 {%0,%1,%2,%3}, [%4];"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w) : "l"(ptr));
    return v;
}

__device__ __forceinline__ float ld_stream1(const float* ptr) {
    float v;
    asm volatile("ld.global.cs.f32 %0, [%1];" : "=f"(v) : "l"(ptr));
    return v;
}

__device__ __forceinline__ void st_stream(float4* ptr, float4 v, bool pred) {
    asm volatile("{\n\t.reg .pred q;\n\tsetp.ne.b32 q, %5, 0;\n\t"
                 "@q st.global.cs.v4.f32 [%0], {%1,%2,%3,%4};\n\t}"
                 :: "l"(ptr), "f"(v.x), "f"(v.y), "f"(v.z), "f"(v.w), "r"((int)pred) : "memory");
}

// The value v, hidden from the optimiser: per-slot addresses built from it inside the sample loop are not
// hoisted out of the loop (that would keep SLOTS 64-bit addresses per stream live in registers).
__device__ __forceinline__ int opaque(int v) {
    asm volatile("" : "+r"(v));
    return v;
}

// 16-byte global -> shared copy that bypasses registers (weight slots, once per call).
__device__ __forceinline__ void cp_async16(void* dst_smem, const void* src) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;"
                 :: "r"((uint32_t)__cvta_generic_to_shared(dst_smem)), "l"(src) : "memory");
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

__device__ __forceinline__ void mbar_init(uint32_t bar, unsigned count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;" :: "r"(bar), "r"(count) : "memory");
    asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
}

__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;" :: "r"(bar), "r"(bytes) : "memory");
}

__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    uint32_t done;
    do {
        asm volatile("{\n\t.reg .pred p;\n\tmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n\t"
                     "selp.u32 %0, 1, 0, p;\n\t}"
                     : "=r"(done) : "r"(bar), "r"(parity) : "memory");
    } while (!done);
}

__device__ __forceinline__ void tma_load(uint32_t dst, const void* src, uint32_t bytes, uint32_t bar, uint64_t pol) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint "
                 "[%0], [%1], %2, [%3], %4;"
                 :: "r"(dst), "l"(src), "r"(bytes), "r"(bar), "l"(pol) : "memory");
}

// Persistent cooperative kernel; grid = all co-resident CTAs (1 per SM).
// partial: [nsamples][gridDim.x] float4 (shifted sum, shifted sum of squares, shift, count); counter
// zeroed per call. All float4 indices fit in int (host checks x.numel() / 4 < 2^31).
__global__ void __launch_bounds__(THREADS, 1) ln_pipe_kernel(
        const float4* __restrict__ x, const float4* __restrict__ w, const float4* __restrict__ b,
        float4* __restrict__ y, float4* __restrict__ partial, unsigned* __restrict__ counter,
        int nsamples, int d4, float eps) {
    extern __shared__ __align__(128) float4 smem[];
    float4* A = smem;                        // [SLOTS][THREADS] = the CTA's chunk in order (A[i] = chunk float4 i)
    float4* Wsm = smem + SLOTS * THREADS;    // [WS][THREADS]: weight slots kept for the whole call
    __shared__ float2 red[THREADS / 32];
    __shared__ float stat[2];
    __shared__ __align__(8) unsigned long long mbar;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int G = gridDim.x;
    // Chunks: the last CTA takes exactly CAP4 float4, the others split the rest evenly (host checks
    // G - 1 <= d4 - CAP4 <= (G - 1) * CAP4). Then slot j of thread tid, float4 begin + tid + j * THREADS of
    // a sample, is inside the sample for EVERY CTA, thread and slot (past its own chunk it lies in the
    // next CTA's chunk), so all loads are unconditional (no per-slot address registers); only slots
    // j < nv are this CTA's own: the stats select 0 for the others and their stores are predicated off.
    int begin, end;
    if ((int)blockIdx.x < G - 1) {
        begin = (int)((int64_t)blockIdx.x * (d4 - CAP4) / (G - 1));
        end = (int)((int64_t)(blockIdx.x + 1) * (d4 - CAP4) / (G - 1));
    } else {
        begin = d4 - CAP4;
        end = d4;
    }
    const int n = end - begin;                                   // 1 <= n <= CAP4
    const int nv = tid < n ? min(SLOTS, (n - tid + THREADS - 1) / THREADS) : 0;  // my own slots
    const int toff = begin + tid;                                // float4 index of my slot 0 in a sample

    // The kept weight slots: copied global -> shared once, asynchronously (each thread its own slots;
    // waited for by the same thread before its first norm, so no block barrier is needed).
    #pragma unroll
    for (int j = 0; j < WS; ++j) cp_async16(Wsm + j * THREADS + tid, w + toff + j * THREADS);
    asm volatile("cp.async.commit_group;" ::: "memory");

    float4 R[SLOTS];

#if PREFETCH_TMA
    const uint32_t bar = (uint32_t)__cvta_generic_to_shared(&mbar);
    // one thread: the chunk of x[t] -> A by bulk copies completing on the mbarrier (phase t, parity t & 1)
    auto issue = [&](int t) {
        const float4* src = x + t * d4 + begin;
        const uint64_t pol_x = policy_stream();
        mbar_expect_tx(bar, (uint32_t)n * 16u);
        #pragma unroll 1
        for (int p = 0; p < TMA_PIECES; ++p) {
            const int lo = p * n / TMA_PIECES, hi = (p + 1) * n / TMA_PIECES;
            if (hi > lo)
                tma_load((uint32_t)__cvta_generic_to_shared(A + lo), src + lo, (uint32_t)(hi - lo) * 16u, bar, pol_x);
        }
    };
    if (tid == 0) mbar_init(bar, 1u);
    __syncthreads();
    if (tid == 0) issue(0);
#else
    float kpend;           // shift of the sample whose loads are in flight in R
    // every thread: its slots of x[t] -> R, plus the shift (x[t] at the chunk start), all in flight
    auto issue = [&](int t) {
        const float4* src = x + t * d4 + toff;
        #pragma unroll
        for (int j = 0; j < SLOTS; ++j) R[j] = ld_stream(src + j * THREADS);
        kpend = ld_stream1(reinterpret_cast<const float*>(x + t * d4 + begin));
    };
    issue(0);
#endif

    // take(t): fold this thread's slots of x[t] (shifted by k) and put x[t] where norm(t) reads it
    // (mode 0: R -> A, then reload R with x[t+1]; mode 1: wait for A, A -> R), then block-reduce and
    // publish the CTA's partial of t (release-add on the counter). Mode 1 issues the bulk copies of
    // x[t+1] into A right after the block barrier that ends every thread's reads of A.
    auto take = [&](int t) {
#if PREFETCH_TMA
        mbar_wait(bar, (uint32_t)(t & 1));
        const float k = A[0].x;
#else
        const float k = kpend;
#endif
        float s1 = 0.f, s2 = 0.f;
        #pragma unroll
        for (int j = 0; j < SLOTS; ++j) {
#if PREFETCH_TMA
            R[j] = A[j * THREADS + tid];
            const float4 v = R[j];
#else
            const float4 v = R[j];
            A[j * THREADS + tid] = v;            // own slot: the thread read x[t-1] from it in norm(t-1)
#endif
            const bool ok = j < nv;
            const float a0 = ok ? v.x - k : 0.f, a1 = ok ? v.y - k : 0.f;
            const float a2 = ok ? v.z - k : 0.f, a3 = ok ? v.w - k : 0.f;
            s1 += (a0 + a1) + (a2 + a3);
            s2 = fmaf(a0, a0, fmaf(a1, a1, fmaf(a2, a2, fmaf(a3, a3, s2))));
        }
#if !PREFETCH_TMA
        if (t + 1 < nsamples) issue(t + 1);      // HBM busy through the barrier and norm(t)
#endif
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
                // (opaque(): not hoisted out of the sample loop into a long-lived register by the optimiser)
                partial[t * G + (int)blockIdx.x] = make_float4(p.x, p.y, k, (float)(4 * opaque(n)));  // count exact
                red_release_add(counter, 1u);     // release: the partial store is visible before the arrival
#if PREFETCH_TMA
                if (t + 1 < nsamples) {
                    // all threads' generic reads of A (x[t]) are ordered before this by the block barrier
                    asm volatile("fence.proxy.async.shared::cta;" ::: "memory");
                    issue(t + 1);
                }
#endif
            }
        }
    };

    // barrier(t): wait for every CTA's partial of t, mean / rstd of t into stat (bitwise identical in every CTA)
    auto barrier = [&](int t) {
        if (warp == 0) {
            const unsigned target = (unsigned)(t + 1) * (unsigned)G;
            while (!__all_sync(0xffffffffu, ld_relaxed(counter) >= target)) { }
            (void)ld_acquire(counter);    // per-lane acquire: the partials below are read after it
            double t1 = 0.0, t2 = 0.0;
            #pragma unroll 4                    // 4 partial loads in flight per lane (G = 132: two round trips)
            for (int i = lane; i < G; i += 32) {
                const float4 p = __ldcg(partial + t * G + i);
                const double s1 = p.x, s2 = p.y, k = p.z, c = p.w;
                t1 += s1 + c * k;                        // sum of x over the chunk
                t2 += s2 + k * (2.0 * s1 + c * k);       // sum of x^2 over the chunk
            }
            #pragma unroll
            for (int o = 16; o > 0; o >>= 1) {
                t1 += __shfl_xor_sync(0xffffffffu, t1, o);
                t2 += __shfl_xor_sync(0xffffffffu, t2, o);
            }
            if (lane == 0) {
                const double dcount = 4.0 * (double)opaque(d4);
                const double mean = t1 / dcount;
                double var = t2 / dcount - mean * mean;   // biased variance, as nn.LayerNorm
                if (var < 0.0) var = 0.0;
                stat[0] = (float)mean;
                stat[1] = (float)(1.0 / sqrt(var + (double)eps));
            }
        }
        __syncthreads();
    };

    take(0);
    barrier(0);
    asm volatile("cp.async.wait_all;" ::: "memory");

    for (int s = 0; s < nsamples; ++s) {
        const float mean = stat[0], rstd = stat[1];   // stat is rewritten only after take(s+1)'s block barrier

        // ---- norm(s): x[s] (R in mode 1, A in mode 0) -> y[s]; weight/bias from L2 or the kept weight slots ----
        {
            const uint64_t pol = policy_keep();
            float4* ys = y + s * d4 + toff;
            const float4* wt = w + toff;
            const float4* bt = b + toff;
#if PREFETCH_TMA
            #pragma unroll
            for (int j = 0; j < SLOTS; ++j) {     // (ptxas runs the weight/bias loads ahead as registers allow)
                const float4 v = R[j];
#else
            // x[s+1] is pinned in R while its loads are in flight: a rolled loop over groups of 4 slots
            // keeps ptxas from hoisting every slot's loads (it would spill)
            #pragma unroll 1
            for (int jg = 0; jg < SLOTS; jg += 4)
            #pragma unroll
            for (int j = jg; j < jg + 4; ++j) {
                const float4 v = A[j * THREADS + tid];
#endif
                const float4 bv = ld_keep(bt + j * THREADS, pol);
                const float4 wv = j < WS ? Wsm[j * THREADS + tid] : ld_keep(wt + j * THREADS, pol);
                float4 r;
                r.x = fmaf((v.x - mean) * rstd, wv.x, bv.x);
                r.y = fmaf((v.y - mean) * rstd, wv.y, bv.y);
                r.z = fmaf((v.z - mean) * rstd, wv.z, bv.z);
                r.w = fmaf((v.w - mean) * rstd, wv.w, bv.w);
                st_stream(ys + j * THREADS, r, j < nv);
            }
        }

        if (s + 1 < nsamples) {
            take(s + 1);
            barrier(s + 1);
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

int ln_pipe_cap4() { return CAP4; }

// Number of co-resident CTAs (0 when the device cannot run this kernel cooperatively); cached per device.
int ln_pipe_grid() {
    static int cached[64];
    static bool done[64];
    int dev = 0;
    if (cudaGetDevice(&dev) != cudaSuccess || dev < 0 || dev >= 64) return 0;
    if (!done[dev]) {
        int sms = 0, coop = 0, per_sm = 0;
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
        cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev);
        if (cudaFuncSetAttribute(ln_pipe_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, DYN_SMEM) != cudaSuccess ||
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, ln_pipe_kernel, THREADS, DYN_SMEM) != cudaSuccess)
            per_sm = 0;
        cached[dev] = coop ? per_sm * sms : 0;
        done[dev] = true;
    }
    return cached[dev];
}

cudaError_t launch_ln_pipe(const float* x, const float* w, const float* b, float* y, float* partial,
                           unsigned* counter, int nsamples, int d4, float eps, int grid, cudaStream_t stream) {
    cudaError_t err = cudaMemsetAsync(counter, 0, sizeof(unsigned), stream);
    if (err != cudaSuccess) return err;
    const float4* x4 = reinterpret_cast<const float4*>(x);
    const float4* w4 = reinterpret_cast<const float4*>(w);
    const float4* b4 = reinterpret_cast<const float4*>(b);
    float4* y4 = reinterpret_cast<float4*>(y);
    float4* p4 = reinterpret_cast<float4*>(partial);
    void* args[] = {(void*)&x4, (void*)&w4, (void*)&b4, (void*)&y4, (void*)&p4, (void*)&counter,
                    (void*)&nsamples, (void*)&d4, (void*)&eps};
    return cudaLaunchCooperativeKernel((const void*)ln_pipe_kernel, dim3((unsigned)grid), dim3(THREADS), args,
                                       (size_t)DYN_SMEM, stream);
}
"""

CPP_SRC = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
#include <cstdint>

int ln_pipe_cap4();
int ln_pipe_grid();
cudaError_t launch_ln_pipe(const float* x, const float* w, const float* b, float* y, float* partial,
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
    const int grid = ln_pipe_grid();
    TORCH_CHECK(grid > 0, "device cannot run the persistent cooperative layernorm kernel");
    TORCH_CHECK(n * grid < ((int64_t)1 << 31), "too many samples for the barrier counter");
    // chunking (see the kernel): the last block takes exactly cap4 float4, the others split the rest
    const int64_t d4 = d / 4, cap4 = ln_pipe_cap4();
    TORCH_CHECK(d4 - cap4 >= grid - 1, "normalised size too small for ", grid, " blocks of ", cap4, " float4");
    TORCH_CHECK(d4 - cap4 <= (int64_t)(grid - 1) * cap4, "sample of ", d, " floats does not fit in the ",
                grid, " resident blocks' on-chip buffers (", cap4, " float4 each)");
    auto y = torch::empty_like(x);
    // scratch: partials [n][grid] float4, then the barrier counter
    auto scratch = torch::empty({n * grid * 4 + 4}, x.options());
    float* partial = scratch.data_ptr<float>();
    unsigned* counter = reinterpret_cast<unsigned*>(partial + n * grid * 4);
    cudaError_t err = launch_ln_pipe(x.data_ptr<float>(), w.data_ptr<float>(), b.data_ptr<float>(),
                                     y.data_ptr<float>(), partial, counter, (int)n, (int)d4, (float)eps, grid,
                                     c10::cuda::getCurrentCUDAStream());
    TORCH_CHECK(err == cudaSuccess, "layernorm kernel launch failed: ", cudaGetErrorString(err));
    err = cudaGetLastError();
    TORCH_CHECK(err == cudaSuccess, "layernorm kernel launch failed: ", cudaGetErrorString(err));
    return y;
}
"""

_ext = load_inline(
    name="layernorm_pipelined_resident",
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
