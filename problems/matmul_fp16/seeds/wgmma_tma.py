"""FP16 GEMM with Hopper's asynchronous tensor cores: TMA loads into a multistage ring, wgmma from shared memory.

A block computes a 128 x 256 tile of C with two warpgroups, each a 64 x 256 tile held as 128
FP32 accumulators per thread (wgmma.m64n256k16). Thread 0 keeps STAGES-1 64-wide K slices in
flight with the tensor memory accelerator (one TMA for the A slice, four for the B slice), each
stage signalled by an mbarrier as its bytes land; both warpgroups wait on it, issue four wgmma
for the slice and retire the previous slice's group before its buffer is refilled. Tiles are
stored with the 128-byte swizzle that TMA writes and wgmma reads (A K-major, B N-major, so
row-major A and B are used as they are, with no transposes). The epilogue rounds to FP16 once
and leaves through shared memory so that global stores are whole 16-byte rows.
"""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

CUDA_SRC = r"""
#include <cuda_runtime.h>
#include <cuda.h>  // CUtensorMap and its enums; the encode function comes from the runtime's driver entry point
#include <cuda_fp16.h>
#include <stdint.h>

#define STAGES 4   // tune: 3, 4
#define GROUP_M 8  // tune: 4, 8, 16

constexpr int BM = 128, BN = 256, BK = 64;
constexpr int THREADS = 256;                       // two warpgroups
constexpr int A_BYTES = BM * BK * 2;               // 16 KB: 128 rows of 128 B
constexpr int B_BYTES = BK * BN * 2;               // 32 KB: four 64-column blocks of 64 rows of 128 B
constexpr int STAGE_BYTES = A_BYTES + B_BYTES;
constexpr int OUT_PITCH = BN + 8;                  // halves; 528 B rows keep the epilogue conflict-free
constexpr int SMEM_BYTES = STAGES * STAGE_BYTES + 1024;  // + room to align the ring to 1024 B
static_assert(BM * OUT_PITCH * 2 <= STAGES * STAGE_BYTES, "epilogue tile must fit in the ring");

__device__ __forceinline__ uint32_t smem_u32(const void* p) { return (uint32_t)__cvta_generic_to_shared(p); }

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" :: "r"(bar), "r"(count));
}
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" :: "r"(bar), "r"(bytes) : "memory");
}
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
    uint32_t done = 0;
    while (!done) {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\nselp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done) : "r"(bar), "r"(parity) : "memory");
    }
}
__device__ __forceinline__ void tma_load_2d(uint32_t dst, const CUtensorMap* map, int x, int y, uint32_t bar) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n"
                 :: "r"(dst), "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(bar) : "memory");
}

// Shared-memory matrix descriptor, 128-byte swizzle: start, leading and stride byte offsets (>> 4).
__device__ __forceinline__ uint64_t make_desc(uint32_t addr, uint32_t lbo, uint32_t sbo) {
    return (uint64_t)((addr & 0x3FFFF) >> 4) | ((uint64_t)((lbo & 0x3FFFF) >> 4) << 16) |
           ((uint64_t)((sbo & 0x3FFFF) >> 4) << 32) | (1ull << 62);
}

__device__ __forceinline__ void wgmma_fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void wgmma_commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
template <int N> __device__ __forceinline__ void wgmma_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" :: "n"(N) : "memory");
}
// Keep the compiler from moving accumulator reads/writes across the asynchronous wgmma.
__device__ __forceinline__ void fence_acc(float (&d)[128]) {
    #pragma unroll
    for (int i = 0; i < 128; ++i) asm volatile("" : "+f"(d[i]) :: "memory");
}

// D(64x256, f32) += A(64x16, smem, K-major) * B(16x256, smem, N-major): one warpgroup.
__device__ __forceinline__ void wgmma_m64n256k16(float (&d)[128], uint64_t desc_a, uint64_t desc_b) {
    asm volatile(
        "{\n"
        ".reg .pred p;\n"
        "setp.ne.b32 p, %130, 0;\n"
        "wgmma.mma_async.sync.aligned.m64n256k16.f32.f16.f16 "
        "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, %64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, %80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, %96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, %112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127}, "
        "%128, %129, p, 1, 1, 0, 1;\n"
        "}\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]),
          "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]),
          "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]),
          "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]),
          "+f"(d[32]), "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]),
          "+f"(d[40]), "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]),
          "+f"(d[48]), "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
          "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63]),
          "+f"(d[64]), "+f"(d[65]), "+f"(d[66]), "+f"(d[67]), "+f"(d[68]), "+f"(d[69]), "+f"(d[70]), "+f"(d[71]),
          "+f"(d[72]), "+f"(d[73]), "+f"(d[74]), "+f"(d[75]), "+f"(d[76]), "+f"(d[77]), "+f"(d[78]), "+f"(d[79]),
          "+f"(d[80]), "+f"(d[81]), "+f"(d[82]), "+f"(d[83]), "+f"(d[84]), "+f"(d[85]), "+f"(d[86]), "+f"(d[87]),
          "+f"(d[88]), "+f"(d[89]), "+f"(d[90]), "+f"(d[91]), "+f"(d[92]), "+f"(d[93]), "+f"(d[94]), "+f"(d[95]),
          "+f"(d[96]), "+f"(d[97]), "+f"(d[98]), "+f"(d[99]), "+f"(d[100]), "+f"(d[101]), "+f"(d[102]), "+f"(d[103]),
          "+f"(d[104]), "+f"(d[105]), "+f"(d[106]), "+f"(d[107]), "+f"(d[108]), "+f"(d[109]), "+f"(d[110]), "+f"(d[111]),
          "+f"(d[112]), "+f"(d[113]), "+f"(d[114]), "+f"(d[115]), "+f"(d[116]), "+f"(d[117]), "+f"(d[118]), "+f"(d[119]),
          "+f"(d[120]), "+f"(d[121]), "+f"(d[122]), "+f"(d[123]), "+f"(d[124]), "+f"(d[125]), "+f"(d[126]), "+f"(d[127])
        : "l"(desc_a), "l"(desc_b), "r"(1));
}

__global__ void __launch_bounds__(THREADS, 1) hgemm_wgmma_kernel(const __grid_constant__ CUtensorMap map_a,
                                                                const __grid_constant__ CUtensorMap map_b,
                                                                half* __restrict__ C, int M, int N, int K) {
    extern __shared__ uint8_t smem_raw[];
    __shared__ __align__(8) uint64_t full_bar[STAGES];
    const uint32_t raw = smem_u32(smem_raw);
    uint8_t* smem = smem_raw + (((raw + 1023) & ~1023u) - raw);  // swizzle atoms need 1024-byte alignment
    const uint32_t ring = smem_u32(smem);
    const int tid = threadIdx.x, wg = tid / 128, warp = (tid % 128) / 32, lane = tid % 32;

    const int tiles_m = M / BM, tiles_n = N / BN;
    const int pid = blockIdx.x;
    const int group = pid / (GROUP_M * tiles_n), first_m = group * GROUP_M;
    const int rows_in_group = min(tiles_m - first_m, GROUP_M);
    const int tm = first_m + (pid % (GROUP_M * tiles_n)) % rows_in_group;
    const int tn = (pid % (GROUP_M * tiles_n)) / rows_in_group;
    const int m0 = tm * BM, n0 = tn * BN;
    const int KT = K / BK;

    auto stage_a = [&](int s) { return ring + s * STAGE_BYTES; };
    auto stage_b = [&](int s) { return ring + s * STAGE_BYTES + A_BYTES; };
    auto bar = [&](int s) { return smem_u32(&full_bar[s]); };
    auto load = [&](int s, int kt) {  // called by thread 0 only
        mbar_expect_tx(bar(s), STAGE_BYTES);
        tma_load_2d(stage_a(s), &map_a, kt * BK, m0, bar(s));
        #pragma unroll
        for (int nb = 0; nb < BN / 64; ++nb) tma_load_2d(stage_b(s) + nb * (64 * 128), &map_b, n0 + nb * 64, kt * BK, bar(s));
    };

    if (tid == 0) {
        for (int s = 0; s < STAGES; ++s) mbar_init(bar(s), 1);
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    }
    __syncthreads();
    if (tid == 0)
        for (int s = 0; s < STAGES - 1 && s < KT; ++s) load(s, s);

    float d[128];
    #pragma unroll
    for (int i = 0; i < 128; ++i) d[i] = 0.f;
    fence_acc(d);

    for (int kt = 0; kt < KT; ++kt) {
        const int s = kt % STAGES;
        mbar_wait(bar(s), (kt / STAGES) & 1);
        wgmma_fence();
        #pragma unroll
        for (int kk = 0; kk < BK / 16; ++kk) {
            // A: this warpgroup's 64 rows, K-major; +32 B per 16-wide k step inside the swizzle atom.
            const uint64_t da = make_desc(stage_a(s) + wg * (64 * 128) + kk * 32, 16, 1024);
            // B: N-major; 64-column blocks 8 KB apart (LBO), 8-row k groups 1 KB apart (SBO).
            const uint64_t db = make_desc(stage_b(s) + kk * (16 * 128), 64 * 128, 1024);
            wgmma_m64n256k16(d, da, db);
        }
        wgmma_commit();
        wgmma_wait<1>();   // the previous slice's wgmma group has finished reading its buffer
        __syncthreads();   // ... in both warpgroups
        if (tid == 0 && kt + STAGES - 1 < KT) load((kt + STAGES - 1) % STAGES, kt + STAGES - 1);
    }
    wgmma_wait<0>();
    fence_acc(d);
    __syncthreads();  // every wgmma is done with the ring: reuse it for the output tile

    half* out = reinterpret_cast<half*>(smem);
    const int row = wg * 64 + warp * 16 + lane / 4;
    #pragma unroll
    for (int j = 0; j < BN / 8; ++j) {
        const int col = j * 8 + (lane % 4) * 2;
        *reinterpret_cast<half2*>(out + row * OUT_PITCH + col) = __floats2half2_rn(d[4 * j], d[4 * j + 1]);
        *reinterpret_cast<half2*>(out + (row + 8) * OUT_PITCH + col) = __floats2half2_rn(d[4 * j + 2], d[4 * j + 3]);
    }
    __syncthreads();
    #pragma unroll 4
    for (int i = tid; i < BM * BN / 8; i += THREADS) {
        const int r = i / (BN / 8), c = (i % (BN / 8)) * 8;
        *reinterpret_cast<uint4*>(C + (size_t)(m0 + r) * N + n0 + c) = *reinterpret_cast<const uint4*>(out + r * OUT_PITCH + c);
    }
}

typedef CUresult (*EncodeTiledFn)(CUtensorMap*, CUtensorMapDataType, cuuint32_t, void*, const cuuint64_t*,
                                  const cuuint64_t*, const cuuint32_t*, const cuuint32_t*, CUtensorMapInterleave,
                                  CUtensorMapSwizzle, CUtensorMapL2promotion, CUtensorMapFloatOOBfill);

static EncodeTiledFn encode_fn() {
    static EncodeTiledFn fn = nullptr;
    if (!fn) {
        void* p = nullptr;
        cudaDriverEntryPointQueryResult q;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &p, 12000, cudaEnableDefault, &q) == cudaSuccess &&
            q == cudaDriverEntryPointSuccess)
            fn = reinterpret_cast<EncodeTiledFn>(p);
    }
    return fn;
}

// A row-major (rows x cols) fp16 matrix as a TMA map with (box_cols x box_rows) boxes, 128-byte swizzle.
static bool make_map(CUtensorMap* map, const void* ptr, int rows, int cols, int box_rows, int box_cols) {
    EncodeTiledFn fn = encode_fn();
    if (!fn) return false;
    cuuint64_t dims[2] = {(cuuint64_t)cols, (cuuint64_t)rows};
    cuuint64_t strides[1] = {(cuuint64_t)cols * 2};
    cuuint32_t box[2] = {(cuuint32_t)box_cols, (cuuint32_t)box_rows};
    cuuint32_t elem[2] = {1, 1};
    return fn(map, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 2, const_cast<void*>(ptr), dims, strides, box, elem,
              CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
              CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

int wgmma_tile_m() { return BM; }
int wgmma_tile_n() { return BN; }
int wgmma_tile_k() { return BK; }

// 0 on success; 1 when the tensor maps cannot be made; otherwise a cudaError_t.
int launch_hgemm_wgmma(const void* A, const void* B, void* C, int M, int N, int K, cudaStream_t stream) {
    CUtensorMap map_a, map_b;
    if (!make_map(&map_a, A, M, K, BM, BK) || !make_map(&map_b, B, K, N, BK, 64)) return 1;
    cudaError_t err = cudaFuncSetAttribute(hgemm_wgmma_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, SMEM_BYTES);
    if (err != cudaSuccess) return (int)err;
    hgemm_wgmma_kernel<<<(M / BM) * (N / BN), THREADS, SMEM_BYTES, stream>>>(map_a, map_b, static_cast<half*>(C), M, N, K);
    return (int)cudaGetLastError();
}
"""

CPP_SRC = r"""
#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime.h>
#include <cstdint>

int wgmma_tile_m();
int wgmma_tile_n();
int wgmma_tile_k();
int launch_hgemm_wgmma(const void* A, const void* B, void* C, int M, int N, int K, cudaStream_t stream);

torch::Tensor hgemm(torch::Tensor A, torch::Tensor B) {
    TORCH_CHECK(A.is_cuda() && B.is_cuda(), "A and B must be CUDA tensors");
    TORCH_CHECK(A.scalar_type() == torch::kHalf && B.scalar_type() == torch::kHalf, "A and B must be float16");
    TORCH_CHECK(A.dim() == 2 && B.dim() == 2 && A.size(1) == B.size(0), "A (M, K) @ B (K, N)");
    TORCH_CHECK(A.is_contiguous() && B.is_contiguous(), "A and B must be contiguous");
    const int64_t M = A.size(0), K = A.size(1), N = B.size(1);
    TORCH_CHECK(M % wgmma_tile_m() == 0 && N % wgmma_tile_n() == 0 && K % wgmma_tile_k() == 0 && M * N < INT32_MAX,
                "sizes must be multiples of the tile (", wgmma_tile_m(), ", ", wgmma_tile_n(), ", ", wgmma_tile_k(), ")");
    TORCH_CHECK(reinterpret_cast<std::uintptr_t>(A.data_ptr()) % 16 == 0 &&
                reinterpret_cast<std::uintptr_t>(B.data_ptr()) % 16 == 0, "A and B must be 16-byte aligned");
    auto C = torch::empty({M, N}, A.options());
    const int rc = launch_hgemm_wgmma(A.data_ptr(), B.data_ptr(), C.data_ptr(), (int)M, (int)N, (int)K,
                                      c10::cuda::getCurrentCUDAStream());
    TORCH_CHECK(rc != 1, "could not build the TMA tensor maps (cuTensorMapEncodeTiled)");
    TORCH_CHECK(rc == 0, "wgmma gemm launch failed: ", cudaGetErrorString(static_cast<cudaError_t>(rc)));
    return C;
}
"""

_ext = load_inline(
    name="matmul_fp16_wgmma_tma",
    cpp_sources=[CPP_SRC],
    cuda_sources=[CUDA_SRC],
    functions=["hgemm"],
    no_implicit_headers=True,
    extra_cuda_cflags=["-O3"],
    verbose=False,
)


class ModelNew(nn.Module):
    def __init__(self):
        super().__init__()

    def forward(self, A: torch.Tensor, B: torch.Tensor) -> torch.Tensor:
        return _ext.hgemm(A.contiguous(), B.contiguous())
