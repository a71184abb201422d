/*
 * Chunked forward, phase 2: the scan over chunks (ALGORITHM.md 2.2, 2.6).
 * A template: efla_forward.cl includes it once per Dv tile width
 * EFLA_DVT (8, 16, 32), making efla_chunk_scan8/16/32.
 *
 * One work-group of 4C items per (sequence, value head, tile of EFLA_DVT
 * state columns); the state tile S [dk][DVT] stays in local memory for
 * the whole sequence and no per-chunk state is written. Per chunk, from
 * the scratch rows of efla_chunk_prepare:
 *   1. [W S; Q S]           2C x DVT, item: 4 rows x CN = DVT/8 columns
 *   2. V' = U - W S;  O = qf . (Q S) + A V'  (A: masked, scaled Q K^T)
 *   3. S += K^T V'          item: 4 state rows x CN columns per pass
 * Items are (cg = lid % 8: columns cg*CN.., grp = lid / 8: rows 4 grp..);
 * local tiles are read as float4 along the contracted dimension, so that
 * each local load feeds 4 CN multiply-adds. Global loads go to registers
 * one step ahead of their use (fixed trip counts, unrolled): on a GPU a
 * chunk step then waits on memory about once, not once per staged tile.
 */
#define EFLA_CAT_(a, b) a##b
#define EFLA_CAT(a, b) EFLA_CAT_(a, b)
#define EFLA_SCAN_NAME EFLA_CAT(efla_chunk_scan, EFLA_DVT)

#define EFLA_CN (EFLA_DVT / 8)
#if EFLA_CN == 1
#define EFLA_VEC float
#define EFLA_VLOAD(p) (*(p))
#define EFLA_VSTORE(v, p) (*(p) = (v))
#elif EFLA_CN == 2
#define EFLA_VEC float2
#define EFLA_VLOAD(p) vload2(0, p)
#define EFLA_VSTORE(v, p) vstore2(v, 0, p)
#else
#define EFLA_VEC float4
#define EFLA_VLOAD(p) vload4(0, p)
#define EFLA_VSTORE(v, p) vstore4(v, 0, p)
#endif

#ifndef EFLA_SCAN_SHARED
#define EFLA_SCAN_SHARED
#define EFLA_SCAN_WG (4 * EFLA_C)
#define EFLA_SCAN_TS (EFLA_KT + 4)    /* [W;Q] tile row stride (float4 aligned) */
#define EFLA_SCAN_AS (EFLA_C + 4)     /* A row stride */
#define EFLA_SCAN_KS (2 * EFLA_C + 4) /* K tile row stride: 2C state rows per pass */
#define EFLA_SCAN_KR (EFLA_C / 2)     /* K tile rows at a time */
#define EFLA_SCAN_TILE                                                                             \
    EFLA_MAX2(EFLA_MAX2(2 * EFLA_C * EFLA_SCAN_TS, EFLA_C * EFLA_SCAN_AS),                         \
              EFLA_SCAN_KR *EFLA_SCAN_KS)
/* Each item's share of a staged tile: fixed trip counts, so that the
 * loads of a tile are all in flight at once. */
#define EFLA_SCAN_WQ_N (2 * EFLA_C * EFLA_KT / EFLA_SCAN_WG)
#define EFLA_SCAN_A_N (EFLA_C * EFLA_C / EFLA_SCAN_WG)
#define EFLA_SCAN_K_N (EFLA_SCAN_KR * 2 * EFLA_C / EFLA_SCAN_WG)

/* Where a chunk's rows are: scratch rows and the q and k rows' origins. */
typedef struct efla_scan_src {
    __global const float *w, *u, *a, *c;
    __global const store_t *q, *k;
    long q_origin, q_row, q_step, k_origin, k_row, k_step;
    int dk, dv;
} efla_scan_src;

/* Loads the item's share of [W; Q] rows t0.. (length valid), columns
 * d0..d0 + KT, into registers. */
void efla_scan_fetch_wq(const efla_scan_src *s, int t0, int length, int d0,
                        float x[EFLA_SCAN_WQ_N]) {
    const int lid = get_local_id(0);
#pragma unroll
    for (int n = 0; n < EFLA_SCAN_WQ_N; ++n) {
        const int idx = lid + n * EFLA_SCAN_WG, r = idx / EFLA_KT, d = d0 + idx % EFLA_KT;
        const int rr = r < EFLA_C ? r : r - EFLA_C;
        float value = 0.0f;
        if (rr < length && d < s->dk)
            value = r < EFLA_C
                        ? s->w[(long)(t0 + rr) * s->dk + d]
                        : efla_load(s->q, s->q_origin + (t0 + rr) * s->q_row + d * s->q_step);
        x[n] = value;
    }
}

void efla_scan_put_wq(const float x[EFLA_SCAN_WQ_N], __local float *tile) {
    const int lid = get_local_id(0);
#pragma unroll
    for (int n = 0; n < EFLA_SCAN_WQ_N; ++n) {
        const int idx = lid + n * EFLA_SCAN_WG;
        tile[idx / EFLA_KT * EFLA_SCAN_TS + idx % EFLA_KT] = x[n];
    }
}

/* The masked, scaled Q K^T rows of the chunk. */
void efla_scan_fetch_a(const efla_scan_src *s, int t0, int length, float x[EFLA_SCAN_A_N]) {
    const int lid = get_local_id(0);
#pragma unroll
    for (int n = 0; n < EFLA_SCAN_A_N; ++n) {
        const int idx = lid + n * EFLA_SCAN_WG, r = idx / EFLA_C;
        x[n] = r < length ? s->a[(long)(t0 + r) * EFLA_C + idx % EFLA_C] : 0.0f;
    }
}

void efla_scan_put_a(const float x[EFLA_SCAN_A_N], __local float *tile) {
    const int lid = get_local_id(0);
#pragma unroll
    for (int n = 0; n < EFLA_SCAN_A_N; ++n) {
        const int idx = lid + n * EFLA_SCAN_WG;
        tile[idx / EFLA_C * EFLA_SCAN_AS + idx % EFLA_C] = x[n];
    }
}

/* Raw k rows t0 + rh.. (KR of them), state rows p0..p0 + 2C. */
void efla_scan_fetch_k(const efla_scan_src *s, int t0, int length, int rh, int p0,
                       float x[EFLA_SCAN_K_N]) {
    const int lid = get_local_id(0);
#pragma unroll
    for (int n = 0; n < EFLA_SCAN_K_N; ++n) {
        const int idx = lid + n * EFLA_SCAN_WG;
        const int r = rh + idx / (2 * EFLA_C), d = p0 + idx % (2 * EFLA_C);
        x[n] = r < length && d < s->dk
                   ? efla_load(s->k, s->k_origin + (t0 + r) * s->k_row + d * s->k_step)
                   : 0.0f;
    }
}

/* K^ = k / |k| into the tile (k_inv is zero past the chunk's length). */
void efla_scan_put_k(const float x[EFLA_SCAN_K_N], int rh, __local const float *k_inv,
                     __local float *tile) {
    const int lid = get_local_id(0);
#pragma unroll
    for (int n = 0; n < EFLA_SCAN_K_N; ++n) {
        const int idx = lid + n * EFLA_SCAN_WG, rr = idx / (2 * EFLA_C);
        tile[rr * EFLA_SCAN_KS + idx % (2 * EFLA_C)] = k_inv[rh + rr] * x[n];
    }
}

/* {q factor, 1/|k|} of row `lid` of the chunk (items lid < C). */
float2 efla_scan_fetch_c(const efla_scan_src *s, int t0, int length) {
    const int lid = get_local_id(0);
    return lid < length ? vload2(0, s->c + (long)(t0 + lid) * 2) : (float2)(0.0f, 0.0f);
}
#endif

__kernel __attribute__((reqd_work_group_size(EFLA_SCAN_WG, 1, 1))) void
EFLA_SCAN_NAME(__global const int4 *call, int table, __global const store_t *q,
               __global const store_t *k, __global store_t *out, __global const float *s0,
               __global float *s1, __global const float *scratch, __local float *S) {
    __global const long *P = (__global const long *)call;
    __local float vp[EFLA_C * EFLA_DVT]; /* V' [C][DVT] */
    __local float tile[EFLA_SCAN_TILE];  /* [W;Q] tiles, A, then K tiles */
    __local float q_factor[EFLA_C], k_inv[EFLA_C];

    const int lid = get_local_id(0), cg = lid % 8, grp = lid / 8, j0 = cg * EFLA_CN;
    const int dk = (int)P[EFLA_P_DK], dv = (int)P[EFLA_P_DV];
    const int s_rows = (dk + EFLA_KT - 1) / EFLA_KT * EFLA_KT; /* S rows, zero padded */
    const int value_heads = (int)P[EFLA_P_VALUE_HEADS];
    const int flags = (int)P[EFLA_P_FLAGS];
    const int tiles = (dv + EFLA_DVT - 1) / EFLA_DVT;
    const int group = get_group_id(0);
    const int tile_index = group % tiles, hv = (group / tiles) % value_heads;
    const int4 seq = call[table + group / tiles / value_heads];
    const int h = hv / (value_heads / (int)P[EFLA_P_HEADS]);
    const int col0 = tile_index * EFLA_DVT; /* first state column of the tile */
    const long scratch_rows = (long)hv * P[EFLA_P_ROWS] + (long)seq.x * P[EFLA_P_TOKENS];
    efla_scan_src src;
    src.w = scratch + P[EFLA_P_SCRATCH_W] + scratch_rows * dk;
    src.u = scratch + P[EFLA_P_SCRATCH_U] + scratch_rows * dv;
    src.a = scratch + P[EFLA_P_SCRATCH_A] + scratch_rows * EFLA_C;
    src.c = scratch + P[EFLA_P_SCRATCH_C] + scratch_rows * 2;
    src.q = q;
    src.k = k;
    src.q_origin = efla_row(P, EFLA_P_Q, seq.x, 0, h);
    src.q_row = P[EFLA_P_Q + 2];
    src.q_step = P[EFLA_P_Q + 4];
    src.k_origin = efla_row(P, EFLA_P_K, seq.x, 0, h);
    src.k_row = P[EFLA_P_K + 2];
    src.k_step = P[EFLA_P_K + 4];
    src.dk = dk;
    src.dv = dv;
    const long out_origin = efla_row(P, EFLA_P_OUT, seq.x, 0, hv), out_row = P[EFLA_P_OUT + 2],
               out_step = P[EFLA_P_OUT + 4];
    const int row0 = 4 * grp; /* phase 1: rows of [W;Q]; phase 3: state rows in a pass */

    for (int idx = lid; idx < s_rows * EFLA_DVT; idx += EFLA_SCAN_WG) {
        const int i = idx / EFLA_DVT, col = col0 + idx % EFLA_DVT;
        S[idx] = (flags & EFLA_PF_INITIAL_STATE) && i < dk && col < dv
                     ? s0[efla_state_index(P, EFLA_P_S0, seq.w, hv, i, col)]
                     : 0.0f;
    }

    /* Loads run one step ahead of their use: the first [W;Q] tile and the
     * coefficients of a chunk are fetched during the previous chunk's
     * update, the next tile while the current one is multiplied. */
    float wq[EFLA_SCAN_WQ_N], ax[EFLA_SCAN_A_N], kx[EFLA_SCAN_K_N];
    efla_scan_fetch_wq(&src, seq.y, min(EFLA_C, seq.z), 0, wq);
    float2 coef = efla_scan_fetch_c(&src, seq.y, min(EFLA_C, seq.z));

    for (int c0 = 0; c0 < seq.z; c0 += EFLA_C) {
        const int length = min(EFLA_C, seq.z - c0);
        const int t0 = seq.y + c0; /* first token of the chunk; also its scratch row */
        if (lid < EFLA_C) {
            q_factor[lid] = coef.x;
            k_inv[lid] = coef.y;
        }
        efla_scan_fetch_a(&src, t0, length, ax);
        float u[4][EFLA_CN];
        if (row0 < EFLA_C) {
#pragma unroll
            for (int m = 0; m < 4; ++m)
#pragma unroll
                for (int n = 0; n < EFLA_CN; ++n) {
                    const int r = row0 + m, col = col0 + j0 + n;
                    u[m][n] = r < length && col < dv ? src.u[(long)(t0 + r) * dv + col] : 0.0f;
                }
        }

        /* 1. [W S; Q S]: rows row0..row0+3 of the stacked 2C rows. */
        EFLA_VEC acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int d0 = 0; d0 < dk; d0 += EFLA_KT) {
            barrier(CLK_LOCAL_MEM_FENCE);
            efla_scan_put_wq(wq, tile);
            barrier(CLK_LOCAL_MEM_FENCE);
            if (d0 + EFLA_KT < dk) efla_scan_fetch_wq(&src, t0, length, d0 + EFLA_KT, wq);
            for (int c = 0; c < EFLA_KT; c += 4) {
                __local const float *s_row = S + (d0 + c) * EFLA_DVT + j0;
                const EFLA_VEC sa = EFLA_VLOAD(s_row), sb = EFLA_VLOAD(s_row + EFLA_DVT),
                               sc = EFLA_VLOAD(s_row + 2 * EFLA_DVT),
                               sd = EFLA_VLOAD(s_row + 3 * EFLA_DVT);
#pragma unroll
                for (int m = 0; m < 4; ++m) {
                    const float4 t = vload4(0, tile + (row0 + m) * EFLA_SCAN_TS + c);
                    acc[m] = fma((EFLA_VEC)(t.x), sa, acc[m]);
                    acc[m] = fma((EFLA_VEC)(t.y), sb, acc[m]);
                    acc[m] = fma((EFLA_VEC)(t.z), sc, acc[m]);
                    acc[m] = fma((EFLA_VEC)(t.w), sd, acc[m]);
                }
            }
        }
        efla_scan_fetch_k(&src, t0, length, 0, 0, kx);
        barrier(CLK_LOCAL_MEM_FENCE);

        /* 2a. V' = U - W S (the W rows' items); A into the tile. */
        if (row0 < EFLA_C) {
#pragma unroll
            for (int m = 0; m < 4; ++m) {
                float ws[EFLA_CN];
                EFLA_VSTORE(acc[m], ws);
#pragma unroll
                for (int n = 0; n < EFLA_CN; ++n)
                    u[m][n] -= ws[n];
                EFLA_VSTORE(EFLA_VLOAD(u[m]), vp + (row0 + m) * EFLA_DVT + j0);
            }
        }
        efla_scan_put_a(ax, tile);
        barrier(CLK_LOCAL_MEM_FENCE);

        /* 2b. O = qf . (Q S) + A V' (the Q rows' items). A is zero past the
         * diagonal, so the sum may run to the item's last row. */
        if (row0 >= EFLA_C) {
            const int r0 = row0 - EFLA_C;
            EFLA_VEC o[4];
#pragma unroll
            for (int m = 0; m < 4; ++m)
                o[m] = q_factor[r0 + m] * acc[m];
            for (int mm = 0; mm < r0 + 4; mm += 4) {
                __local const float *v_row = vp + mm * EFLA_DVT + j0;
                const EFLA_VEC va = EFLA_VLOAD(v_row), vb = EFLA_VLOAD(v_row + EFLA_DVT),
                               vc = EFLA_VLOAD(v_row + 2 * EFLA_DVT),
                               vd = EFLA_VLOAD(v_row + 3 * EFLA_DVT);
#pragma unroll
                for (int m = 0; m < 4; ++m) {
                    const float4 a = vload4(0, tile + (r0 + m) * EFLA_SCAN_AS + mm);
                    o[m] = fma((EFLA_VEC)(a.x), va, o[m]);
                    o[m] = fma((EFLA_VEC)(a.y), vb, o[m]);
                    o[m] = fma((EFLA_VEC)(a.z), vc, o[m]);
                    o[m] = fma((EFLA_VEC)(a.w), vd, o[m]);
                }
            }
#pragma unroll
            for (int m = 0; m < 4; ++m) {
                const int r = r0 + m;
                float values[EFLA_CN];
                EFLA_VSTORE(o[m], values);
                if (r < length) {
                    const long base = out_origin + (t0 + r) * out_row;
#pragma unroll
                    for (int n = 0; n < EFLA_CN; ++n) {
                        const int col = col0 + j0 + n;
                        if (col < dv) efla_store(out, base + col * out_step, values[n]);
                    }
                }
            }
        }

        /* The next chunk's first loads, in flight during the update. */
        if (c0 + EFLA_C < seq.z) {
            const int next_length = min(EFLA_C, seq.z - c0 - EFLA_C);
            efla_scan_fetch_wq(&src, t0 + EFLA_C, next_length, 0, wq);
            coef = efla_scan_fetch_c(&src, t0 + EFLA_C, next_length);
        }

        /* 3. S += K^T V': passes of 2C state rows, K tiles of KR rows. */
        EFLA_VEC su[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int p0 = 0, rh = 0; p0 < dk;) {
            barrier(CLK_LOCAL_MEM_FENCE);
            efla_scan_put_k(kx, rh, k_inv, tile);
            barrier(CLK_LOCAL_MEM_FENCE);
            const int next_rh = rh + EFLA_SCAN_KR < length ? rh + EFLA_SCAN_KR : 0;
            const int next_p0 = next_rh ? p0 : p0 + 2 * EFLA_C;
            if (next_p0 < dk) efla_scan_fetch_k(&src, t0, length, next_rh, next_p0, kx);
            for (int rr = 0; rr < EFLA_SCAN_KR; ++rr) {
                const float4 kr = vload4(0, tile + rr * EFLA_SCAN_KS + row0);
                const EFLA_VEC v = EFLA_VLOAD(vp + (rh + rr) * EFLA_DVT + j0);
                su[0] = fma((EFLA_VEC)(kr.x), v, su[0]);
                su[1] = fma((EFLA_VEC)(kr.y), v, su[1]);
                su[2] = fma((EFLA_VEC)(kr.z), v, su[2]);
                su[3] = fma((EFLA_VEC)(kr.w), v, su[3]);
            }
            if (next_p0 != p0) {
#pragma unroll
                for (int m = 0; m < 4; ++m) {
                    const int i = p0 + row0 + m;
                    if (i < dk) {
                        __local float *s = S + i * EFLA_DVT + j0;
                        EFLA_VSTORE(EFLA_VLOAD(s) + su[m], s);
                    }
                    su[m] = 0.0f;
                }
            }
            p0 = next_p0;
            rh = next_rh;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    if (flags & EFLA_PF_FINAL_STATE) {
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int idx = lid; idx < dk * EFLA_DVT; idx += EFLA_SCAN_WG) {
            const int i = idx / EFLA_DVT, col = col0 + idx % EFLA_DVT;
            if (col < dv) s1[efla_state_index(P, EFLA_P_S1, seq.w, hv, i, col)] = S[idx];
        }
    }
}

#undef EFLA_SCAN_NAME
#undef EFLA_CN
#undef EFLA_VEC
#undef EFLA_VLOAD
#undef EFLA_VSTORE
