/*
 * Shared helpers of the efla OpenCL kernels (OpenCL C 1.2).
 *
 * Build options: EFLA_STORAGE (1 f32, 2 f16, 3 bf16: the efla_dtype
 * values), EFLA_CHUNK (chunk length, 32 or 64), EFLA_WG (work-group size of
 * the chunk kernels: 64, 128 or 256), EFLA_RMAX (state rows per work-item
 * in the recurrent kernel).
 */
#include "efla_params.h"

#ifndef EFLA_STORAGE
#error "EFLA_STORAGE must be defined"
#endif

/* Tile constants of the chunk kernels. */
#define EFLA_C EFLA_CHUNK
#define EFLA_KT EFLA_CL_K_TILE
#define EFLA_MAX2(a, b) ((a) > (b) ? (a) : (b))

/* ---- storage: f32, f16 (vload_half/vstore_half_rte) or bf16 (bits) ---- */

#if EFLA_STORAGE == 1
typedef float store_t;
float efla_load(__global const store_t *p, long i) { return p[i]; }
void efla_store(__global store_t *p, long i, float x) { p[i] = x; }
#elif EFLA_STORAGE == 2
typedef half store_t;
float efla_load(__global const store_t *p, long i) { return vload_half((size_t)i, p); }
void efla_store(__global store_t *p, long i, float x) { vstore_half_rte(x, (size_t)i, p); }
#elif EFLA_STORAGE == 3
typedef ushort store_t;
float efla_load(__global const store_t *p, long i) { return as_float((uint)p[i] << 16); }
/* Round to nearest even; NaN stays a (quiet) NaN. */
void efla_store(__global store_t *p, long i, float x) {
    uint u = as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        p[i] = (ushort)((u >> 16) | 0x40u);
        return;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    p[i] = (ushort)(u >> 16);
}
#else
#error "EFLA_STORAGE must be 1 (f32), 2 (f16) or 3 (bf16)"
#endif

/* ---- the parameter block ---------------------------------------------- */

/* Element offset of row (b, t, head) of a [B,T,H,D] tensor at slot `p`. */
long efla_row(__global const long *P, int p, long b, long t, long head) {
    return P[p] + b * P[p + 1] + t * P[p + 2] + head * P[p + 3];
}

/* Element offset of state element (n, hv, i, j). */
long efla_state_index(__global const long *P, int p, long n, long hv, long i, long j) {
    return P[p] + n * P[p + 1] + hv * P[p + 2] + i * P[p + 3] + j * P[p + 4];
}

/* ---- coefficients (ALGORITHM.md 1.6, 2.6) ------------------------------ */

#define EFLA_SERIES_LIMIT 1e-4f

/* The step alpha and the erase coefficient e = alpha * lambda from beta and
 * lambda = |k|^2. EFLA: e = -expm1(-beta lambda), alpha = e / lambda, with
 * the series below |x| = 1e-4 (so lambda = 0 gives alpha = beta, e = 0).
 * DELTA: alpha = beta. */
float2 efla_step(float beta, float lambda, int delta) {
    if (delta) return (float2)(beta, beta * lambda);
    float x = beta * lambda;
    if (fabs(x) <= EFLA_SERIES_LIMIT) {
        float series = 1.0f - x * (0.5f - x * (1.0f / 6.0f - x * (1.0f / 24.0f)));
        return (float2)(beta * series, x * series);
    }
    float erase = -expm1(-x);
    return (float2)(erase / lambda, erase);
}

/* 1/sqrt(sum x^2 + 1e-6) when the l2norm flag is set, else 1. */
float efla_l2_factor(float sum_squares, int enabled) {
    return enabled ? 1.0f / sqrt(sum_squares + 1e-6f) : 1.0f;
}
