/* AVX2 + FMA (+ F16C) microkernels (x86-64 only): 6 rows x 16 columns of
 * accumulators, two 8-float vectors per row. */
#include "backends/cpu/cpu_kernels_avx2.h"
#include "core/half.h"

#if defined(EFLA_CPU_X86)
#include <immintrin.h>

#define NR EFLA_CPU_NR
#define MR 6
#define AVX2 __attribute__((target("avx2,fma,f16c")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma,f16c")))

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
    FOR_ROWS(DECLARE);
    if (accumulate) {
        FOR_ROWS(LOAD_C);
    }
    for (int64_t p = 0; p < np; ++p) {
        __m256 b0 = _mm256_load_ps(b + p * b_rs), b1 = _mm256_load_ps(b + p * b_rs + 8);
        FOR_ROWS(FMA_A);
    }
    FOR_ROWS(STORE_C);
}

/* Row r of the diagonal block takes the finished rows p < r from
 * registers, in ascending p. */
#define DIAG(r, q)                                                                                 \
    if (mr > r) {                                                                                  \
        __m256 nr = _mm256_broadcast_ss(rows + r * n_rs + r0 + q);                                 \
        c##r##0 = _mm256_fmadd_ps(nr, c##q##0, c##r##0);                                           \
        c##r##1 = _mm256_fmadd_ps(nr, c##q##1, c##r##1);                                           \
    }
/* The pairs (r, q), q < r, of the diagonal block, in the order the
 * substitution takes them. */
/* clang-format off */
#define DIAG_PAIRS(X) \
    X(1, 0) \
    X(2, 0) X(2, 1) \
    X(3, 0) X(3, 1) X(3, 2) \
    X(4, 0) X(4, 1) X(4, 2) X(4, 3) \
    X(5, 0) X(5, 1) X(5, 2) X(5, 3) X(5, 4)
/* clang-format on */
#define FMA_N(r) FMA_ROW(r, rows + r * n_rs + p)

AVX2_INLINE void solve_body(const int mr, int64_t r0, const float *n, int64_t n_rs, float *x,
                            int64_t x_rs) {
    const float *rows = n + r0 * n_rs;
    float *c = x + r0 * x_rs;
    const int64_t c_rs = x_rs;
    FOR_ROWS(DECLARE);
    FOR_ROWS(LOAD_C);
    for (int64_t p = 0; p < r0; ++p) {
        __m256 b0 = _mm256_load_ps(x + p * x_rs), b1 = _mm256_load_ps(x + p * x_rs + 8);
        FOR_ROWS(FMA_N);
    }
    DIAG_PAIRS(DIAG);
    FOR_ROWS(STORE_C);
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

/* Lanes [0, count) set, count in 1..8. */
AVX2_INLINE __m256i tail_mask(int64_t count) {
    static const int32_t bits[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(bits + 8 - count));
}

/* Four full vectors of columns at a time, then single (masked-load)
 * vectors; every column sees the same FMA sequence, ascending rows. The
 * first column block prefetches whole rows ahead, so that the later
 * blocks find the state in cache. */
AVX2 void efla_cpu_avx2_state_dot2(int64_t dk, int64_t w, const float *s, int64_t ld,
                                   const float *k, const float *q, float *sk, float *sq) {
    const int64_t ahead = 8;
    int64_t j = 0;
    for (; j + 32 <= w; j += 32) {
        __m256 k0 = _mm256_setzero_ps(), k1 = k0, k2 = k0, k3 = k0, q0 = k0, q1 = k0, q2 = k0,
               q3 = k0;
        for (int64_t i = 0; i < dk; ++i) {
            const float *row = s + i * ld + j;
            if (j == 0 && i + ahead < dk)
                for (int64_t c = 0; c < w; c += 16)
                    _mm_prefetch((const char *)(row + ahead * ld + c), _MM_HINT_T1);
            __m256 ki = _mm256_broadcast_ss(k + i), qi = _mm256_broadcast_ss(q + i);
            __m256 s0 = _mm256_loadu_ps(row), s1 = _mm256_loadu_ps(row + 8);
            __m256 s2 = _mm256_loadu_ps(row + 16), s3 = _mm256_loadu_ps(row + 24);
            k0 = _mm256_fmadd_ps(s0, ki, k0);
            k1 = _mm256_fmadd_ps(s1, ki, k1);
            k2 = _mm256_fmadd_ps(s2, ki, k2);
            k3 = _mm256_fmadd_ps(s3, ki, k3);
            q0 = _mm256_fmadd_ps(s0, qi, q0);
            q1 = _mm256_fmadd_ps(s1, qi, q1);
            q2 = _mm256_fmadd_ps(s2, qi, q2);
            q3 = _mm256_fmadd_ps(s3, qi, q3);
        }
        _mm256_storeu_ps(sk + j, k0);
        _mm256_storeu_ps(sk + j + 8, k1);
        _mm256_storeu_ps(sk + j + 16, k2);
        _mm256_storeu_ps(sk + j + 24, k3);
        _mm256_storeu_ps(sq + j, q0);
        _mm256_storeu_ps(sq + j + 8, q1);
        _mm256_storeu_ps(sq + j + 16, q2);
        _mm256_storeu_ps(sq + j + 24, q3);
    }
    for (; j < w; j += 8) {
        const __m256i mask = tail_mask(w - j < 8 ? w - j : 8);
        __m256 k0 = _mm256_setzero_ps(), q0 = k0;
        for (int64_t i = 0; i < dk; ++i) {
            __m256 s0 = _mm256_maskload_ps(s + i * ld + j, mask);
            k0 = _mm256_fmadd_ps(s0, _mm256_broadcast_ss(k + i), k0);
            q0 = _mm256_fmadd_ps(s0, _mm256_broadcast_ss(q + i), q0);
        }
        _mm256_storeu_ps(sk + j, k0);
        _mm256_storeu_ps(sq + j, q0);
    }
}

/* Column blocks of 16 (8 with a masked tail), rows in order within each:
 * per element one FMA for the update, two for the next token's dots. */
AVX2 void efla_cpu_avx2_state_rank1_dot2(int64_t dk, int64_t w, const float *src, int64_t src_ld,
                                         float *dst, int64_t dst_ld, const float *k, const float *u,
                                         const float *kn, const float *qn, float *sk, float *sq) {
    int64_t j = 0;
    for (; j + 16 <= w; j += 16) {
        const __m256 u0 = _mm256_loadu_ps(u + j), u1 = _mm256_loadu_ps(u + j + 8);
        __m256 k0 = _mm256_setzero_ps(), k1 = k0, q0 = k0, q1 = k0;
        for (int64_t i = 0; i < dk; ++i) {
            const float *in = src + i * src_ld + j;
            float *out = dst + i * dst_ld + j;
            const __m256 ki = _mm256_broadcast_ss(k + i);
            const __m256 x0 = _mm256_fmadd_ps(ki, u0, _mm256_loadu_ps(in));
            const __m256 x1 = _mm256_fmadd_ps(ki, u1, _mm256_loadu_ps(in + 8));
            _mm256_storeu_ps(out, x0);
            _mm256_storeu_ps(out + 8, x1);
            const __m256 kni = _mm256_broadcast_ss(kn + i), qni = _mm256_broadcast_ss(qn + i);
            k0 = _mm256_fmadd_ps(x0, kni, k0);
            k1 = _mm256_fmadd_ps(x1, kni, k1);
            q0 = _mm256_fmadd_ps(x0, qni, q0);
            q1 = _mm256_fmadd_ps(x1, qni, q1);
        }
        _mm256_storeu_ps(sk + j, k0);
        _mm256_storeu_ps(sk + j + 8, k1);
        _mm256_storeu_ps(sq + j, q0);
        _mm256_storeu_ps(sq + j + 8, q1);
    }
    for (; j < w; j += 8) {
        const __m256i mask = tail_mask(w - j < 8 ? w - j : 8);
        const __m256 u0 = _mm256_maskload_ps(u + j, mask);
        __m256 k0 = _mm256_setzero_ps(), q0 = k0;
        for (int64_t i = 0; i < dk; ++i) {
            const __m256 x0 = _mm256_fmadd_ps(_mm256_broadcast_ss(k + i), u0,
                                              _mm256_maskload_ps(src + i * src_ld + j, mask));
            _mm256_maskstore_ps(dst + i * dst_ld + j, mask, x0);
            k0 = _mm256_fmadd_ps(x0, _mm256_broadcast_ss(kn + i), k0);
            q0 = _mm256_fmadd_ps(x0, _mm256_broadcast_ss(qn + i), q0);
        }
        _mm256_storeu_ps(sk + j, k0);
        _mm256_storeu_ps(sq + j, q0);
    }
}

/* Non-temporal stores when asked and possible (rows 16-byte aligned,
 * whole vectors; 128-bit stores, as callers' memory is often only 16-byte
 * aligned): a decode step then moves the state through memory once
 * instead of also reading the destination's old lines. */
AVX2 static void rank1_stream(int64_t dk, int64_t w, const float *src, int64_t src_ld, float *dst,
                              int64_t dst_ld, const float *k, const float *u) {
    for (int64_t i = 0; i < dk; ++i) {
        const float *in = src + i * src_ld;
        float *out = dst + i * dst_ld;
        const __m256 ki = _mm256_broadcast_ss(k + i);
        for (int64_t j = 0; j < w; j += 8) {
            __m256 x = _mm256_fmadd_ps(ki, _mm256_loadu_ps(u + j), _mm256_loadu_ps(in + j));
            _mm_stream_ps(out + j, _mm256_castps256_ps128(x));
            _mm_stream_ps(out + j + 4, _mm256_extractf128_ps(x, 1));
        }
    }
    _mm_sfence(); /* order the streamed stores before the task's completion */
}

AVX2 void efla_cpu_avx2_state_rank1(int64_t dk, int64_t w, const float *src, int64_t src_ld,
                                    float *dst, int64_t dst_ld, const float *k, const float *u,
                                    bool stream) {
    if (stream && dst != src && w % 8 == 0 && dst_ld % 4 == 0 && ((uintptr_t)dst & 15) == 0) {
        rank1_stream(dk, w, src, src_ld, dst, dst_ld, k, u);
        return;
    }
    for (int64_t i = 0; i < dk; ++i) {
        const float *in = src + i * src_ld;
        float *out = dst + i * dst_ld;
        const __m256 ki = _mm256_broadcast_ss(k + i);
        int64_t j = 0;
        for (; j + 16 <= w; j += 16) {
            __m256 a0 = _mm256_fmadd_ps(ki, _mm256_loadu_ps(u + j), _mm256_loadu_ps(in + j));
            __m256 a1 =
                _mm256_fmadd_ps(ki, _mm256_loadu_ps(u + j + 8), _mm256_loadu_ps(in + j + 8));
            _mm256_storeu_ps(out + j, a0);
            _mm256_storeu_ps(out + j + 8, a1);
        }
        for (; j < w; j += 8) {
            const __m256i mask = tail_mask(w - j < 8 ? w - j : 8);
            __m256 a0 = _mm256_fmadd_ps(ki, _mm256_maskload_ps(u + j, mask),
                                        _mm256_maskload_ps(in + j, mask));
            _mm256_maskstore_ps(out + j, mask, a0);
        }
    }
}

/* In-register 8 x 8 transpose of r[0..7]. */
AVX2_INLINE void transpose8(__m256 r[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) {
        t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
        t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44);
        u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xee);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44);
        u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xee);
    }
    for (int i = 0; i < 4; ++i) {
        r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
        r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
    }
}

AVX2 void efla_cpu_avx2_transpose(const float *src, int64_t ld, int64_t cols, float *dst) {
    int64_t p = 0;
    for (; p + 8 <= cols; p += 8)
        for (int half = 0; half < 2; ++half) {
            __m256 r[8];
            for (int i = 0; i < 8; ++i)
                r[i] = _mm256_loadu_ps(src + (8 * half + i) * ld + p);
            transpose8(r);
            for (int i = 0; i < 8; ++i)
                _mm256_store_ps(dst + (p + i) * NR + 8 * half, r[i]);
        }
    for (; p < cols; ++p)
        for (int i = 0; i < NR; ++i)
            dst[p * NR + i] = src[i * ld + p];
}

AVX2 void efla_cpu_avx2_f16_to_f32(const uint16_t *src, int64_t n, float *dst) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; ++i)
        dst[i] = efla_f16_to_f32(src[i]);
}

/* Hardware rounding matches core/half.h for every number; NaNs are
 * rewritten the core's way (quiet, payload dropped). */
AVX2 void efla_cpu_avx2_f32_to_f16(const float *src, int64_t n, uint16_t *dst) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(src + i);
        _mm_storeu_si128((__m128i *)(dst + i),
                         _mm256_cvtps_ph(x, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        if (_mm256_movemask_ps(_mm256_cmp_ps(x, x, _CMP_UNORD_Q)))
            for (int j = 0; j < 8; ++j)
                dst[i + j] = efla_f32_to_f16(src[i + j]);
    }
    for (; i < n; ++i)
        dst[i] = efla_f32_to_f16(src[i]);
}

static const efla_cpu_kernels avx2_kernels = {
    .name = "avx2",
    .mr = MR,
    .block = {0, block_1, block_2, block_3, block_4, block_5, block_6},
    .solve = {0, solve_1, solve_2, solve_3, solve_4, solve_5, solve_6},
    .transpose = efla_cpu_avx2_transpose,
    .f16_to_f32 = efla_cpu_avx2_f16_to_f32,
    .f32_to_f16 = efla_cpu_avx2_f32_to_f16,
    .state_dot2 = efla_cpu_avx2_state_dot2,
    .state_rank1_dot2 = efla_cpu_avx2_state_rank1_dot2,
    .state_rank1 = efla_cpu_avx2_state_rank1,
};

const efla_cpu_kernels *efla_cpu_kernels_avx2(void) { return &avx2_kernels; }

#endif
