/*
 * Chunked forward, phase 1: the state-free work of one chunk, in the
 * two-coefficient normalised form (ALGORITHM.md 2.6).
 *
 * One work-group of EFLA_WG items per (chunk, value head). With k^ = k/|k|,
 * e the erase and g the write coefficient of each row:
 *   L  = StrictLower(diag(e) K^ K^T),  Ainv = (I + L)^-1  (blocked, 16x16)
 *   W  = Ainv (e . K^),  U = Ainv (g . V)
 *   A  = (diag(qf) Q K^T) masked to m <= r  (qf = scale, times the q norm factor)
 * written to scratch rows, with {qf, 1/|k|} per row, for the scan.
 */
#define EFLA_GY (EFLA_WG / 16) /* the C x C products: a 16 x GY grid of items */
#define EFLA_RA (EFLA_C / EFLA_GY)
#define EFLA_CB (EFLA_C / 16)
#define EFLA_TILE_FLOATS EFLA_MAX2(EFLA_C *(EFLA_C + 1), 2 * EFLA_C * EFLA_KTP)
#define EFLA_LOWER_FLOATS EFLA_MAX2(EFLA_C *EFLA_C, EFLA_C *(EFLA_KT + 4))
#define EFLA_NB (EFLA_C / 16)
#define EFLA_PAS (EFLA_C + 1)       /* Ainv row stride: rows land in different banks */
#define EFLA_APPLY_TS (EFLA_KT + 4) /* W/U input tile row stride (float4 aligned) */
#define EFLA_APPLY_ROWS (8 * EFLA_C / EFLA_WG)
/* Elements of a C x KT tile per item: a fixed count, so that an item's
 * loads of a tile are issued together before any is stored. */
#define EFLA_STAGE_N (EFLA_C * EFLA_KT / EFLA_WG)

/* Accumulates the raw products k_r.k_m and q_r.k_m over Dk, and |q_r|^2 in
 * item r < C. Tiles of K and Q pass through `tiles`. */
void efla_prepare_products(__global const long *P, int4 chunk, __local const long *q_base,
                           __local const long *k_base, __global const store_t *q,
                           __global const store_t *k, __local float *tiles,
                           float kk_acc[EFLA_RA][EFLA_CB], float qk_acc[EFLA_RA][EFLA_CB],
                           float *q_squares) {
    const int lid = get_local_id(0), tx = lid % 16, ty = lid / 16;
    const int dk = (int)P[EFLA_P_DK];
    const long k_step = P[EFLA_P_K + 4], q_step = P[EFLA_P_Q + 4];
    __local float *kt = tiles, *qt = tiles + EFLA_C * EFLA_KTP;
    for (int d0 = 0; d0 < dk; d0 += EFLA_KT) {
        float kx[EFLA_STAGE_N], qx[EFLA_STAGE_N];
#pragma unroll
        for (int n = 0; n < EFLA_STAGE_N; ++n) {
            const int idx = lid + n * EFLA_WG, r = idx / EFLA_KT, d = d0 + idx % EFLA_KT;
            const bool valid = r < chunk.z && d < dk;
            kx[n] = valid ? efla_load(k, k_base[r] + d * k_step) : 0.0f;
            qx[n] = valid ? efla_load(q, q_base[r] + d * q_step) : 0.0f;
        }
#pragma unroll
        for (int n = 0; n < EFLA_STAGE_N; ++n) {
            const int idx = lid + n * EFLA_WG, r = idx / EFLA_KT, c = idx % EFLA_KT;
            kt[r * EFLA_KTP + c] = kx[n];
            qt[r * EFLA_KTP + c] = qx[n];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < EFLA_C)
            for (int c = 0; c < EFLA_KT; ++c) {
                const float x = qt[lid * EFLA_KTP + c];
                *q_squares += x * x;
            }
        for (int c = 0; c < EFLA_KT; ++c) {
            float kr[EFLA_RA], qr[EFLA_RA], km[EFLA_CB];
#pragma unroll
            for (int a = 0; a < EFLA_RA; ++a) {
                kr[a] = kt[(ty + EFLA_GY * a) * EFLA_KTP + c];
                qr[a] = qt[(ty + EFLA_GY * a) * EFLA_KTP + c];
            }
#pragma unroll
            for (int b = 0; b < EFLA_CB; ++b)
                km[b] = kt[(tx + 16 * b) * EFLA_KTP + c];
#pragma unroll
            for (int a = 0; a < EFLA_RA; ++a)
#pragma unroll
                for (int b = 0; b < EFLA_CB; ++b) {
                    kk_acc[a][b] += kr[a] * km[b];
                    qk_acc[a][b] += qr[a] * km[b];
                }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* Ainv = (I + L)^-1 for unit-lower-triangular I + L: the 16x16 diagonal
 * blocks by substitution (one item per column), then block rows I = 1.. as
 * A_IJ = -A_II sum_M L_IM A_MJ. `ainv` is C x C (row stride EFLA_PAS), `x` 16 x (C - 16). */
void efla_prepare_solve(__local const float *L, __local float *ainv, __local float *x) {
    const int lid = get_local_id(0);
    for (int idx = lid; idx < EFLA_C * EFLA_PAS; idx += EFLA_WG)
        ainv[idx] = (idx / EFLA_PAS == idx % EFLA_PAS) ? 1.0f : 0.0f;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid < EFLA_C) {
        const int j = lid, block_end = (j / 16 + 1) * 16;
        for (int i = j + 1; i < block_end; ++i) {
            float s = 0.0f;
            for (int m = j; m < i; ++m)
                s += L[i * EFLA_C + m] * ainv[m * EFLA_PAS + j];
            ainv[i * EFLA_PAS + j] = -s;
        }
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int I = 1; I < EFLA_NB; ++I) {
        const int width = 16 * I; /* columns left of the diagonal block */
        for (int idx = lid; idx < 16 * width; idx += EFLA_WG) {
            const int r = 16 * I + idx / width, c = idx % width;
            float s = 0.0f;
            for (int m = c; m < 16 * I; ++m)
                s += L[r * EFLA_C + m] * ainv[m * EFLA_PAS + c];
            x[(idx / width) * (EFLA_C - 16) + c] = s;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int idx = lid; idx < 16 * width; idx += EFLA_WG) {
            const int rr = idx / width, r = 16 * I + rr, c = idx % width;
            float s = 0.0f;
            for (int m = 0; m <= rr; ++m)
                s += ainv[r * EFLA_PAS + 16 * I + m] * x[m * (EFLA_C - 16) + c];
            ainv[r * EFLA_PAS + c] = -s;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* out rows = Ainv (coef . X) for X = K (width dk) or V (width dv), rows at
 * `base` with element step `step`, written to scratch at `dst`. Item
 * (cx = lid % 8, ry = lid / 8) computes columns 4 cx..4 cx + 3 of rows ry,
 * ry + WG/8, ...; one float4 of the tile feeds 4 rows' multiply-adds. */
void efla_prepare_apply(int4 chunk, __local const long *base, long step, int width,
                        __global const store_t *src, __local const float *coef,
                        __local const float *ainv, __local float *tile, __global float *dst) {
    const int lid = get_local_id(0), cx = lid % 8, ry = lid / 8;
    const int last_row = ry + (EFLA_WG / 8) * (EFLA_APPLY_ROWS - 1);
    for (int d0 = 0; d0 < width; d0 += EFLA_KT) {
        float xs[EFLA_STAGE_N];
#pragma unroll
        for (int n = 0; n < EFLA_STAGE_N; ++n) {
            const int idx = lid + n * EFLA_WG, r = idx / EFLA_KT, d = d0 + idx % EFLA_KT;
            xs[n] = r < chunk.z && d < width ? efla_load(src, base[r] + d * step) : 0.0f;
        }
#pragma unroll
        for (int n = 0; n < EFLA_STAGE_N; ++n) {
            const int idx = lid + n * EFLA_WG, r = idx / EFLA_KT, c = idx % EFLA_KT;
            tile[r * EFLA_APPLY_TS + c] = coef[r] * xs[n];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        float4 acc[EFLA_APPLY_ROWS];
#pragma unroll
        for (int a = 0; a < EFLA_APPLY_ROWS; ++a)
            acc[a] = 0.0f;
        /* Ainv is zero above the diagonal: every row may run to last_row. */
        for (int m = 0; m <= last_row; ++m) {
            const float4 x = vload4(0, tile + m * EFLA_APPLY_TS + 4 * cx);
#pragma unroll
            for (int a = 0; a < EFLA_APPLY_ROWS; ++a)
                acc[a] = fma((float4)(ainv[(ry + (EFLA_WG / 8) * a) * EFLA_PAS + m]), x, acc[a]);
        }
#pragma unroll
        for (int a = 0; a < EFLA_APPLY_ROWS; ++a) {
            const int r = ry + (EFLA_WG / 8) * a, d = d0 + 4 * cx;
            if (r >= chunk.z) continue;
            __global float *row = dst + (long)r * width;
            if (d + 3 < width) {
                vstore4(acc[a], 0, row + d);
            } else {
                const float values[4] = {acc[a].x, acc[a].y, acc[a].z, acc[a].w};
                for (int n = 0; n < 4 && d + n < width; ++n)
                    row[d + n] = values[n];
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

__kernel __attribute__((reqd_work_group_size(EFLA_WG, 1, 1))) void
efla_chunk_prepare(__global const int4 *call, int table, __global const store_t *q,
                   __global const store_t *k, __global const store_t *v,
                   __global const store_t *beta, __global float *scratch) {
    __global const long *P = (__global const long *)call;
    __local float lower[EFLA_LOWER_FLOATS]; /* L, then the W/U input tiles */
    __local float ainv[EFLA_TILE_FLOATS];   /* the K/Q tiles, then Ainv */
    __local float x[16 * (EFLA_C - 16)];
    __local float k_squares[EFLA_C], q_squares[EFLA_C];
    __local float w_coef[EFLA_C], u_coef[EFLA_C], k_inv[EFLA_C], q_factor[EFLA_C];
    __local long q_base[EFLA_C], k_base[EFLA_C], v_base[EFLA_C]; /* row element offsets */

    const int lid = get_local_id(0), tx = lid % 16, ty = lid / 16;
    const int value_heads = (int)P[EFLA_P_VALUE_HEADS];
    const int hv = get_group_id(0) % value_heads;
    const int4 chunk = call[table + get_group_id(0) / value_heads];
    const int h = hv / (value_heads / (int)P[EFLA_P_HEADS]);
    const int flags = (int)P[EFLA_P_FLAGS];
    const int dk = (int)P[EFLA_P_DK], dv = (int)P[EFLA_P_DV];
    const long row0 = (long)hv * P[EFLA_P_ROWS] + (long)chunk.x * P[EFLA_P_TOKENS] + chunk.y;
    if (lid < EFLA_C) {
        q_base[lid] = efla_row(P, EFLA_P_Q, chunk.x, chunk.y + lid, h);
        k_base[lid] = efla_row(P, EFLA_P_K, chunk.x, chunk.y + lid, h);
        v_base[lid] = efla_row(P, EFLA_P_V, chunk.x, chunk.y + lid, hv);
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    float kk_acc[EFLA_RA][EFLA_CB], qk_acc[EFLA_RA][EFLA_CB], q_sum = 0.0f;
#pragma unroll
    for (int a = 0; a < EFLA_RA; ++a)
#pragma unroll
        for (int b = 0; b < EFLA_CB; ++b)
            kk_acc[a][b] = qk_acc[a][b] = 0.0f;
    efla_prepare_products(P, chunk, q_base, k_base, q, k, ainv, kk_acc, qk_acc, &q_sum);

#pragma unroll
    for (int a = 0; a < EFLA_RA; ++a)
#pragma unroll
        for (int b = 0; b < EFLA_CB; ++b)
            if (ty + EFLA_GY * a == tx + 16 * b) k_squares[tx + 16 * b] = kk_acc[a][b];
    if (lid < EFLA_C) q_squares[lid] = q_sum;
    barrier(CLK_LOCAL_MEM_FENCE);

    if (lid < EFLA_C) {
        const int r = lid;
        float w = 0.0f, u = 0.0f, inv = 0.0f, qf = 0.0f;
        if (r < chunk.z) {
            const float kk = k_squares[r];
            const float fk = efla_l2_factor(kk, flags & EFLA_PF_L2NORM_K);
            const float lambda = fk * fk * kk;
            const float b_t = efla_load(beta, efla_row(P, EFLA_P_BETA, chunk.x, chunk.y + r, hv));
            const float2 step = efla_step(b_t, lambda, flags & EFLA_PF_DELTA);
            inv = kk > 0.0f ? 1.0f / sqrt(kk) : 0.0f;
            w = step.y * inv;          /* e, applied to k^ = k / |k| */
            u = step.x * sqrt(lambda); /* g = alpha |k| */
            qf = as_float((uint)P[EFLA_P_SCALE]) *
                 efla_l2_factor(q_squares[r], flags & EFLA_PF_L2NORM_Q);
            __global float *c = scratch + P[EFLA_P_SCRATCH_C] + (row0 + r) * 2;
            c[0] = qf;
            c[1] = inv;
        }
        w_coef[r] = w;
        u_coef[r] = u;
        k_inv[r] = inv;
        q_factor[r] = qf;
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    __global float *a_rows = scratch + P[EFLA_P_SCRATCH_A] + row0 * EFLA_C;
#pragma unroll
    for (int a = 0; a < EFLA_RA; ++a)
#pragma unroll
        for (int b = 0; b < EFLA_CB; ++b) {
            const int r = ty + EFLA_GY * a, m = tx + 16 * b;
            /* e_r k^_r . k^_m = e_r / |k_r| * k_r . k_m / |k_m| */
            lower[r * EFLA_C + m] = m < r ? w_coef[r] * k_inv[m] * kk_acc[a][b] : 0.0f;
            if (r < chunk.z)
                a_rows[r * EFLA_C + m] = m <= r ? q_factor[r] * k_inv[m] * qk_acc[a][b] : 0.0f;
        }
    barrier(CLK_LOCAL_MEM_FENCE);

    efla_prepare_solve(lower, ainv, x);

    /* W = Ainv (e . K^): the row coefficient e_r / |k_r| on raw k. */
    efla_prepare_apply(chunk, k_base, P[EFLA_P_K + 4], dk, k, w_coef, ainv, lower,
                       scratch + P[EFLA_P_SCRATCH_W] + row0 * dk);
    efla_prepare_apply(chunk, v_base, P[EFLA_P_V + 4], dv, v, u_coef, ainv, lower,
                       scratch + P[EFLA_P_SCRATCH_U] + row0 * dv);
}
