/* What both chunked paths share: per-row coefficients and the solve. */
#ifndef EFLA_CHUNK_COMMON_CUH
#define EFLA_CHUNK_COMMON_CUH

#include "device_common.cuh"

EFLA_DEV int64_t efla_min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* One row's coefficients from its sums of squares kk = |k|^2, qq = |q|^2
 * and beta: the unit-key factor ck (k^ = k ck), the q factor rq, erase e
 * and write g (ALGORITHM.md §2.6). */
EFLA_DEV void efla_coefficients_of(const efla_cuda_params &p, float kk, float qq, float beta,
                                   float *ck, float *rq, float *erase, float *write) {
    const float rk = p.l2norm_k ? efla_l2norm_factor(kk) : 1.0f;
    const float lambda = p.l2norm_k ? kk * rk * rk : kk;
    const float norm = sqrtf(lambda);
    *ck = lambda > 0.0f ? rk / norm : 0.0f;
    *rq = p.l2norm_q ? efla_l2norm_factor(qq) : 1.0f;
    if (p.mode == 1) { /* DELTA: alpha = beta */
        *erase = beta * lambda;
        *write = beta * norm;
    } else {
        *erase = efla_erase(beta * lambda);
        *write = efla_alpha(beta, lambda) * norm;
    }
}

/* Per-row coefficients of one chunk: the unit-key factor ck (k^ = k ck),
 * the q factor rq, erase e and write g. Rows past the end get zeros. */
template <int DT, int THREADS>
EFLA_DEV void efla_row_coefficients(const efla_cuda_params &p, const efla_cuda_sequence &seq,
                                    int64_t t0, int rows, int64_t h, int64_t hv, float *ck,
                                    float *rq, float *erase, float *write) {
    const int lane = efla_tid() & 31, warp = efla_tid() >> 5;
    for (int r = warp; r < EFLA_CUDA_CHUNK; r += THREADS / 32) {
        float kk = 0.0f, qq = 0.0f;
        if (r < rows) {
            for (int64_t i = lane; i < p.dk; i += 32) {
                const float k =
                    efla_load<DT>(p.k.address, efla_offset(p.k, seq.batch_row, t0 + r, h, i));
                const float q =
                    efla_load<DT>(p.q.address, efla_offset(p.q, seq.batch_row, t0 + r, h, i));
                kk += k * k;
                qq += q * q;
            }
        }
        kk = efla_warp_sum(kk);
        qq = efla_warp_sum(qq);
        if (lane != 0) continue;
        if (r >= rows) {
            ck[r] = rq[r] = erase[r] = write[r] = 0.0f;
            continue;
        }
        const float beta =
            efla_load<DT>(p.beta.address, efla_offset(p.beta, seq.batch_row, t0 + r, hv, 0));
        efla_coefficients_of(p, kk, qq, beta, &ck[r], &rq[r], &erase[r], &write[r]);
    }
}

/* Column j of (I + L)^-1 by forward substitution, in registers:
 * x_i = delta_ij - sum_{m<i} L_im x_m (x_m = 0 for m < j). */
EFLA_DEV void efla_solve_column_x(const float *lower, float *x, int j) {
#pragma unroll
    for (int i = 0; i < EFLA_CUDA_CHUNK; ++i) {
        float acc = 0.0f;
#pragma unroll
        for (int m = 0; m < i; ++m)
            acc += lower[i * EFLA_CUDA_STAGE_PITCH + m] * x[m];
        x[i] = i < j ? 0.0f : (i == j ? 1.0f : -acc);
    }
}

EFLA_DEV void efla_solve_column(const float *lower, float *inverse, int j) {
    float x[EFLA_CUDA_CHUNK];
    efla_solve_column_x(lower, x, j);
#pragma unroll
    for (int i = 0; i < EFLA_CUDA_CHUNK; ++i)
        inverse[i * EFLA_CUDA_STAGE_PITCH + j] = x[i];
}

/* In place: lf = (I + L)^-1 for the strictly lower 64x64 L (pitch P, a
 * multiple of 4), by 16x16 blocks: the diagonal blocks by forward
 * substitution (one thread per column), then block row bi from
 *   X_j = sum_{l<bi} L[bi][l] Inv[l][j],   Inv[bi][j] = -Inv[bi][bi] X_j
 * with each thread 4 columns of a row (float4 loads of the right-hand
 * matrix) in `scratch` [16][SP]. Starts and ends with barriers. */
template <int THREADS, int P, int SP>
EFLA_DEV void efla_blocked_inverse(float *lf, float *scratch) {
    static_assert(P % 4 == 0 && SP % 4 == 0 && SP >= 48, "float4 rows");
    const int tid = efla_tid();
    float x[16];
    efla_sync();
    if (tid < 64) {
        const int b = 16 * (tid / 16), j = tid % 16;
#pragma unroll
        for (int i = 0; i < 16; ++i) {
            float acc = 0.0f;
#pragma unroll
            for (int m = 0; m < i; ++m)
                acc += lf[(b + i) * P + b + m] * x[m];
            x[i] = i < j ? 0.0f : (i == j ? 1.0f : -acc);
        }
    }
    efla_sync(); /* every read of the diagonal blocks is done */
    if (tid < 64) {
        const int b = 16 * (tid / 16), j = tid % 16;
#pragma unroll
        for (int i = 0; i < 16; ++i)
            lf[(b + i) * P + b + j] = x[i];
    }
    efla_sync();
    for (int bi = 1; bi < 4; ++bi) {
        for (int e = tid; e < bi * 64; e += THREADS) {
            const int j = e / 64, r = (e % 64) / 4, c = 16 * j + 4 * (e % 4);
            const float *row = lf + (16 * bi + r) * P;
            float acc[4] = {}, y[4];
            for (int l = 16 * j; l < 16 * bi; ++l) {
                efla_load4(lf + l * P + c, y);
                for (int q = 0; q < 4; ++q)
                    acc[q] += row[l] * y[q];
            }
            efla_store4(scratch + r * SP + c, acc);
        }
        efla_sync();
        for (int e = tid; e < bi * 64; e += THREADS) {
            const int j = e / 64, r = (e % 64) / 4, c = 16 * j + 4 * (e % 4);
            const float *d = lf + (16 * bi + r) * P + 16 * bi;
            float acc[4] = {}, y[4];
#pragma unroll
            for (int l = 0; l < 16; ++l) {
                efla_load4(scratch + l * SP + c, y);
                for (int q = 0; q < 4; ++q)
                    acc[q] -= d[l] * y[q];
            }
            efla_store4(lf + (16 * bi + r) * P + c, acc);
        }
        efla_sync();
    }
}

#endif
