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
#define EFLA_PTS (EFLA_KT + 4)           /* K/Q product tile row stride (float4 aligned) */
#define EFLA_PAS (EFLA_C + 4)            /* Ainv row stride (float4 aligned) */
#define EFLA_APPLY_W 64                  /* W/U columns per apply step */
#define EFLA_APPLY_TS (EFLA_APPLY_W + 4) /* W/U input tile row stride (float4 aligned) */
#define EFLA_TILE_FLOATS EFLA_MAX2(EFLA_C *EFLA_PAS, 2 * EFLA_C * EFLA_PTS)
#define EFLA_LOWER_FLOATS EFLA_MAX2(EFLA_C *EFLA_C, EFLA_C *EFLA_APPLY_TS)
#define EFLA_NB (EFLA_C / 16)
/* Elements of a staged tile per item: a fixed count, so that an item's
 * loads of a tile are issued together before any is stored. */
#define EFLA_STAGE_N (EFLA_C * EFLA_KT / EFLA_WG)
#define EFLA_APPLY_N (EFLA_C * EFLA_APPLY_W / EFLA_WG)

/* Accumulates the raw products k_r.k_m and q_r.k_m over Dk, and |q_r|^2 in
 * item r < C. Tiles of K and Q pass through `tiles`, read as float4 along
 * Dk: 12 local loads feed 128 multiply-adds. */
void efla_prepare_products(__global const long *P, int4 chunk, __local const long *q_base,
                           __local const long *k_base, __global const store_t *q,
                           __global const store_t *k, __local float *tiles,
                           float kk_acc[EFLA_RA][EFLA_CB], float qk_acc[EFLA_RA][EFLA_CB],
                           float *q_squares) {
    const int lid = get_local_id(0), tx = lid % 16, ty = lid / 16;
    const int dk = (int)P[EFLA_P_DK];
    const long k_step = P[EFLA_P_K + 4], q_step = P[EFLA_P_Q + 4];
    __local float *kt = tiles, *qt = tiles + EFLA_C * EFLA_PTS;
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
            kt[r * EFLA_PTS + c] = kx[n];
            qt[r * EFLA_PTS + c] = qx[n];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < EFLA_C)
            for (int c = 0; c < EFLA_KT; ++c) {
                const float x = qt[lid * EFLA_PTS + c];
                *q_squares += x * x;
            }
        for (int c = 0; c < EFLA_KT; c += 4) {
            float4 kr[EFLA_RA], qr[EFLA_RA], km[EFLA_CB];
#pragma unroll
            for (int a = 0; a < EFLA_RA; ++a) {
                kr[a] = vload4(0, kt + (ty + EFLA_GY * a) * EFLA_PTS + c);
                qr[a] = vload4(0, qt + (ty + EFLA_GY * a) * EFLA_PTS + c);
            }
#pragma unroll
            for (int b = 0; b < EFLA_CB; ++b)
                km[b] = vload4(0, kt + (tx + 16 * b) * EFLA_PTS + c);
#pragma unroll
            for (int a = 0; a < EFLA_RA; ++a)
#pragma unroll
                for (int b = 0; b < EFLA_CB; ++b) {
                    const float4 m = km[b];
                    kk_acc[a][b] =
                        fma(kr[a].w, m.w,
                            fma(kr[a].z, m.z, fma(kr[a].y, m.y, fma(kr[a].x, m.x, kk_acc[a][b]))));
                    qk_acc[a][b] =
                        fma(qr[a].w, m.w,
                            fma(qr[a].z, m.z, fma(qr[a].y, m.y, fma(qr[a].x, m.x, qk_acc[a][b]))));
                }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* Ainv = (I + L)^-1 for unit-lower-triangular I + L: the 16x16 diagonal
 * blocks by substitution, one item per column with the column in registers
 * (its loads of L are independent, so they pipeline, where a column kept
 * in local memory made every step wait on the one before); then block rows
 * I = 1.. as A_IJ = -A_II sum_M L_IM A_MJ, four columns per item (float4
 * rows of Ainv and X). `ainv` is C x C (row stride EFLA_PAS), `x` 16 x
 * (C - 16). */
void efla_prepare_solve(__local const float *L, __local float *ainv, __local float *x) {
    const int lid = get_local_id(0);
    for (int idx = lid; idx < EFLA_C * EFLA_PAS; idx += EFLA_WG)
        ainv[idx] = (idx / EFLA_PAS == idx % EFLA_PAS) ? 1.0f : 0.0f;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lid < EFLA_C) {
        const int b = 16 * (lid / 16), j = lid % 16;
        float column[16];
#pragma unroll
        for (int i = 0; i < 16; ++i) {
            float s = 0.0f;
#pragma unroll
            for (int m = 0; m < i; ++m)
                s += L[(b + i) * EFLA_C + b + m] * column[m];
            column[i] = i < j ? 0.0f : i == j ? 1.0f : -s;
        }
#pragma unroll
        for (int i = 0; i < 16; ++i)
            ainv[(b + i) * EFLA_PAS + b + j] = column[i];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int I = 1; I < EFLA_NB; ++I) {
        const int quads = 4 * I; /* four-column groups left of the diagonal block */
        for (int u = lid; u < 16 * quads; u += EFLA_WG) {
            const int rr = u / quads, c = 4 * (u % quads), r = 16 * I + rr;
            float4 s = 0.0f;
            for (int m = c; m < 16 * I; ++m) /* Ainv[m][c..] is zero above m = c */
                s += L[r * EFLA_C + m] * vload4(0, ainv + m * EFLA_PAS + c);
            vstore4(s, 0, x + rr * (EFLA_C - 16) + c);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int u = lid; u < 16 * quads; u += EFLA_WG) {
            const int rr = u / quads, c = 4 * (u % quads), r = 16 * I + rr;
            float4 s = 0.0f;
            for (int m = 0; m <= rr; ++m)
                s += ainv[r * EFLA_PAS + 16 * I + m] * vload4(0, x + m * (EFLA_C - 16) + c);
            vstore4(-s, 0, ainv + r * EFLA_PAS + c);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* out rows = Ainv (coef . X) for X = K (width dk) or V (width dv), rows at
 * `base` with element step `step`, written to scratch at `dst`, in steps of
 * APPLY_W columns. Item unit u = (rows 4 (u / 16).., columns 4 (u % 16)..):
 * 4 float4 loads of Ainv rows and 4 of the tile feed 64 multiply-adds; Ainv
 * is zero above the diagonal, so the sum stops at the unit's last row. */
void efla_prepare_apply(int4 chunk, __local const long *base, long step, int width,
                        __global const store_t *src, __local const float *coef,
                        __local const float *ainv, __local float *tile, __global float *dst) {
    const int lid = get_local_id(0);
    for (int d0 = 0; d0 < width; d0 += EFLA_APPLY_W) {
        float xs[EFLA_APPLY_N];
#pragma unroll
        for (int n = 0; n < EFLA_APPLY_N; ++n) {
            const int idx = lid + n * EFLA_WG, r = idx / EFLA_APPLY_W;
            const int d = d0 + idx % EFLA_APPLY_W;
            xs[n] = r < chunk.z && d < width ? efla_load(src, base[r] + d * step) : 0.0f;
        }
#pragma unroll
        for (int n = 0; n < EFLA_APPLY_N; ++n) {
            const int idx = lid + n * EFLA_WG, r = idx / EFLA_APPLY_W;
            tile[r * EFLA_APPLY_TS + idx % EFLA_APPLY_W] = coef[r] * xs[n];
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int u = lid; u < 4 * EFLA_C; u += EFLA_WG) {
            const int r0 = 4 * (u / 16), c0 = 4 * (u % 16);
            float4 acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (int m = 0; m <= r0; m += 4) {
                const float4 x0 = vload4(0, tile + m * EFLA_APPLY_TS + c0),
                             x1 = vload4(0, tile + (m + 1) * EFLA_APPLY_TS + c0),
                             x2 = vload4(0, tile + (m + 2) * EFLA_APPLY_TS + c0),
                             x3 = vload4(0, tile + (m + 3) * EFLA_APPLY_TS + c0);
#pragma unroll
                for (int i = 0; i < 4; ++i) {
                    const float4 a = vload4(0, ainv + (r0 + i) * EFLA_PAS + m);
                    acc[i] = fma((float4)(a.w), x3,
                                 fma((float4)(a.z), x2,
                                     fma((float4)(a.y), x1, fma((float4)(a.x), x0, acc[i]))));
                }
            }
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                const int r = r0 + i, d = d0 + c0;
                if (r >= chunk.z) continue;
                __global float *row = dst + (long)r * width;
                if (d + 3 < width) {
                    vstore4(acc[i], 0, row + d);
                } else {
                    const float values[4] = {acc[i].x, acc[i].y, acc[i].z, acc[i].w};
                    for (int n = 0; n < 4 && d + n < width; ++n)
                        row[d + n] = values[n];
                }
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
}

/* What both prepare kernels (portable, nvmma) know of their chunk. */
typedef struct efla_prep {
    int4 chunk; /* {batch row, first token, length, sequence} */
    int h, hv, flags, dk, dv;
    long row0; /* the chunk's first scratch row */
} efla_prep;

efla_prep efla_prepare_locate(__global const long *P, __global const int4 *call, int table) {
    efla_prep c;
    const int value_heads = (int)P[EFLA_P_VALUE_HEADS];
    c.hv = get_group_id(0) % value_heads;
    c.chunk = call[table + get_group_id(0) / value_heads];
    c.h = c.hv / (value_heads / (int)P[EFLA_P_HEADS]);
    c.flags = (int)P[EFLA_P_FLAGS];
    c.dk = (int)P[EFLA_P_DK];
    c.dv = (int)P[EFLA_P_DV];
    c.row0 = (long)c.hv * P[EFLA_P_ROWS] + (long)c.chunk.x * P[EFLA_P_TOKENS] + c.chunk.y;
    return c;
}

/* Element offsets of the chunk's q, k and v rows (items lid < C). */
void efla_prepare_bases(__global const long *P, const efla_prep *c, __local long *q_base,
                        __local long *k_base, __local long *v_base) {
    const int lid = get_local_id(0);
    if (lid < EFLA_C) {
        q_base[lid] = efla_row(P, EFLA_P_Q, c->chunk.x, c->chunk.y + lid, c->h);
        k_base[lid] = efla_row(P, EFLA_P_K, c->chunk.x, c->chunk.y + lid, c->h);
        v_base[lid] = efla_row(P, EFLA_P_V, c->chunk.x, c->chunk.y + lid, c->hv);
    }
}

/* Row r's coefficients (r inside the chunk) from |k_r|^2 and |q_r|^2:
 * the erase e and write g = alpha |k| of its step, 1/|k| and qf = scale
 * times the q norm factor. Both prepares take them from here. */
typedef struct efla_row_coefficients {
    float erase, write, k_inv, q_factor;
} efla_row_coefficients;

efla_row_coefficients efla_row_coefficients_of(__global const long *P, const efla_prep *c,
                                               __global const store_t *beta, int r, float kk,
                                               float qq) {
    const float fk = efla_l2_factor(kk, c->flags & EFLA_PF_L2NORM_K);
    const float lambda = fk * fk * kk;
    const float b_t = efla_load(beta, efla_row(P, EFLA_P_BETA, c->chunk.x, c->chunk.y + r, c->hv));
    const float2 step = efla_step(b_t, lambda, c->flags & EFLA_PF_DELTA);
    efla_row_coefficients out;
    out.erase = step.y;
    out.write = step.x * sqrt(lambda);
    out.k_inv = kk > 0.0f ? 1.0f / sqrt(kk) : 0.0f;
    out.q_factor =
        as_float((uint)P[EFLA_P_SCALE]) * efla_l2_factor(qq, c->flags & EFLA_PF_L2NORM_Q);
    return out;
}

/* Row coefficients from |k_r|^2 and |q_r|^2 (items lid < C): w = e/|k|
 * (on raw k), u = g = alpha |k|, 1/|k| and qf = scale times the q norm
 * factor; rows past the chunk get zeros. {qf, 1/|k|} go to scratch. */
void efla_prepare_coefficients(__global const long *P, const efla_prep *c,
                               __global const store_t *beta, __global float *scratch,
                               __local const float *k_squares, __local const float *q_squares,
                               __local float *w_coef, __local float *u_coef, __local float *k_inv,
                               __local float *q_factor) {
    const int r = get_local_id(0);
    if (r >= EFLA_C) return;
    float w = 0.0f, u = 0.0f, inv = 0.0f, qf = 0.0f;
    if (r < c->chunk.z) {
        const efla_row_coefficients row =
            efla_row_coefficients_of(P, c, beta, r, k_squares[r], q_squares[r]);
        inv = row.k_inv;
        w = row.erase * inv; /* e, applied to k^ = k / |k| */
        u = row.write;
        qf = row.q_factor;
        vstore2((float2)(qf, inv), 0, scratch + P[EFLA_P_SCRATCH_C] + (c->row0 + r) * 2);
    }
    w_coef[r] = w;
    u_coef[r] = u;
    k_inv[r] = inv;
    q_factor[r] = qf;
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
    const efla_prep c = efla_prepare_locate(P, call, table);
    efla_prepare_bases(P, &c, q_base, k_base, v_base);
    barrier(CLK_LOCAL_MEM_FENCE);

    float kk_acc[EFLA_RA][EFLA_CB], qk_acc[EFLA_RA][EFLA_CB], q_sum = 0.0f;
#pragma unroll
    for (int a = 0; a < EFLA_RA; ++a)
#pragma unroll
        for (int b = 0; b < EFLA_CB; ++b)
            kk_acc[a][b] = qk_acc[a][b] = 0.0f;
    efla_prepare_products(P, c.chunk, q_base, k_base, q, k, ainv, kk_acc, qk_acc, &q_sum);

#pragma unroll
    for (int a = 0; a < EFLA_RA; ++a)
#pragma unroll
        for (int b = 0; b < EFLA_CB; ++b)
            if (ty + EFLA_GY * a == tx + 16 * b) k_squares[tx + 16 * b] = kk_acc[a][b];
    if (lid < EFLA_C) q_squares[lid] = q_sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    efla_prepare_coefficients(P, &c, beta, scratch, k_squares, q_squares, w_coef, u_coef, k_inv,
                              q_factor);
    barrier(CLK_LOCAL_MEM_FENCE);

    __global float *a_rows = scratch + P[EFLA_P_SCRATCH_A] + c.row0 * EFLA_C;
#pragma unroll
    for (int a = 0; a < EFLA_RA; ++a)
#pragma unroll
        for (int b = 0; b < EFLA_CB; ++b) {
            const int r = ty + EFLA_GY * a, m = tx + 16 * b;
            /* e_r k^_r . k^_m = e_r / |k_r| * k_r . k_m / |k_m| */
            lower[r * EFLA_C + m] = m < r ? w_coef[r] * k_inv[m] * kk_acc[a][b] : 0.0f;
            if (r < c.chunk.z)
                a_rows[r * EFLA_C + m] = m <= r ? q_factor[r] * k_inv[m] * qk_acc[a][b] : 0.0f;
        }
    barrier(CLK_LOCAL_MEM_FENCE);

    efla_prepare_solve(lower, ainv, x);

    /* W = Ainv (e . K^): the row coefficient e_r / |k_r| on raw k. */
    efla_prepare_apply(c.chunk, k_base, P[EFLA_P_K + 4], c.dk, k, w_coef, ainv, lower,
                       scratch + P[EFLA_P_SCRATCH_W] + c.row0 * c.dk);
    efla_prepare_apply(c.chunk, v_base, P[EFLA_P_V + 4], c.dv, v, u_coef, ainv, lower,
                       scratch + P[EFLA_P_SCRATCH_U] + c.row0 * c.dv);
}
