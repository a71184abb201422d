/* AVX-512F microkernels (x86-64 only): 8 rows x 16 columns, one 512-bit
 * accumulator per row. Only the block products and the substitution are
 * wider; the memory-bound kernels are the AVX2 ones. All loads and stores
 * are unaligned forms (no alignment faults whatever the caller's memory). */
#include "backends/cpu/cpu_kernels_avx2.h"

#if defined(EFLA_CPU_X86)
#include <immintrin.h>

#define NR EFLA_CPU_NR
#define MR 8
#define AVX512 __attribute__((target("avx512f,avx2,fma,f16c")))
#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f,avx2,fma,f16c")))

/* Named accumulators, rows at or past mr vanish at compile time. */
#define FOR_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)
#define DECLARE(r) __m512 c##r = _mm512_setzero_ps();
#define LOAD_C(r)                                                                                  \
    if (mr > r) c##r = _mm512_loadu_ps(c + r * c_rs);
#define STORE_C(r)                                                                                 \
    if (mr > r) _mm512_storeu_ps(c + r * c_rs, c##r);
#define FMA_ROW(r, ptr)                                                                            \
    if (mr > r) c##r = _mm512_fmadd_ps(_mm512_set1_ps(*(ptr)), b0, c##r);
#define FMA_A(r) FMA_ROW(r, a + r * a_rs + p * a_ps)

AVX512_INLINE void block_body(const int mr, int64_t np, const float *a, int64_t a_rs, int64_t a_ps,
                              const float *b, int64_t b_rs, float *c, int64_t c_rs,
                              bool accumulate) {
    FOR_ROWS(DECLARE);
    if (accumulate) {
        FOR_ROWS(LOAD_C);
    }
    for (int64_t p = 0; p < np; ++p) {
        const __m512 b0 = _mm512_loadu_ps(b + p * b_rs);
        FOR_ROWS(FMA_A);
    }
    FOR_ROWS(STORE_C);
}

/* Row r of the diagonal block takes the finished rows q < r from
 * registers, in ascending q. */
#define DIAG(r, q)                                                                                 \
    if (mr > r) c##r = _mm512_fmadd_ps(_mm512_set1_ps(rows[r * n_rs + r0 + q]), c##q, c##r);
/* The pairs (r, q), q < r, of the diagonal block, in the order the
 * substitution takes them. */
/* clang-format off */
#define DIAG_PAIRS(X) \
    X(1, 0) \
    X(2, 0) X(2, 1) \
    X(3, 0) X(3, 1) X(3, 2) \
    X(4, 0) X(4, 1) X(4, 2) X(4, 3) \
    X(5, 0) X(5, 1) X(5, 2) X(5, 3) X(5, 4) \
    X(6, 0) X(6, 1) X(6, 2) X(6, 3) X(6, 4) X(6, 5) \
    X(7, 0) X(7, 1) X(7, 2) X(7, 3) X(7, 4) X(7, 5) X(7, 6)
/* clang-format on */
#define FMA_N(r) FMA_ROW(r, rows + r * n_rs + p)

AVX512_INLINE void solve_body(const int mr, int64_t r0, const float *n, int64_t n_rs, float *x,
                              int64_t x_rs) {
    const float *rows = n + r0 * n_rs;
    float *c = x + r0 * x_rs;
    const int64_t c_rs = x_rs;
    FOR_ROWS(DECLARE);
    FOR_ROWS(LOAD_C);
    for (int64_t p = 0; p < r0; ++p) {
        const __m512 b0 = _mm512_loadu_ps(x + p * x_rs);
        FOR_ROWS(FMA_N);
    }
    DIAG_PAIRS(DIAG);
    FOR_ROWS(STORE_C);
}

#define DEFINE_ROWS(m)                                                                             \
    AVX512 static void block_##m(int64_t np, const float *a, int64_t a_rs, int64_t a_ps,           \
                                 const float *b, int64_t b_rs, float *c, int64_t c_rs,             \
                                 bool accumulate) {                                                \
        block_body(m, np, a, a_rs, a_ps, b, b_rs, c, c_rs, accumulate);                            \
    }                                                                                              \
    AVX512 static void solve_##m(int64_t r0, const float *n, int64_t n_rs, float *x,               \
                                 int64_t x_rs) {                                                   \
        solve_body(m, r0, n, n_rs, x, x_rs);                                                       \
    }
DEFINE_ROWS(1)
DEFINE_ROWS(2)
DEFINE_ROWS(3)
DEFINE_ROWS(4)
DEFINE_ROWS(5)
DEFINE_ROWS(6)
DEFINE_ROWS(7)
DEFINE_ROWS(8)

static const efla_cpu_kernels avx512_kernels = {
    .name = "avx512",
    .mr = MR,
    .block = {0, block_1, block_2, block_3, block_4, block_5, block_6, block_7, block_8},
    .solve = {0, solve_1, solve_2, solve_3, solve_4, solve_5, solve_6, solve_7, solve_8},
    .transpose = efla_cpu_avx2_transpose,
    .f16_to_f32 = efla_cpu_avx2_f16_to_f32,
    .f32_to_f16 = efla_cpu_avx2_f32_to_f16,
    .state_dot2 = efla_cpu_avx2_state_dot2,
    .state_rank1_dot2 = efla_cpu_avx2_state_rank1_dot2,
    .state_rank1 = efla_cpu_avx2_state_rank1,
};

const efla_cpu_kernels *efla_cpu_kernels_avx512(void) { return &avx512_kernels; }

#endif
