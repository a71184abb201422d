/* What both chunked paths share: per-row coefficients and the solve. */
#ifndef EFLA_CHUNK_COMMON_CUH
#define EFLA_CHUNK_COMMON_CUH

#include "device_common.cuh"

EFLA_DEV int64_t efla_min64(int64_t a, int64_t b) { return a < b ? a : b; }

/* Per-row coefficients of one chunk: the unit-key factor ck (k^ = k ck),
 * the q factor rq, erase e and write g. Rows past the end get zeros. */
template <int DT, int THREADS>
EFLA_DEV void efla_row_coefficients(const efla_cuda_params &p, const efla_cuda_sequence &seq,
                               int64_t t0, int rows, int64_t h, int64_t hv, float *ck, float *rq,
                               float *erase, float *write) {
    const int lane = efla_tid() & 31, warp = efla_tid() >> 5;
    for (int r = warp; r < EFLA_CUDA_CHUNK; r += THREADS / 32) {
        float kk = 0.0f, qq = 0.0f;
        if (r < rows) {
            for (int64_t i = lane; i < p.dk; i += 32) {
                const float k = efla_load<DT>(p.k.address, efla_offset(p.k, seq.batch_row, t0 + r, h, i));
                const float q = efla_load<DT>(p.q.address, efla_offset(p.q, seq.batch_row, t0 + r, h, i));
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
        const float rk = p.l2norm_k ? efla_l2norm_factor(kk) : 1.0f;
        const float lambda = p.l2norm_k ? kk * rk * rk : kk;
        const float norm = sqrtf(lambda);
        const float beta =
            efla_load<DT>(p.beta.address, efla_offset(p.beta, seq.batch_row, t0 + r, hv, 0));
        ck[r] = lambda > 0.0f ? rk / norm : 0.0f;
        rq[r] = p.l2norm_q ? efla_l2norm_factor(qq) : 1.0f;
        if (p.mode == 1) { /* DELTA: alpha = beta */
            erase[r] = beta * lambda;
            write[r] = beta * norm;
        } else {
            erase[r] = efla_erase(beta * lambda);
            write[r] = efla_alpha(beta, lambda) * norm;
        }
    }
}

/* Column j of (I + L)^-1 by forward substitution, in registers:
 * x_i = delta_ij - sum_{m<i} L_im x_m (x_m = 0 for m < j). */
EFLA_DEV void efla_solve_column_x(const float *lower, float *x, int j) {
#pragma unroll
    for (int i = 0; i < EFLA_CUDA_CHUNK; ++i) {
        float acc = 0.0f;
#pragma unroll
        for (int m = 0; m < i; ++m) acc += lower[i * EFLA_CUDA_STAGE_PITCH + m] * x[m];
        x[i] = i < j ? 0.0f : (i == j ? 1.0f : -acc);
    }
}

EFLA_DEV void efla_solve_column(const float *lower, float *inverse, int j) {
    float x[EFLA_CUDA_CHUNK];
    efla_solve_column_x(lower, x, j);
#pragma unroll
    for (int i = 0; i < EFLA_CUDA_CHUNK; ++i) inverse[i * EFLA_CUDA_STAGE_PITCH + j] = x[i];
}

#endif
