/* Portable C microkernels: the reference path, built on every platform. */
#include "backends/cpu/cpu_kernels.h"

#define NR EFLA_CPU_NR
#define MR 6

static inline void block_body(int mr, int64_t np, const float *a, int64_t a_rs, int64_t a_ps,
                              const float *b, int64_t b_rs, float *c, int64_t c_rs,
                              bool accumulate) {
    float acc[MR][NR];
    for (int r = 0; r < mr; ++r)
        for (int j = 0; j < NR; ++j)
            acc[r][j] = accumulate ? c[r * c_rs + j] : 0.0f;
    for (int64_t p = 0; p < np; ++p) {
        const float *bp = b + p * b_rs;
        for (int r = 0; r < mr; ++r) {
            float ar = a[r * a_rs + p * a_ps];
            for (int j = 0; j < NR; ++j)
                acc[r][j] += ar * bp[j];
        }
    }
    for (int r = 0; r < mr; ++r)
        for (int j = 0; j < NR; ++j)
            c[r * c_rs + j] = acc[r][j];
}

static inline void solve_body(int mr, int64_t r0, const float *n, int64_t n_rs, float *x,
                              int64_t x_rs) {
    float acc[MR][NR];
    const float *rows = n + r0 * n_rs;
    for (int r = 0; r < mr; ++r)
        for (int j = 0; j < NR; ++j)
            acc[r][j] = x[(r0 + r) * x_rs + j];
    for (int64_t p = 0; p < r0; ++p)
        for (int r = 0; r < mr; ++r) {
            float nr = rows[r * n_rs + p];
            for (int j = 0; j < NR; ++j)
                acc[r][j] += nr * x[p * x_rs + j];
        }
    for (int r = 1; r < mr; ++r)
        for (int p = 0; p < r; ++p) {
            float nr = rows[r * n_rs + r0 + p];
            for (int j = 0; j < NR; ++j)
                acc[r][j] += nr * acc[p][j];
        }
    for (int r = 0; r < mr; ++r)
        for (int j = 0; j < NR; ++j)
            x[(r0 + r) * x_rs + j] = acc[r][j];
}

#define DEFINE_ROWS(m)                                                                             \
    static void block_##m(int64_t np, const float *a, int64_t a_rs, int64_t a_ps, const float *b,  \
                          int64_t b_rs, float *c, int64_t c_rs, bool accumulate) {                 \
        block_body(m, np, a, a_rs, a_ps, b, b_rs, c, c_rs, accumulate);                            \
    }                                                                                              \
    static void solve_##m(int64_t r0, const float *n, int64_t n_rs, float *x, int64_t x_rs) {      \
        solve_body(m, r0, n, n_rs, x, x_rs);                                                       \
    }
DEFINE_ROWS(1)
DEFINE_ROWS(2)
DEFINE_ROWS(3)
DEFINE_ROWS(4)
DEFINE_ROWS(5)
DEFINE_ROWS(6)

static void state_dot2(int64_t dk, int64_t w, const float *s, int64_t ld, const float *k,
                       const float *q, float *sk, float *sq) {
    for (int64_t j = 0; j < w; ++j)
        sk[j] = sq[j] = 0.0f;
    for (int64_t i = 0; i < dk; ++i) {
        const float *row = s + i * ld, ki = k[i], qi = q[i];
        for (int64_t j = 0; j < w; ++j) {
            sk[j] += row[j] * ki;
            sq[j] += row[j] * qi;
        }
    }
}

static void state_rank1(int64_t dk, int64_t w, const float *src, int64_t src_ld, float *dst,
                        int64_t dst_ld, const float *k, const float *u) {
    for (int64_t i = 0; i < dk; ++i) {
        const float *in = src + i * src_ld, ki = k[i];
        float *out = dst + i * dst_ld;
        for (int64_t j = 0; j < w; ++j)
            out[j] = in[j] + ki * u[j];
    }
}

static const efla_cpu_kernels portable_kernels = {
    .name = "portable",
    .mr = MR,
    .block = {0, block_1, block_2, block_3, block_4, block_5, block_6},
    .solve = {0, solve_1, solve_2, solve_3, solve_4, solve_5, solve_6},
    .state_dot2 = state_dot2,
    .state_rank1 = state_rank1,
};

const efla_cpu_kernels *efla_cpu_kernels_portable(void) { return &portable_kernels; }
