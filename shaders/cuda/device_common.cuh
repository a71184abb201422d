/*
 * What every kernel file shares: the thin layer over CUDA built-ins (so
 * that the same source also compiles as host C++ for the emulator, see
 * backends/cuda/emu), element loads and stores by storage dtype, and the
 * EFLA coefficients (ALGORITHM.md §1.6, §2.6) in f32.
 */
#ifndef EFLA_DEVICE_COMMON_CUH
#define EFLA_DEVICE_COMMON_CUH

#include "efla_cuda_params.h"

#ifdef EFLA_CUDA_EMULATION
#include "emu_device.h"
#define EFLA_DEV static inline
#define EFLA_KERNEL_OCCUPANCY(name, threads, min_blocks)                                           \
    extern "C" void name(efla_cuda_params p);                                                      \
    static const efla_emu_registration name##_registration(#name, name, threads);                  \
    extern "C" void name(efla_cuda_params p)
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#define EFLA_DEV static __device__ __forceinline__
/* min_blocks: blocks per SM the register budget must allow (1: let ptxas
 * use up to 255 registers rather than guess a cap and spill). */
#define EFLA_KERNEL_OCCUPANCY(name, threads, min_blocks)                                           \
    extern "C" __global__ void __launch_bounds__(threads, min_blocks) name(const efla_cuda_params p)

static_assert(sizeof(efla_cuda_params) == EFLA_CUDA_PARAMS_SIZE, "params layout");

EFLA_DEV int efla_tid() { return (int)threadIdx.x; }
EFLA_DEV int64_t efla_block_x() { return (int64_t)blockIdx.x; }
EFLA_DEV int64_t efla_block_y() { return (int64_t)blockIdx.y; }
EFLA_DEV void efla_sync() { __syncthreads(); }
EFLA_DEV float efla_shfl_xor(float x, int mask) { return __shfl_xor_sync(0xffffffffu, x, mask); }
EFLA_DEV float *efla_smem() {
    extern __shared__ float4 efla_dynamic_smem[];
    return reinterpret_cast<float *>(efla_dynamic_smem);
}
EFLA_DEV float efla_f16_to_f32(uint16_t h) { return __half2float(__ushort_as_half(h)); }
EFLA_DEV uint16_t efla_f32_to_f16(float x) { return __half_as_ushort(__float2half_rn(x)); }
EFLA_DEV float efla_bf16_to_f32(uint16_t h) { return __uint_as_float((uint32_t)h << 16); }
EFLA_DEV uint16_t efla_f32_to_bf16(float x) { return __bfloat16_as_ushort(__float2bfloat16_rn(x)); }
#endif

#define EFLA_KERNEL(name, threads) EFLA_KERNEL_OCCUPANCY(name, threads, 1)

/* log2 of a power of two: index arithmetic by shifts where a runtime
 * divisor would be a division routine. */
#ifdef EFLA_CUDA_EMULATION
EFLA_DEV int efla_log2_pow2(uint32_t x) { return __builtin_ctz(x); }
#else
EFLA_DEV int efla_log2_pow2(uint32_t x) { return __ffs((int)x) - 1; }
#endif

/* Sum over the 32 lanes of a warp; every lane gets the same value. */
EFLA_DEV float efla_warp_sum(float x) {
    for (int mask = 16; mask > 0; mask >>= 1)
        x += efla_shfl_xor(x, mask);
    return x;
}

/* 16-byte copies between global and shared memory, cp.async groups
 * (sm_80+) and the warp barrier. */
#ifdef EFLA_CUDA_EMULATION
/* The emulator copies at once; waits have nothing to wait for. */
EFLA_DEV void efla_cp_async16(void *shared, const void *global) { std::memcpy(shared, global, 16); }
EFLA_DEV void efla_copy16(void *to, const void *from) { std::memcpy(to, from, 16); }
EFLA_DEV void efla_zero16(void *to) { std::memset(to, 0, 16); }
EFLA_DEV void efla_load16(const void *from, uint32_t out[4]) { std::memcpy(out, from, 16); }
EFLA_DEV void efla_store16(void *to, const uint32_t x[4]) { std::memcpy(to, x, 16); }
EFLA_DEV void efla_syncwarp() {
    int token = 0, all[32];
    efla_emu_warp_exchange(&token, all, sizeof token);
}
EFLA_DEV void efla_cp_async_commit() {}
EFLA_DEV void efla_cp_async_wait_all() {}
EFLA_DEV void efla_cp_async_wait_one() {}
#else
/* 16 bytes, both addresses 16-byte aligned. */
EFLA_DEV void efla_copy16(void *to, const void *from) {
    *reinterpret_cast<uint4 *>(to) = *reinterpret_cast<const uint4 *>(from);
}
EFLA_DEV void efla_zero16(void *to) { *reinterpret_cast<uint4 *>(to) = make_uint4(0, 0, 0, 0); }
/* 16 bytes from a 16-byte aligned address into registers. */
EFLA_DEV void efla_load16(const void *from, uint32_t out[4]) {
    const uint4 v = *reinterpret_cast<const uint4 *>(from);
    out[0] = v.x;
    out[1] = v.y;
    out[2] = v.z;
    out[3] = v.w;
}
EFLA_DEV void efla_store16(void *to, const uint32_t x[4]) {
    *reinterpret_cast<uint4 *>(to) = make_uint4(x[0], x[1], x[2], x[3]);
}
EFLA_DEV void efla_syncwarp() { __syncwarp(); }
EFLA_DEV void efla_cp_async16(void *shared, const void *global) {
    const uint32_t address = (uint32_t)__cvta_generic_to_shared(shared);
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(address), "l"(global));
}
EFLA_DEV void efla_cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
EFLA_DEV void efla_cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }
EFLA_DEV void efla_cp_async_wait_one() { asm volatile("cp.async.wait_group 1;\n" ::: "memory"); }
#endif

/* Element `index` (in elements from `address`) of a tensor of dtype DT. */
template <int DT> EFLA_DEV float efla_load(uint64_t address, int64_t index) {
    if (DT == EFLA_CUDA_F32) return reinterpret_cast<const float *>(address)[index];
    uint16_t bits = reinterpret_cast<const uint16_t *>(address)[index];
    return DT == EFLA_CUDA_F16 ? efla_f16_to_f32(bits) : efla_bf16_to_f32(bits);
}

template <int DT> EFLA_DEV void efla_store(uint64_t address, int64_t index, float x) {
    if (DT == EFLA_CUDA_F32) {
        reinterpret_cast<float *>(address)[index] = x;
        return;
    }
    reinterpret_cast<uint16_t *>(address)[index] =
        DT == EFLA_CUDA_F16 ? efla_f32_to_f16(x) : efla_f32_to_bf16(x);
}

/* Element offset of index (i0, i1, i2, i3); 64-bit throughout. */
EFLA_DEV int64_t efla_offset(const efla_cuda_tensor &t, int64_t i0, int64_t i1, int64_t i2,
                             int64_t i3) {
    return i0 * t.stride[0] + i1 * t.stride[1] + i2 * t.stride[2] + i3 * t.stride[3];
}

EFLA_DEV float efla_state_load(const efla_cuda_tensor &t, int64_t n, int64_t hv, int64_t i,
                               int64_t j) {
    return reinterpret_cast<const float *>(t.address)[efla_offset(t, n, hv, i, j)];
}

EFLA_DEV void efla_state_store(const efla_cuda_tensor &t, int64_t n, int64_t hv, int64_t i,
                               int64_t j, float x) {
    reinterpret_cast<float *>(t.address)[efla_offset(t, n, hv, i, j)] = x;
}

/* Four consecutive f32 of the state at a 16-byte aligned address. */
EFLA_DEV void efla_load4(const float *address, float x[4]) {
#ifdef EFLA_CUDA_EMULATION
    std::memcpy(x, address, 16);
#else
    const float4 v = *reinterpret_cast<const float4 *>(address);
    x[0] = v.x;
    x[1] = v.y;
    x[2] = v.z;
    x[3] = v.w;
#endif
}

EFLA_DEV void efla_store4(float *address, const float x[4]) {
#ifdef EFLA_CUDA_EMULATION
    std::memcpy(address, x, 16);
#else
    *reinterpret_cast<float4 *>(address) = make_float4(x[0], x[1], x[2], x[3]);
#endif
}

/* Whether a state tensor can move 4 columns as one 16-byte access: unit
 * column stride, every other stride and the address multiples of 4 floats. */
EFLA_DEV bool efla_state_vectorizable(const efla_cuda_tensor &t) {
    return t.stride[3] == 1 && t.stride[2] % 4 == 0 && t.stride[1] % 4 == 0 &&
           t.stride[0] % 4 == 0 && t.address % 16 == 0;
}

/* Sequence n: batch row, first token, length and first scratch chunk. */
EFLA_DEV efla_cuda_sequence efla_sequence(const efla_cuda_params &p, int64_t n) {
    if (p.sequence_table) return reinterpret_cast<const efla_cuda_sequence *>(p.sequence_table)[n];
    efla_cuda_sequence s;
    s.batch_row = n;
    s.first = 0;
    s.length = p.tokens;
    s.first_chunk = n * p.chunks_per_sequence;
    return s;
}

/* The key head of value head hv (grouped value heads). 32-bit: head
 * counts are far below 2^31, and a 64-bit division is a long routine. */
EFLA_DEV int64_t efla_key_head(const efla_cuda_params &p, int64_t hv) {
    const uint32_t group = (uint32_t)p.value_heads / (uint32_t)p.heads;
    return (int64_t)((uint32_t)hv / group);
}

/* The sequence that owns scratch chunk g: the last n with first_chunk <= g
 * (sequences without chunks share first_chunk with the next one). */
EFLA_DEV int64_t efla_chunk_owner(const efla_cuda_params &p, int64_t g) {
    /* 32-bit: the host keeps the chunks below 2^31 (the CUDA grid) */
    if (!p.sequence_table) return (int64_t)((uint32_t)g / (uint32_t)p.chunks_per_sequence);
    const efla_cuda_sequence *table =
        reinterpret_cast<const efla_cuda_sequence *>(p.sequence_table);
    int64_t lo = 0, hi = p.sequences - 1;
    while (lo < hi) {
        int64_t mid = lo + (hi - lo + 1) / 2;
        if (table[mid].first_chunk <= g)
            lo = mid;
        else
            hi = mid - 1;
    }
    return lo;
}

#define EFLA_SERIES_LIMIT 1e-4f

/* erase = 1 - exp(-x), with the series below EFLA_SERIES_LIMIT. */
EFLA_DEV float efla_erase(float x) {
    if (x <= EFLA_SERIES_LIMIT) return x * (1.0f - x * (0.5f - x * (1.0f / 6.0f - x / 24.0f)));
    return -expm1f(-x);
}

/* alpha = (1 - exp(-beta lambda)) / lambda, = beta at lambda = 0. */
EFLA_DEV float efla_alpha(float beta, float lambda) {
    float x = beta * lambda;
    if (x <= EFLA_SERIES_LIMIT) return beta * (1.0f - x * (0.5f - x * (1.0f / 6.0f - x / 24.0f)));
    return -expm1f(-x) / lambda;
}

/* 1 / sqrt(sum x^2 + 1e-6): the fused l2norm factor (fla's epsilon). */
EFLA_DEV float efla_l2norm_factor(float sum_squares) { return 1.0f / sqrtf(sum_squares + 1e-6f); }

#endif
