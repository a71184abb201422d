/* Portable C microkernels: the reference path, built on every platform. */
#include "backends/cpu/cpu_kernels.h"
#include "core/half.h"

#include <string.h>

#define NR EFLA_CPU_NR
/* Rows per block: the accumulators (MR x 4 vectors of 4 floats), a row of
 * b and a broadcast must fit the vector registers: 16 on x86-64 (SSE2),
 * 32 on AArch64 (NEON). */
#if defined(__aarch64__)
#define MR 4
#else
#define MR 2
#endif

#if defined(__GNUC__) || defined(__clang__)
/* Four-float vectors in GNU C: SSE, NEON, or scalar code, whatever the
 * target has; loads and stores go through memcpy (no alignment assumed). */
typedef float vec4 __attribute__((vector_size(16)));
static inline vec4 load4(const float *p) {
    vec4 v;
    memcpy(&v, p, sizeof v);
    return v;
}
static inline void store4(float *p, vec4 v) { memcpy(p, &v, sizeof v); }
#define VEC_LANES 4
#else
#define VEC_LANES 0 /* other compilers: the plain loops below */
#endif

#if VEC_LANES
typedef struct row16 {
    vec4 v[NR / 4];
} row16;

static inline void block_body(int mr, int64_t np, const float *a, int64_t a_rs, int64_t a_ps,
                              const float *b, int64_t b_rs, float *c, int64_t c_rs,
                              bool accumulate) {
    row16 acc[MR];
    for (int r = 0; r < mr; ++r)
        for (int j = 0; j < NR / 4; ++j)
            acc[r].v[j] = accumulate ? load4(c + r * c_rs + 4 * j) : (vec4){0, 0, 0, 0};
    for (int64_t p = 0; p < np; ++p) {
        row16 bp;
        for (int j = 0; j < NR / 4; ++j)
            bp.v[j] = load4(b + p * b_rs + 4 * j);
        for (int r = 0; r < mr; ++r) {
            const float ar = a[r * a_rs + p * a_ps];
            for (int j = 0; j < NR / 4; ++j)
                acc[r].v[j] += ar * bp.v[j];
        }
    }
    for (int r = 0; r < mr; ++r)
        for (int j = 0; j < NR / 4; ++j)
            store4(c + r * c_rs + 4 * j, acc[r].v[j]);
}

static inline void solve_body(int mr, int64_t r0, const float *n, int64_t n_rs, float *x,
                              int64_t x_rs) {
    row16 acc[MR];
    const float *rows = n + r0 * n_rs;
    for (int r = 0; r < mr; ++r)
        for (int j = 0; j < NR / 4; ++j)
            acc[r].v[j] = load4(x + (r0 + r) * x_rs + 4 * j);
    for (int64_t p = 0; p < r0; ++p) {
        row16 bp;
        for (int j = 0; j < NR / 4; ++j)
            bp.v[j] = load4(x + p * x_rs + 4 * j);
        for (int r = 0; r < mr; ++r) {
            const float nr = rows[r * n_rs + p];
            for (int j = 0; j < NR / 4; ++j)
                acc[r].v[j] += nr * bp.v[j];
        }
    }
    for (int r = 1; r < mr; ++r)
        for (int p = 0; p < r; ++p) {
            const float nr = rows[r * n_rs + r0 + p];
            for (int j = 0; j < NR / 4; ++j)
                acc[r].v[j] += nr * acc[p].v[j];
        }
    for (int r = 0; r < mr; ++r)
        for (int j = 0; j < NR / 4; ++j)
            store4(x + (r0 + r) * x_rs + 4 * j, acc[r].v[j]);
}
#else
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

#endif

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
#if MR > 2
DEFINE_ROWS(3)
DEFINE_ROWS(4)
#endif

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
                        int64_t dst_ld, const float *k, const float *u, bool stream) {
    (void)stream;
    for (int64_t i = 0; i < dk; ++i) {
        const float *in = src + i * src_ld, ki = k[i];
        float *out = dst + i * dst_ld;
        for (int64_t j = 0; j < w; ++j)
            out[j] = in[j] + ki * u[j];
    }
}

static void state_rank1_dot2(int64_t dk, int64_t w, const float *src, int64_t src_ld, float *dst,
                             int64_t dst_ld, const float *k, const float *u, const float *kn,
                             const float *qn, float *sk, float *sq) {
    for (int64_t j = 0; j < w; ++j)
        sk[j] = sq[j] = 0.0f;
    for (int64_t i = 0; i < dk; ++i) {
        const float *in = src + i * src_ld, ki = k[i], kni = kn[i], qni = qn[i];
        float *out = dst + i * dst_ld;
        for (int64_t j = 0; j < w; ++j) {
            const float x = in[j] + ki * u[j];
            out[j] = x;
            sk[j] += x * kni;
            sq[j] += x * qni;
        }
    }
}

static void transpose(const float *src, int64_t ld, int64_t cols, float *dst) {
    for (int64_t p = 0; p < cols; ++p)
        for (int i = 0; i < NR; ++i)
            dst[p * NR + i] = src[i * ld + p];
}

static void f16_to_f32(const uint16_t *src, int64_t n, float *dst) {
    for (int64_t i = 0; i < n; ++i)
        dst[i] = efla_f16_to_f32(src[i]);
}

static void f32_to_f16(const float *src, int64_t n, uint16_t *dst) {
    for (int64_t i = 0; i < n; ++i)
        dst[i] = efla_f32_to_f16(src[i]);
}

static const efla_cpu_kernels portable_kernels = {
    .name = "portable",
    .mr = MR,
#if MR > 2
    .block = {0, block_1, block_2, block_3, block_4},
    .solve = {0, solve_1, solve_2, solve_3, solve_4},
#else
    .block = {0, block_1, block_2},
    .solve = {0, solve_1, solve_2},
#endif
    .transpose = transpose,
    .f16_to_f32 = f16_to_f32,
    .f32_to_f16 = f32_to_f16,
    .state_dot2 = state_dot2,
    .state_rank1_dot2 = state_rank1_dot2,
    .state_rank1 = state_rank1,
};

const efla_cpu_kernels *efla_cpu_kernels_portable(void) { return &portable_kernels; }
