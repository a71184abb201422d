/*
 * What the host passes every CUDA kernel, shared by backends/cuda (C) and
 * shaders/cuda (CUDA C++, or host C++ in the emulator). One struct, passed
 * by value as the kernel's only argument; fixed-width members only, so C
 * and C++ agree on its layout (checked on both sides).
 */
#ifndef EFLA_CUDA_PARAMS_H
#define EFLA_CUDA_PARAMS_H

#include <stdint.h>

#if defined(__CUDACC__)
#define EFLA_HD __host__ __device__ static inline
#else
#define EFLA_HD static inline
#endif

/* Tokens per chunk of the chunked algorithm. */
#define EFLA_CUDA_CHUNK 64
/* Columns of the state one block of the recurrent / SIMT scan kernels owns. */
#define EFLA_CUDA_TILE_V 32
#define EFLA_CUDA_RECURRENT_THREADS 128
#define EFLA_CUDA_PREPARE_THREADS 256
#define EFLA_CUDA_SCAN_THREADS 256

/* A tensor: the device address of element (0,0,0,0) and element strides. */
typedef struct efla_cuda_tensor {
    uint64_t address; /* 0 when absent */
    int64_t stride[4];
} efla_cuda_tensor;

/* One sequence, as the varlen table in device memory holds it. */
typedef struct efla_cuda_sequence {
    int64_t batch_row, first, length;
    int64_t first_chunk; /* index of its first chunk in the scratch; chunked sequences only */
} efla_cuda_sequence;

typedef struct efla_cuda_params {
    efla_cuda_tensor q, k, v, beta, out, state_in, state_out;
    uint64_t sequence_table; /* efla_cuda_sequence[sequences], or 0 without varlen */
    uint64_t scratch;        /* chunk scratch: f32 (simt) or 16-bit (mma) */
    int64_t tokens, heads, value_heads, dk, dv, sequences;
    int64_t chunks_per_sequence; /* without varlen: chunks of every chunked sequence */
    int64_t recurrent_max_len;   /* recurrent kernels take len <= this, chunked ones the rest */
    int64_t chunk_floats;        /* scratch elements per (chunk, head) */
    int32_t hv_begin, hv_count;  /* value heads of this launch (chunked kernels) */
    int32_t dv_tiles;            /* ceil(dv / EFLA_CUDA_TILE_V) */
    int32_t mode;                /* 0: EFLA, 1: DELTA */
    int32_t l2norm_q, l2norm_k;
    float scale;
    int32_t state_tile;   /* mma state kernel: columns per block (16, 32 or 64) */
    int32_t output_tile;  /* mma output kernel: columns per block (32, 64 or 128) */
    int32_t output_tiles; /* mma output kernel: column tiles (grid y = heads x tiles) */
    int32_t state_stages; /* mma state kernel: chunk operand buffers in flight (2 or 3) */
} efla_cuda_params;

#define EFLA_CUDA_PARAMS_SIZE 416

/* Scratch of one (chunk, value head), in floats, row-major with row pitch dk
 * or dv: K^ [C][dk], Q^ [C][dk], W [C][dk], U [C][dv], QK^T masked [C][C]. */
EFLA_HD int64_t efla_cuda_chunk_floats(int64_t dk, int64_t dv) {
    return (int64_t)EFLA_CUDA_CHUNK * (3 * dk + dv + EFLA_CUDA_CHUNK);
}
EFLA_HD int64_t efla_cuda_scratch_khat(int64_t dk, int64_t dv) {
    (void)dk;
    (void)dv;
    return 0;
}
EFLA_HD int64_t efla_cuda_scratch_qhat(int64_t dk, int64_t dv) {
    (void)dv;
    return EFLA_CUDA_CHUNK * dk;
}
EFLA_HD int64_t efla_cuda_scratch_w(int64_t dk, int64_t dv) {
    (void)dv;
    return 2 * EFLA_CUDA_CHUNK * dk;
}
EFLA_HD int64_t efla_cuda_scratch_u(int64_t dk, int64_t dv) {
    (void)dv;
    return 3 * EFLA_CUDA_CHUNK * dk;
}
EFLA_HD int64_t efla_cuda_scratch_aqk(int64_t dk, int64_t dv) {
    return (int64_t)EFLA_CUDA_CHUNK * (3 * dk + dv);
}

/* Dynamic shared memory of each kernel, in bytes. */
#define EFLA_CUDA_STAGE_PITCH (EFLA_CUDA_CHUNK + 1) /* a padded 64-wide row: no bank conflicts */
EFLA_HD uint32_t efla_cuda_recurrent_smem(int64_t dk_class) {
    /* the state tile [class][32]; k and q rows and the cross-warp column
     * sums (S^T k, S^T q), two of each (by token parity) */
    const int64_t warps = EFLA_CUDA_RECURRENT_THREADS / 32;
    return (uint32_t)(4 * (dk_class * EFLA_CUDA_TILE_V + 2 * 2 * dk_class +
                           2 * warps * 2 * EFLA_CUDA_TILE_V));
}
EFLA_HD uint32_t efla_cuda_prepare_smem(void) {
    /* K^ and Q^ stages, A (then L), A^-1, four coefficient vectors */
    return (uint32_t)(4 * (4 * EFLA_CUDA_CHUNK * EFLA_CUDA_STAGE_PITCH + 4 * EFLA_CUDA_CHUNK));
}
EFLA_HD uint32_t efla_cuda_scan_smem(int64_t dk) {
    /* the state tile [dk][32], V' [64][32], two stages */
    return (uint32_t)(4 * (dk * EFLA_CUDA_TILE_V + EFLA_CUDA_CHUNK * EFLA_CUDA_TILE_V +
                           2 * EFLA_CUDA_CHUNK * EFLA_CUDA_STAGE_PITCH));
}

/* The tensor-core (mma) path: three kernels (prepare, state, output; see
 * chunk_mma.cu) sharing a 16-bit scratch per (chunk, value head) with the
 * head dimensions padded to multiples of 16 (zeros). In elements, in order:
 * W [C][dkp + 8], K^T [dkp][C + 8], U^T [dvp][C + 8] (the state kernel's
 * operands, row pitches as in its shared memory, so that each is one
 * contiguous copy), V'^T [dvp][C], S_c^T [dvp][dkp], the masked scores P
 * [C][C + 8] (prepare's, for the output kernel), then ck and rq as f32
 * [2][C]. */
#define EFLA_CUDA_MMA_PREPARE_THREADS 256
#define EFLA_CUDA_MMA_PREPARE_WIDE_THREADS 512
#define EFLA_CUDA_MMA_OUTPUT_THREADS 256
/* Dk columns per slice of the output kernel's Q and S^T buffers. */
#define EFLA_CUDA_MMA_OUTPUT_SLICE 64
#define EFLA_CUDA_MMA_PITCH_C (EFLA_CUDA_CHUNK + 8)
/* The prepare kernel's f32 L / A^-1 [C][68] and the solve's block row
 * [16][52]: rows 16-byte aligned (float4 accesses). */
#define EFLA_CUDA_MMA_LOWER_PITCH (EFLA_CUDA_CHUNK + 4)
#define EFLA_CUDA_MMA_SOLVE_PITCH 52
EFLA_HD int64_t efla_cuda_pad16(int64_t x) { return (x + 15) / 16 * 16; }
EFLA_HD int64_t efla_cuda_mma_pitch_k(int64_t dk) { return efla_cuda_pad16(dk) + 8; }
EFLA_HD int64_t efla_cuda_max64(int64_t a, int64_t b) { return a > b ? a : b; }
typedef struct efla_cuda_mma_layout {
    int64_t w, kt, u, vnt, ht, pm, factors, total;
} efla_cuda_mma_layout;
EFLA_HD efla_cuda_mma_layout efla_cuda_mma_scratch_layout(int64_t dk, int64_t dv) {
    const int64_t c = EFLA_CUDA_CHUNK, dkp = efla_cuda_pad16(dk), dvp = efla_cuda_pad16(dv);
    efla_cuda_mma_layout l;
    l.w = 0;
    l.kt = l.w + c * (dkp + 8);
    l.u = l.kt + dkp * (c + 8);
    l.vnt = l.u + dvp * (c + 8);
    l.ht = l.vnt + dvp * c;
    l.pm = l.ht + dvp * dkp;
    l.factors = l.pm + c * (c + 8);
    l.total = l.factors + 4 * c; /* 2 x C floats */
    return l;
}
/* Warps of the state kernel for a column tile of `tile` columns (16, 32
 * or 64): `parts` (2 or 4) per 16 columns, each with that share of Dk (a
 * constant expression: the kernels' launch bounds use it). */
#define EFLA_CUDA_STATE_WARPS(tile, parts) ((tile) / 16 * (parts))
/* Whether a state kernel has a producer warp besides, which issues the
 * chunk copies (mma_state.cuh): unfused, up to 32 columns (at 64 the
 * register budget of the larger block would spill). */
#define EFLA_CUDA_STATE_PRODUCER(tile, fused) (!(fused) && (tile) <= 32)
/* Threads of a state kernel: its warps and the producer. */
#define EFLA_CUDA_STATE_THREADS(tile, parts, fused)                                                \
    (32 * (EFLA_CUDA_STATE_WARPS(tile, parts) + (EFLA_CUDA_STATE_PRODUCER(tile, fused) ? 1 : 0)))
EFLA_HD uint32_t efla_cuda_prepare_mma_smem(int64_t dk, int64_t dv) {
    const int64_t c = EFLA_CUDA_CHUNK, pc = EFLA_CUDA_MMA_PITCH_C;
    const int64_t dkp = efla_cuda_pad16(dk), dvp = efla_cuda_pad16(dv);
    const int64_t rows = c * (dkp + 8); /* raw K, then W */
    /* raw Q, then K^T, then raw V */
    const int64_t transposed = efla_cuda_max64(c * (efla_cuda_max64(dkp, dvp) + 8), dkp * pc);
    /* + A^-1 in 16 bits; L then A^-1 in f32; the solve's block row; 4 coefficient rows */
    return (uint32_t)(2 * (rows + transposed + c * pc) +
                      4 * (c * EFLA_CUDA_MMA_LOWER_PITCH + 16 * EFLA_CUDA_MMA_SOLVE_PITCH + 4 * c));
}
/* Elements of one stage of the state kernel: W [C][kp], K^T [dkp][pc],
 * U^T [tile][pc]; fused with the output, also Q [C][kp], P [C][pc] and rq
 * (C f32). The fused kernel at Dk 256 has one stage (staggered refills). */
EFLA_HD int64_t efla_cuda_state_mma_stage(int64_t dk, int64_t tile, int fused) {
    const int64_t c = EFLA_CUDA_CHUNK, pc = EFLA_CUDA_MMA_PITCH_C, kp = efla_cuda_mma_pitch_k(dk);
    const int64_t stage = c * kp + efla_cuda_pad16(dk) * pc + tile * pc;
    return fused ? stage + c * kp + c * pc + 2 * c : stage;
}
/* Bytes of the state kernel's mbarriers after its stages, 8 each: two
 * per stage (full, empty) for up to three stages, or the staggered
 * kernel's three. A constant, so that the kernels need no register to
 * find what follows (at sm_120 one more spilled). */
#define EFLA_CUDA_STATE_BARRIER_BYTES 48
EFLA_HD uint32_t efla_cuda_state_mma_smem(int64_t dk, int64_t tile, int64_t stages, int64_t parts,
                                          int fused) {
    const int64_t c = EFLA_CUDA_CHUNK;
    /* the stages; the mbarriers; per 16 columns the parts'
     * partial V'^T (parts x 16 x C f32) and V'^T as A fragments (16 x C
     * 16-bit); fused, also the parts' partial outputs (parts x C x 16 f32) */
    const int64_t partial = parts * 16 * c * 4;
    return (uint32_t)(2 * stages * efla_cuda_state_mma_stage(dk, tile, fused) +
                      EFLA_CUDA_STATE_BARRIER_BYTES +
                      (tile / 16) * (partial + 16 * c * 2 + (fused ? partial : 0)));
}
EFLA_HD uint32_t efla_cuda_output_mma_smem(int64_t dk, int64_t tile) {
    const int64_t c = EFLA_CUDA_CHUNK, pc = EFLA_CUDA_MMA_PITCH_C;
    const int64_t sp = EFLA_CUDA_MMA_OUTPUT_SLICE + 8;
    (void)dk;
    /* two Dk slices of Q [C][sp] and S^T [tile][sp] (then O [C][tile + 8],
     * which is smaller); V'^T [tile][pc]; P [C][pc]; ck, rq */
    return (uint32_t)(2 * (2 * (c + tile) * sp + tile * pc + c * pc) + 4 * 2 * c);
}

/* The Dk class of the recurrent kernels: rows of the state one thread holds
 * is class / 16 (16 row slots of 8 threads share the rows). */
EFLA_HD int64_t efla_cuda_dk_class(int64_t dk) {
    return dk <= 32 ? 32 : dk <= 64 ? 64 : dk <= 128 ? 128 : 256;
}

/*
 * Every kernel: X(ID, "symbol", MODULE). The host resolves these names with
 * cuModuleGetFunction; the emulator registers the same names.
 */
#define EFLA_CUDA_RECURRENT_KERNELS(X)                                                             \
    X(RECURRENT_F32_K32, "efla_recurrent_f32_k32", RECURRENT)                                      \
    X(RECURRENT_F32_K64, "efla_recurrent_f32_k64", RECURRENT)                                      \
    X(RECURRENT_F32_K128, "efla_recurrent_f32_k128", RECURRENT)                                    \
    X(RECURRENT_F32_K256, "efla_recurrent_f32_k256", RECURRENT)                                    \
    X(RECURRENT_F16_K32, "efla_recurrent_f16_k32", RECURRENT)                                      \
    X(RECURRENT_F16_K64, "efla_recurrent_f16_k64", RECURRENT)                                      \
    X(RECURRENT_F16_K128, "efla_recurrent_f16_k128", RECURRENT)                                    \
    X(RECURRENT_F16_K256, "efla_recurrent_f16_k256", RECURRENT)                                    \
    X(RECURRENT_BF16_K32, "efla_recurrent_bf16_k32", RECURRENT)                                    \
    X(RECURRENT_BF16_K64, "efla_recurrent_bf16_k64", RECURRENT)                                    \
    X(RECURRENT_BF16_K128, "efla_recurrent_bf16_k128", RECURRENT)                                  \
    X(RECURRENT_BF16_K256, "efla_recurrent_bf16_k256", RECURRENT)

#define EFLA_CUDA_CHUNK_SIMT_KERNELS(X)                                                            \
    X(PREPARE_SIMT_F32, "efla_prepare_simt_f32", CHUNK_SIMT)                                       \
    X(PREPARE_SIMT_F16, "efla_prepare_simt_f16", CHUNK_SIMT)                                       \
    X(PREPARE_SIMT_BF16, "efla_prepare_simt_bf16", CHUNK_SIMT)                                     \
    X(SCAN_SIMT_F32, "efla_scan_simt_f32", CHUNK_SIMT)                                             \
    X(SCAN_SIMT_F16, "efla_scan_simt_f16", CHUNK_SIMT)                                             \
    X(SCAN_SIMT_BF16, "efla_scan_simt_bf16", CHUNK_SIMT)

#define EFLA_CUDA_CHUNK_MMA_KERNELS(X)                                                             \
    X(PREPARE_MMA_F16, "efla_prepare_mma_f16", CHUNK_MMA)                                          \
    X(PREPARE_MMA_BF16, "efla_prepare_mma_bf16", CHUNK_MMA)                                        \
    X(PREPARE_WIDE_MMA_F16, "efla_prepare_wide_mma_f16", CHUNK_MMA)                                \
    X(PREPARE_WIDE_MMA_BF16, "efla_prepare_wide_mma_bf16", CHUNK_MMA)                              \
    X(STATE_MMA_F16_K128_V16, "efla_state_mma_f16_k128_v16", CHUNK_MMA)                            \
    X(STATE_MMA_F16_K128_V32, "efla_state_mma_f16_k128_v32", CHUNK_MMA)                            \
    X(STATE_MMA_F16_K128_V64, "efla_state_mma_f16_k128_v64", CHUNK_MMA)                            \
    X(STATE_MMA_F16_K256_V16, "efla_state_mma_f16_k256_v16", CHUNK_MMA)                            \
    X(STATE_MMA_F16_K256_V32, "efla_state_mma_f16_k256_v32", CHUNK_MMA)                            \
    X(STATE_MMA_BF16_K128_V16, "efla_state_mma_bf16_k128_v16", CHUNK_MMA)                          \
    X(STATE_MMA_BF16_K128_V32, "efla_state_mma_bf16_k128_v32", CHUNK_MMA)                          \
    X(STATE_MMA_BF16_K128_V64, "efla_state_mma_bf16_k128_v64", CHUNK_MMA)                          \
    X(STATE_MMA_BF16_K256_V16, "efla_state_mma_bf16_k256_v16", CHUNK_MMA)                          \
    X(STATE_MMA_BF16_K256_V32, "efla_state_mma_bf16_k256_v32", CHUNK_MMA)                          \
    X(STATE_MMA_F16_K128_V16_P2, "efla_state_mma_f16_k128_v16_p2", CHUNK_MMA)                      \
    X(STATE_MMA_F16_K128_V32_P2, "efla_state_mma_f16_k128_v32_p2", CHUNK_MMA)                      \
    X(STATE_MMA_F16_K128_V64_P2, "efla_state_mma_f16_k128_v64_p2", CHUNK_MMA)                      \
    X(STATE_MMA_F16_K256_V16_P2, "efla_state_mma_f16_k256_v16_p2", CHUNK_MMA)                      \
    X(STATE_MMA_F16_K256_V32_P2, "efla_state_mma_f16_k256_v32_p2", CHUNK_MMA)                      \
    X(STATE_MMA_F16_K256_V64_P2, "efla_state_mma_f16_k256_v64_p2", CHUNK_MMA)                      \
    X(STATE_MMA_BF16_K128_V16_P2, "efla_state_mma_bf16_k128_v16_p2", CHUNK_MMA)                    \
    X(STATE_MMA_BF16_K128_V32_P2, "efla_state_mma_bf16_k128_v32_p2", CHUNK_MMA)                    \
    X(STATE_MMA_BF16_K128_V64_P2, "efla_state_mma_bf16_k128_v64_p2", CHUNK_MMA)                    \
    X(STATE_MMA_BF16_K256_V16_P2, "efla_state_mma_bf16_k256_v16_p2", CHUNK_MMA)                    \
    X(STATE_MMA_BF16_K256_V32_P2, "efla_state_mma_bf16_k256_v32_p2", CHUNK_MMA)                    \
    X(STATE_MMA_BF16_K256_V64_P2, "efla_state_mma_bf16_k256_v64_p2", CHUNK_MMA)                    \
    X(FUSED_MMA_F16_K128_V16_P2, "efla_fused_mma_f16_k128_v16_p2", CHUNK_MMA)                      \
    X(FUSED_MMA_F16_K128_V32_P2, "efla_fused_mma_f16_k128_v32_p2", CHUNK_MMA)                      \
    X(FUSED_MMA_F16_K128_V64_P2, "efla_fused_mma_f16_k128_v64_p2", CHUNK_MMA)                      \
    X(FUSED_MMA_F16_K256_V16_P2, "efla_fused_mma_f16_k256_v16_p2", CHUNK_MMA)                      \
    X(FUSED_MMA_F16_K256_V32_P2, "efla_fused_mma_f16_k256_v32_p2", CHUNK_MMA)                      \
    X(FUSED_MMA_F16_K256_V64_P2, "efla_fused_mma_f16_k256_v64_p2", CHUNK_MMA)                      \
    X(FUSED_MMA_BF16_K128_V16_P2, "efla_fused_mma_bf16_k128_v16_p2", CHUNK_MMA)                    \
    X(FUSED_MMA_BF16_K128_V32_P2, "efla_fused_mma_bf16_k128_v32_p2", CHUNK_MMA)                    \
    X(FUSED_MMA_BF16_K128_V64_P2, "efla_fused_mma_bf16_k128_v64_p2", CHUNK_MMA)                    \
    X(FUSED_MMA_BF16_K256_V16_P2, "efla_fused_mma_bf16_k256_v16_p2", CHUNK_MMA)                    \
    X(FUSED_MMA_BF16_K256_V32_P2, "efla_fused_mma_bf16_k256_v32_p2", CHUNK_MMA)                    \
    X(FUSED_MMA_BF16_K256_V64_P2, "efla_fused_mma_bf16_k256_v64_p2", CHUNK_MMA)                    \
    X(OUTPUT_MMA_F16_V32, "efla_output_mma_f16_v32", CHUNK_MMA)                                    \
    X(OUTPUT_MMA_F16_V64, "efla_output_mma_f16_v64", CHUNK_MMA)                                    \
    X(OUTPUT_MMA_F16_V128, "efla_output_mma_f16_v128", CHUNK_MMA)                                  \
    X(OUTPUT_MMA_BF16_V32, "efla_output_mma_bf16_v32", CHUNK_MMA)                                  \
    X(OUTPUT_MMA_BF16_V64, "efla_output_mma_bf16_v64", CHUNK_MMA)                                  \
    X(OUTPUT_MMA_BF16_V128, "efla_output_mma_bf16_v128", CHUNK_MMA)

#define EFLA_CUDA_KERNELS(X)                                                                       \
    EFLA_CUDA_RECURRENT_KERNELS(X) EFLA_CUDA_CHUNK_SIMT_KERNELS(X) EFLA_CUDA_CHUNK_MMA_KERNELS(X)

/* Storage dtype codes of the kernels' template parameter. */
#define EFLA_CUDA_F32 0
#define EFLA_CUDA_F16 1
#define EFLA_CUDA_BF16 2

#endif
