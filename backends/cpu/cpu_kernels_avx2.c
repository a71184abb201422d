/* AVX2 + FMA microkernels (x86-64 only): 6 rows x 16 columns of
 * accumulators, two 8-float vectors per row. */
#include "backends/cpu/cpu_kernels.h"

#if defined(EFLA_CPU_X86)
#include <immintrin.h>

#define NR EFLA_CPU_NR
#define MR 6
#define AVX2 __attribute__((target("avx2,fma")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

/* The accumulators are named variables, not an array, so that the
 * compiler keeps all twelve in registers. Rows at or past mr vanish at
 * compile time (mr is a constant in every instantiation). */
#define FOR_ROWS(X) X(0) X(1) X(2) X(3) X(4) X(5)
#define DECLARE(r) __m256 c##r##0 = _mm256_setzero_ps(), c##r##1 = _mm256_setzero_ps();
#define LOAD_C(r)                                                                                  \
    if (mr > r) {                                                                                  \
        c##r##0 = _mm256_loadu_ps(c + r * c_rs);                                                   \
        c##r##1 = _mm256_loadu_ps(c + r * c_rs + 8);                                               \
    }
#define STORE_C(r)                                                                                 \
    if (mr > r) {                                                                                  \
        _mm256_storeu_ps(c + r * c_rs, c##r##0);                                                   \
        _mm256_storeu_ps(c + r * c_rs + 8, c##r##1);                                               \
    }
#define FMA_ROW(r, ptr)                                                                            \
    if (mr > r) {                                                                                  \
        __m256 ar = _mm256_broadcast_ss(ptr);                                                      \
        c##r##0 = _mm256_fmadd_ps(ar, b0, c##r##0);                                                \
        c##r##1 = _mm256_fmadd_ps(ar, b1, c##r##1);                                                \
    }
#define FMA_A(r) FMA_ROW(r, a + r * a_rs + p * a_ps)

AVX2_INLINE void block_body(const int mr, int64_t np, const float *a, int64_t a_rs, int64_t a_ps,
                            const float *b, int64_t b_rs, float *c, int64_t c_rs, bool accumulate) {
    FOR_ROWS(DECLARE)
    if (accumulate) {
        FOR_ROWS(LOAD_C)
    }
    for (int64_t p = 0; p < np; ++p) {
        __m256 b0 = _mm256_load_ps(b + p * b_rs), b1 = _mm256_load_ps(b + p * b_rs + 8);
        FOR_ROWS(FMA_A)
    }
    FOR_ROWS(STORE_C)
}

/* Row r of the diagonal block takes the finished rows p < r from
 * registers, in ascending p. */
#define DIAG(r, q)                                                                                 \
    if (mr > r) {                                                                                  \
        __m256 nr = _mm256_broadcast_ss(rows + r * n_rs + r0 + q);                                 \
        c##r##0 = _mm256_fmadd_ps(nr, c##q##0, c##r##0);                                           \
        c##r##1 = _mm256_fmadd_ps(nr, c##q##1, c##r##1);                                           \
    }
#define FMA_N(r) FMA_ROW(r, rows + r * n_rs + p)

AVX2_INLINE void solve_body(const int mr, int64_t r0, const float *n, int64_t n_rs, float *x,
                            int64_t x_rs) {
    const float *rows = n + r0 * n_rs;
    float *c = x + r0 * x_rs;
    const int64_t c_rs = x_rs;
    FOR_ROWS(DECLARE)
    FOR_ROWS(LOAD_C)
    for (int64_t p = 0; p < r0; ++p) {
        __m256 b0 = _mm256_load_ps(x + p * x_rs), b1 = _mm256_load_ps(x + p * x_rs + 8);
        FOR_ROWS(FMA_N)
    }
    DIAG(1, 0)
    DIAG(2, 0)
    DIAG(2, 1) DIAG(3, 0) DIAG(3, 1) DIAG(3, 2) DIAG(4, 0) DIAG(4, 1) DIAG(4, 2) DIAG(4, 3)
        DIAG(5, 0) DIAG(5, 1) DIAG(5, 2) DIAG(5, 3) DIAG(5, 4) FOR_ROWS(STORE_C)
}

#define DEFINE_ROWS(m)                                                                             \
    AVX2 static void block_##m(int64_t np, const float *a, int64_t a_rs, int64_t a_ps,             \
                               const float *b, int64_t b_rs, float *c, int64_t c_rs,               \
                               bool accumulate) {                                                  \
        block_body(m, np, a, a_rs, a_ps, b, b_rs, c, c_rs, accumulate);                            \
    }                                                                                              \
    AVX2 static void solve_##m(int64_t r0, const float *n, int64_t n_rs, float *x, int64_t x_rs) { \
        solve_body(m, r0, n, n_rs, x, x_rs);                                                       \
    }
DEFINE_ROWS(1)
DEFINE_ROWS(2)
DEFINE_ROWS(3)
DEFINE_ROWS(4)
DEFINE_ROWS(5)
DEFINE_ROWS(6)

AVX2 static void state_dot2(int64_t dk, int64_t panels, const float *s, const float *k,
                            const float *q, float *sk, float *sq) {
    for (int64_t panel = 0; panel < panels; ++panel, s += dk * NR) {
        __m256 k0 = _mm256_setzero_ps(), k1 = k0, q0 = k0, q1 = k0;
        for (int64_t i = 0; i < dk; ++i) {
            __m256 s0 = _mm256_load_ps(s + i * NR), s1 = _mm256_load_ps(s + i * NR + 8);
            __m256 ki = _mm256_broadcast_ss(k + i), qi = _mm256_broadcast_ss(q + i);
            k0 = _mm256_fmadd_ps(s0, ki, k0);
            k1 = _mm256_fmadd_ps(s1, ki, k1);
            q0 = _mm256_fmadd_ps(s0, qi, q0);
            q1 = _mm256_fmadd_ps(s1, qi, q1);
        }
        _mm256_store_ps(sk + panel * NR, k0);
        _mm256_store_ps(sk + panel * NR + 8, k1);
        _mm256_store_ps(sq + panel * NR, q0);
        _mm256_store_ps(sq + panel * NR + 8, q1);
    }
}

AVX2 static void state_rank1(int64_t dk, int64_t panels, float *s, const float *k, const float *u) {
    for (int64_t panel = 0; panel < panels; ++panel, s += dk * NR) {
        __m256 u0 = _mm256_load_ps(u + panel * NR), u1 = _mm256_load_ps(u + panel * NR + 8);
        for (int64_t i = 0; i < dk; ++i) {
            __m256 ki = _mm256_broadcast_ss(k + i);
            _mm256_store_ps(s + i * NR, _mm256_fmadd_ps(ki, u0, _mm256_load_ps(s + i * NR)));
            _mm256_store_ps(s + i * NR + 8,
                            _mm256_fmadd_ps(ki, u1, _mm256_load_ps(s + i * NR + 8)));
        }
    }
}

static const efla_cpu_kernels avx2_kernels = {
    .name = "avx2",
    .mr = MR,
    .block = {0, block_1, block_2, block_3, block_4, block_5, block_6},
    .solve = {0, solve_1, solve_2, solve_3, solve_4, solve_5, solve_6},
    .state_dot2 = state_dot2,
    .state_rank1 = state_rank1,
};

const efla_cpu_kernels *efla_cpu_kernels_avx2(void) { return &avx2_kernels; }

#endif
