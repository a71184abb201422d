/*
 * The CPU backend's microkernels, one table per instruction set.
 *
 * Every matrix the kernels touch as a right-hand side or output of width
 * EFLA_CPU_NR is stored in "panels": EFLA_CPU_NR consecutive columns of all
 * rows, row after row (row stride EFLA_CPU_NR floats), 64-byte aligned.
 * Kernels vectorise across those columns only; every element is a sum
 * taken in ascending order of the reduction index, so results do not
 * depend on how rows or column panels are blocked, nor on which thread
 * runs them. The AVX2 and AVX-512 tables perform the same fused
 * multiply-adds element for element (bitwise equal results); the portable
 * table's products are fused or not as the compiler contracts them.
 */
#ifndef EFLA_CPU_KERNELS_H
#define EFLA_CPU_KERNELS_H

#include <stdbool.h>
#include <stdint.h>

#define EFLA_CPU_NR 16    /* panel width, in floats */
#define EFLA_CPU_MR_MAX 8 /* most rows any table's block kernel takes */

/*
 * c[r][0..NR) = (accumulate ? c[r] : 0) + sum_{p<np} a[r*a_rs + p*a_ps] * b[p*b_rs][0..NR)
 * for r < mr: an mr x NR block of a product. b's and c's rows are NR
 * consecutive floats, 32-byte aligned, b_rs and c_rs apart.
 */
typedef void (*efla_cpu_block_fn)(int64_t np, const float *a, int64_t a_rs, int64_t a_ps,
                                  const float *b, int64_t b_rs, float *c, int64_t c_rs,
                                  bool accumulate);

/*
 * Forward substitution for rows [r0, r0 + mr) of a unit lower-triangular
 * system, in place on NR columns of x (row stride x_rs):
 *   x[i] += sum_{p<i} n[i][p] * x[p]   for i = r0 .. r0 + mr - 1, p ascending,
 * where n has row stride n_rs and rows before r0 of x are already final.
 */
typedef void (*efla_cpu_solve_fn)(int64_t r0, const float *n, int64_t n_rs, float *x, int64_t x_rs);

typedef struct efla_cpu_kernels {
    const char *name; /* "portable", "avx2", "avx512" */
    int mr;           /* rows per block: block[1..mr] and solve[1..mr] are set */
    efla_cpu_block_fn block[EFLA_CPU_MR_MAX + 1];
    efla_cpu_solve_fn solve[EFLA_CPU_MR_MAX + 1];

    /* dst[p][i] = src[i][p] for i < NR, p < cols: NR rows of src (row
     * stride ld) into one panel of `cols` rows. */
    void (*transpose)(const float *src, int64_t ld, int64_t cols, float *dst);

    /* Contiguous f16 <-> f32, bit-identical to core/half.h (round to
     * nearest even) except for the payloads of signalling NaNs on load. */
    void (*f16_to_f32)(const uint16_t *src, int64_t n, float *dst);
    void (*f32_to_f16)(const float *src, int64_t n, uint16_t *dst);

    /* Row-major state tiles (dk rows of w floats, row stride ld), any w:
     * sk = S^T k and sq = S^T q, sums in ascending row order; sk and sq
     * have room for w rounded up to a multiple of 16. */
    void (*state_dot2)(int64_t dk, int64_t w, const float *s, int64_t ld, const float *k,
                       const float *q, float *sk, float *sq);
    /* One pass for two tokens: dst = src + k u^T, then sk = dst^T kn and
     * sq = dst^T qn (ascending rows; sk and sq as for state_dot2). The
     * same operations, element for element, as state_rank1 followed by
     * state_dot2, with the state read once. */
    void (*state_rank1_dot2)(int64_t dk, int64_t w, const float *src, int64_t src_ld, float *dst,
                             int64_t dst_ld, const float *k, const float *u, const float *kn,
                             const float *qn, float *sk, float *sq);
    /* dst = src + k u^T (dst may be src). With `stream`, dst (not src)
     * need not stay cached: a table may bypass the cache, which saves
     * reading dst's lines in before overwriting them. */
    void (*state_rank1)(int64_t dk, int64_t w, const float *src, int64_t src_ld, float *dst,
                        int64_t dst_ld, const float *k, const float *u, bool stream);
} efla_cpu_kernels;

const efla_cpu_kernels *efla_cpu_kernels_portable(void);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define EFLA_CPU_X86 1
const efla_cpu_kernels *efla_cpu_kernels_avx2(void);
const efla_cpu_kernels *efla_cpu_kernels_avx512(void);
#endif

/* The table EFLA_PATH asks for, or the best this CPU runs. On an unknown
 * or unavailable EFLA_PATH value: NULL, with the message set. */
const efla_cpu_kernels *efla_cpu_kernels_select(void);
/* The best table this CPU runs, ignoring EFLA_PATH. */
const efla_cpu_kernels *efla_cpu_kernels_best(void);

#endif
