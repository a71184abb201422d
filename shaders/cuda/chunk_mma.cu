/*
 * The chunked forward on tensor cores (the "mma" path) for f16 and bf16
 * storage, split so that only what must be serial is serial:
 *   prepare (chunk x value head)                 mma_prepare.cuh
 *   state   (sequence x value head x BV columns) mma_state.cuh
 *   output  (chunk x value head x BO columns)    mma_output.cuh
 * or the state kernel fused with the output (mma_state.cuh).
 * Every product is an mma.sync m16n8k16 with 16-bit operands and f32
 * accumulation. Only bounded operands are 16-bit (ALGORITHM.md §2.6,
 * DESIGN.md "Precision contract"): unit keys, e.K^, A^-1, W, U, V', the
 * raw q and k rows as stored, and the state as an operand; the state itself
 * stays f32 in registers, L and the solve stay f32.
 */
#include "mma_output.cuh"
#include "mma_prepare.cuh"
#include "mma_state.cuh"

#define EFLA_STATE_KERNEL(name, dt, dk, bv, parts)                                                 \
    EFLA_KERNEL(name, EFLA_CUDA_STATE_THREADS(bv, parts, 0)) {                                     \
        state_mma<dt, (dk) / 8, (bv) / 16, parts, false>(p);                                       \
    }
/* The state kernel that also writes the output (no S_c^T or V'^T through
 * memory, no output kernel), in two parts per 16 columns (the plan's
 * choice where there are enough blocks; with four, on the H200, fused was
 * slower at S1 and S4). Dk 256: one buffer per operand, staggered. */
#define EFLA_FUSED_KERNEL(name, dt, dk, bv)                                                        \
    EFLA_KERNEL(name, EFLA_CUDA_STATE_THREADS(bv, 2, 1)) {                                         \
        state_mma<dt, (dk) / 8, (bv) / 16, 2, true>(p);                                            \
    }
/* output: three blocks per SM up to 64 columns, whose sliced buffers
 * (~56 KB) fit three times over; two at 128 (83 KB), which then need not
 * keep to three blocks' registers (at 80 one value spilled). */
#define EFLA_OUTPUT_KERNEL(name, dt, bo)                                                           \
    EFLA_KERNEL_OCCUPANCY(name, EFLA_CUDA_MMA_OUTPUT_THREADS, (bo) > 64 ? 2 : 3) {                 \
        output_mma<dt, bo>(p);                                                                     \
    }

/* prepare: three blocks per SM (24 warps) to hide its many short phases;
 * its ~66 KB of shared memory allows them at Dk = Dv = 128. */
EFLA_KERNEL_OCCUPANCY(efla_prepare_mma_f16, EFLA_CUDA_MMA_PREPARE_THREADS, 3) {
    prepare_mma<EFLA_CUDA_F16, EFLA_CUDA_MMA_PREPARE_THREADS>(p);
}
EFLA_KERNEL_OCCUPANCY(efla_prepare_mma_bf16, EFLA_CUDA_MMA_PREPARE_THREADS, 3) {
    prepare_mma<EFLA_CUDA_BF16, EFLA_CUDA_MMA_PREPARE_THREADS>(p);
}
/* prepare, wide: 16 warps a block where the narrow one would get fewer
 * than three blocks per SM (Dk 256 on the H200: two wide blocks, 32 warps,
 * 64 registers). SMs of 100 KB (sm_86, 89, 120) hold one such block, which
 * then may use 128 registers (at 64, sm_120 spilled 36 bytes). */
#if defined(__CUDA_ARCH__) && (__CUDA_ARCH__ == 860 || __CUDA_ARCH__ == 870 ||                     \
                               __CUDA_ARCH__ == 890 || __CUDA_ARCH__ >= 1200)
#define EFLA_PREPARE_WIDE_BLOCKS 1
#else
#define EFLA_PREPARE_WIDE_BLOCKS 2
#endif
EFLA_KERNEL_OCCUPANCY(efla_prepare_wide_mma_f16, EFLA_CUDA_MMA_PREPARE_WIDE_THREADS,
                      EFLA_PREPARE_WIDE_BLOCKS) {
    prepare_mma<EFLA_CUDA_F16, EFLA_CUDA_MMA_PREPARE_WIDE_THREADS>(p);
}
EFLA_KERNEL_OCCUPANCY(efla_prepare_wide_mma_bf16, EFLA_CUDA_MMA_PREPARE_WIDE_THREADS,
                      EFLA_PREPARE_WIDE_BLOCKS) {
    prepare_mma<EFLA_CUDA_BF16, EFLA_CUDA_MMA_PREPARE_WIDE_THREADS>(p);
}
EFLA_STATE_KERNEL(efla_state_mma_f16_k128_v16, EFLA_CUDA_F16, 128, 16, 4)
EFLA_STATE_KERNEL(efla_state_mma_f16_k128_v32, EFLA_CUDA_F16, 128, 32, 4)
EFLA_STATE_KERNEL(efla_state_mma_f16_k128_v64, EFLA_CUDA_F16, 128, 64, 4)
EFLA_STATE_KERNEL(efla_state_mma_f16_k256_v16, EFLA_CUDA_F16, 256, 16, 4)
EFLA_STATE_KERNEL(efla_state_mma_f16_k256_v32, EFLA_CUDA_F16, 256, 32, 4)
EFLA_STATE_KERNEL(efla_state_mma_bf16_k128_v16, EFLA_CUDA_BF16, 128, 16, 4)
EFLA_STATE_KERNEL(efla_state_mma_bf16_k128_v32, EFLA_CUDA_BF16, 128, 32, 4)
EFLA_STATE_KERNEL(efla_state_mma_bf16_k128_v64, EFLA_CUDA_BF16, 128, 64, 4)
EFLA_STATE_KERNEL(efla_state_mma_bf16_k256_v16, EFLA_CUDA_BF16, 256, 16, 4)
EFLA_STATE_KERNEL(efla_state_mma_bf16_k256_v32, EFLA_CUDA_BF16, 256, 32, 4)
EFLA_STATE_KERNEL(efla_state_mma_f16_k128_v16_p2, EFLA_CUDA_F16, 128, 16, 2)
EFLA_STATE_KERNEL(efla_state_mma_f16_k128_v32_p2, EFLA_CUDA_F16, 128, 32, 2)
EFLA_STATE_KERNEL(efla_state_mma_f16_k128_v64_p2, EFLA_CUDA_F16, 128, 64, 2)
EFLA_STATE_KERNEL(efla_state_mma_f16_k256_v16_p2, EFLA_CUDA_F16, 256, 16, 2)
EFLA_STATE_KERNEL(efla_state_mma_f16_k256_v32_p2, EFLA_CUDA_F16, 256, 32, 2)
EFLA_STATE_KERNEL(efla_state_mma_f16_k256_v64_p2, EFLA_CUDA_F16, 256, 64, 2)
EFLA_STATE_KERNEL(efla_state_mma_bf16_k128_v16_p2, EFLA_CUDA_BF16, 128, 16, 2)
EFLA_STATE_KERNEL(efla_state_mma_bf16_k128_v32_p2, EFLA_CUDA_BF16, 128, 32, 2)
EFLA_STATE_KERNEL(efla_state_mma_bf16_k128_v64_p2, EFLA_CUDA_BF16, 128, 64, 2)
EFLA_STATE_KERNEL(efla_state_mma_bf16_k256_v16_p2, EFLA_CUDA_BF16, 256, 16, 2)
EFLA_STATE_KERNEL(efla_state_mma_bf16_k256_v32_p2, EFLA_CUDA_BF16, 256, 32, 2)
EFLA_STATE_KERNEL(efla_state_mma_bf16_k256_v64_p2, EFLA_CUDA_BF16, 256, 64, 2)
EFLA_FUSED_KERNEL(efla_fused_mma_f16_k128_v16_p2, EFLA_CUDA_F16, 128, 16)
EFLA_FUSED_KERNEL(efla_fused_mma_f16_k128_v32_p2, EFLA_CUDA_F16, 128, 32)
EFLA_FUSED_KERNEL(efla_fused_mma_f16_k128_v64_p2, EFLA_CUDA_F16, 128, 64)
EFLA_FUSED_KERNEL(efla_fused_mma_f16_k256_v16_p2, EFLA_CUDA_F16, 256, 16)
EFLA_FUSED_KERNEL(efla_fused_mma_f16_k256_v32_p2, EFLA_CUDA_F16, 256, 32)
EFLA_FUSED_KERNEL(efla_fused_mma_f16_k256_v64_p2, EFLA_CUDA_F16, 256, 64)
EFLA_FUSED_KERNEL(efla_fused_mma_bf16_k128_v16_p2, EFLA_CUDA_BF16, 128, 16)
EFLA_FUSED_KERNEL(efla_fused_mma_bf16_k128_v32_p2, EFLA_CUDA_BF16, 128, 32)
EFLA_FUSED_KERNEL(efla_fused_mma_bf16_k128_v64_p2, EFLA_CUDA_BF16, 128, 64)
EFLA_FUSED_KERNEL(efla_fused_mma_bf16_k256_v16_p2, EFLA_CUDA_BF16, 256, 16)
EFLA_FUSED_KERNEL(efla_fused_mma_bf16_k256_v32_p2, EFLA_CUDA_BF16, 256, 32)
EFLA_FUSED_KERNEL(efla_fused_mma_bf16_k256_v64_p2, EFLA_CUDA_BF16, 256, 64)
EFLA_OUTPUT_KERNEL(efla_output_mma_f16_v32, EFLA_CUDA_F16, 32)
EFLA_OUTPUT_KERNEL(efla_output_mma_f16_v64, EFLA_CUDA_F16, 64)
EFLA_OUTPUT_KERNEL(efla_output_mma_f16_v128, EFLA_CUDA_F16, 128)
EFLA_OUTPUT_KERNEL(efla_output_mma_bf16_v32, EFLA_CUDA_BF16, 32)
EFLA_OUTPUT_KERNEL(efla_output_mma_bf16_v64, EFLA_CUDA_BF16, 64)
EFLA_OUTPUT_KERNEL(efla_output_mma_bf16_v128, EFLA_CUDA_BF16, 128)
