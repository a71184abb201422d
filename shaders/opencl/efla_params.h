/*
 * The layout of the per-call parameter block shared by the OpenCL host code
 * (C) and the kernels (OpenCL C). The block is an array of 64-bit integers,
 * followed by the sequence tables as int4 {batch row, first token, length,
 * state row}.
 */
#ifndef EFLA_OPENCL_PARAMS_H
#define EFLA_OPENCL_PARAMS_H

/* Tensors: element offset, then the four element strides (beta has 3). */
#define EFLA_P_Q 0
#define EFLA_P_K 5
#define EFLA_P_V 10
#define EFLA_P_BETA 15
#define EFLA_P_OUT 20
#define EFLA_P_S0 25
#define EFLA_P_S1 30
/* Sizes. */
#define EFLA_P_TOKENS 35      /* T */
#define EFLA_P_HEADS 36       /* H */
#define EFLA_P_VALUE_HEADS 37 /* HV */
#define EFLA_P_DK 38
#define EFLA_P_DV 39
#define EFLA_P_FLAGS 40 /* EFLA_PF_* */
#define EFLA_P_SCALE 41 /* the float's bits */
/* The chunked path's scratch: B*T rows per value head, and where each
 * array starts (in floats). W [HV][rows][Dk], U [HV][rows][Dv] (the state
 * kernel overwrites U with V' = U - W S), A (the masked, scaled Q K^T rows)
 * [HV][rows][chunk], C {q factor, 1/|k|} [HV][rows][2], H (the state
 * before each chunk) [HV][chunks][Dk][Dv]. */
#define EFLA_P_ROWS 42
#define EFLA_P_SCRATCH_W 43
#define EFLA_P_SCRATCH_U 44
#define EFLA_P_SCRATCH_A 45
#define EFLA_P_SCRATCH_C 46
#define EFLA_P_SCRATCH_H 47
#define EFLA_P_CHUNKS 48 /* chunks in the chunk table (H's second dimension) */
#define EFLA_P_COUNT 50  /* a multiple of 2, so that the tables start on an int4 */

#define EFLA_PF_INITIAL_STATE 1
#define EFLA_PF_FINAL_STATE 2
#define EFLA_PF_L2NORM_Q 4
#define EFLA_PF_L2NORM_K 8
#define EFLA_PF_DELTA 16

/* Build-time constants (-D) of the kernels that the host must agree on. */
#define EFLA_CL_K_TILE 32       /* rows of Dk staged in local memory at a time */
#define EFLA_CL_STATE_K_TILE 64 /* Dk columns of W the state kernel stages at a time */
#define EFLA_CL_MAX_DV_TILE 32  /* the state kernel's widest Dv tile */
#define EFLA_CL_OUT_TILE 64     /* Dv columns of one output work-group */

/* The nvmma path (chunk 64): a 16-bit scratch block per (chunk, value
 * head), chunk-major ((chunk * HV + hv) * EFLA_NV_TOTAL elements), with
 * dkp, dvp = Dk, Dv padded to multiples of 16 (zeros). Element offsets
 * in the block, each matrix in fragment order (efla_nvmma_common.cl):
 *   W    [C][dkp]   B-pair order, Bt = W (the scan's S^T W^T)
 *   KT   [dkp][C]   B-pair order, Bt = K^T of the unit keys (S^T += V'^T K^)
 *   U    [dvp][C]   A order, U^T
 *   Q    [C][dkp]   A order, q as stored
 *   P    [C][C]     A order, the masked scores qf_t ck_s q_t.k_s (s <= t)
 *   HT   [dvp][dkp] A order, S^T before the chunk (the scan's)
 *   VT   [dvp][C]   A order, V'^T (the scan's)
 *   RQ   [C] f32    the q factors qf (scale times the q norm factor) */
#define EFLA_NV_CHUNK 64
#define EFLA_NV_PAD16(x) (((x) + 15) / 16 * 16)
#define EFLA_NV_W(dkp, dvp) 0
#define EFLA_NV_KT(dkp, dvp) (EFLA_NV_CHUNK * (dkp))
#define EFLA_NV_U(dkp, dvp) (2 * EFLA_NV_CHUNK * (dkp))
#define EFLA_NV_Q(dkp, dvp) (EFLA_NV_U(dkp, dvp) + EFLA_NV_CHUNK * (dvp))
#define EFLA_NV_P(dkp, dvp) (EFLA_NV_Q(dkp, dvp) + EFLA_NV_CHUNK * (dkp))
#define EFLA_NV_HT(dkp, dvp) (EFLA_NV_P(dkp, dvp) + EFLA_NV_CHUNK * EFLA_NV_CHUNK)
#define EFLA_NV_VT(dkp, dvp) (EFLA_NV_HT(dkp, dvp) + (dvp) * (dkp))
#define EFLA_NV_RQ(dkp, dvp) (EFLA_NV_VT(dkp, dvp) + (dvp)*EFLA_NV_CHUNK)
#define EFLA_NV_TOTAL(dkp, dvp) (EFLA_NV_RQ(dkp, dvp) + 2 * EFLA_NV_CHUNK)
/* Work-items of the nvmma prepare and output kernels; Dv columns of an
 * output work-group. */
#define EFLA_NV_PREPARE_ITEMS 256
#define EFLA_NV_OUTPUT_ITEMS 128
#define EFLA_NV_OUT_TILE 64

#endif
