/*
 * Chunked forward, phase 2: the state scan (ALGORITHM.md 2.2, 2.6), the
 * only serial part. A template: efla_forward.cl includes it once per Dv
 * tile width EFLA_DVT (8, 16, 32), making efla_chunk_state8/16/32.
 *
 * One work-group of 2C items per (sequence, value head, tile of EFLA_DVT
 * state columns); the state tile S [dk][DVT] stays in local memory for the
 * whole sequence. Per chunk c, from the scratch rows of efla_chunk_prepare,
 * and nothing else (the output is efla_chunk_output's, fully parallel):
 *   1. H[c] = S                   (the state before the chunk, to scratch)
 *   2. V' = U - W S               item: 4 rows x CN = DVT/8 columns;
 *                                 V' overwrites U in scratch
 *   3. S += K^T V'                item: 4 state rows x CN columns per pass
 * Items are (cg = lid % 8: columns cg*CN.., grp = lid / 8: rows 4 grp..);
 * local tiles are read as float4 along the contracted dimension, so that
 * each local load feeds 4 CN multiply-adds. Global loads go to registers
 * one step ahead of their use (fixed trip counts, unrolled): the next W
 * tile during the current one's multiply-adds, the update's K tiles during
 * V', the next chunk's first W tile during the update.
 */
#define EFLA_CAT_(a, b) a##b
#define EFLA_CAT(a, b) EFLA_CAT_(a, b)
#define EFLA_STATE_NAME EFLA_CAT(efla_chunk_state, EFLA_DVT)

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

#ifndef EFLA_STATE_SHARED
#define EFLA_STATE_SHARED
#define EFLA_STATE_WG (2 * EFLA_C)
/* Few, wide steps: a step waits for its tile's global round trip once, so
 * W is staged 64 columns of Dk at a time and K all C rows at a time. */
#define EFLA_STATE_KW EFLA_CL_STATE_K_TILE /* W tile columns (Dk) */
#define EFLA_STATE_TS (EFLA_STATE_KW + 4)  /* W tile row stride (float4 aligned) */
#define EFLA_STATE_KS (EFLA_C + 4)         /* K tile row stride: C state rows per pass */
#define EFLA_STATE_KR EFLA_C               /* K tile rows at a time */
#define EFLA_STATE_TILE EFLA_MAX2(EFLA_C *EFLA_STATE_TS, EFLA_STATE_KR *EFLA_STATE_KS)
/* Each item's share of a staged tile: fixed trip counts, so that the
 * loads of a tile are all in flight at once. */
#define EFLA_STATE_W_N (EFLA_C * EFLA_STATE_KW / EFLA_STATE_WG)
#define EFLA_STATE_K_N (EFLA_STATE_KR * EFLA_C / EFLA_STATE_WG)

/* Where a sequence's rows are: scratch rows and the k rows' origin. */
typedef struct efla_state_src {
    __global const float *w, *c;
    __global const store_t *k;
    long k_origin, k_row, k_step;
    int dk;
} efla_state_src;

/* The item's share of W rows t0.. (length valid), columns d0..d0 + KW. */
void efla_state_fetch_w(const efla_state_src *s, int t0, int length, int d0,
                        float x[EFLA_STATE_W_N]) {
    const int lid = get_local_id(0);
#pragma unroll
    for (int n = 0; n < EFLA_STATE_W_N; ++n) {
        const int idx = lid + n * EFLA_STATE_WG, r = idx / EFLA_STATE_KW;
        const int d = d0 + idx % EFLA_STATE_KW;
        x[n] = r < length && d < s->dk ? s->w[(long)(t0 + r) * s->dk + d] : 0.0f;
    }
}

void efla_state_put_w(const float x[EFLA_STATE_W_N], __local float *tile) {
    const int lid = get_local_id(0);
#pragma unroll
    for (int n = 0; n < EFLA_STATE_W_N; ++n) {
        const int idx = lid + n * EFLA_STATE_WG;
        tile[idx / EFLA_STATE_KW * EFLA_STATE_TS + idx % EFLA_STATE_KW] = x[n];
    }
}

/* Raw k rows t0 + rh.. (KR of them), state rows p0..p0 + C. */
void efla_state_fetch_k(const efla_state_src *s, int t0, int length, int rh, int p0,
                        float x[EFLA_STATE_K_N]) {
    const int lid = get_local_id(0);
#pragma unroll
    for (int n = 0; n < EFLA_STATE_K_N; ++n) {
        const int idx = lid + n * EFLA_STATE_WG;
        const int r = rh + idx / EFLA_C, d = p0 + idx % EFLA_C;
        x[n] = r < length && d < s->dk
                   ? efla_load(s->k, s->k_origin + (t0 + r) * s->k_row + d * s->k_step)
                   : 0.0f;
    }
}

/* K^ = k / |k| into the tile (k_inv is zero past the chunk's length). */
void efla_state_put_k(const float x[EFLA_STATE_K_N], int rh, __local const float *k_inv,
                      __local float *tile) {
    const int lid = get_local_id(0);
#pragma unroll
    for (int n = 0; n < EFLA_STATE_K_N; ++n) {
        const int idx = lid + n * EFLA_STATE_WG, rr = idx / EFLA_C;
        tile[rr * EFLA_STATE_KS + idx % EFLA_C] = k_inv[rh + rr] * x[n];
    }
}

/* 1/|k| of row `lid` of the chunk (items lid < C). */
float efla_state_fetch_inv(const efla_state_src *s, int t0, int length) {
    const int lid = get_local_id(0);
    return lid < length ? s->c[(long)(t0 + lid) * 2 + 1] : 0.0f;
}

/* H[c] = S: the tile's `dvt` columns of the chunk's state slice [dk][dv]. */
void efla_state_save(__local const float *S, int dk, int dv, int dvt, int col0, __global float *h) {
    for (int idx = get_local_id(0); idx < dk * dvt; idx += EFLA_STATE_WG) {
        const int i = idx / dvt, j = idx % dvt;
        if (col0 + j < dv) h[(long)i * dv + col0 + j] = S[idx];
    }
}
#endif

/* V' = U - W S for the item's 4 rows x CN columns: W tiles staged through
 * `tile`, the next one fetched while this one is multiplied. `w` holds the
 * first tile's share on entry. */
void EFLA_CAT(efla_state_ws, EFLA_DVT)(const efla_state_src *s, int t0, int length,
                                       float w[EFLA_STATE_W_N], __local const float *S,
                                       __local float *tile, EFLA_VEC acc[4]) {
    const int lid = get_local_id(0), row0 = 4 * (lid / 8), j0 = (lid % 8) * EFLA_CN;
    for (int d0 = 0; d0 < s->dk; d0 += EFLA_STATE_KW) {
        barrier(CLK_LOCAL_MEM_FENCE);
        efla_state_put_w(w, tile);
        barrier(CLK_LOCAL_MEM_FENCE);
        if (d0 + EFLA_STATE_KW < s->dk) efla_state_fetch_w(s, t0, length, d0 + EFLA_STATE_KW, w);
        for (int c = 0; c < EFLA_STATE_KW; c += 4) {
            __local const float *s_row = S + (d0 + c) * EFLA_DVT + j0;
            const EFLA_VEC sa = EFLA_VLOAD(s_row), sb = EFLA_VLOAD(s_row + EFLA_DVT),
                           sc = EFLA_VLOAD(s_row + 2 * EFLA_DVT),
                           sd = EFLA_VLOAD(s_row + 3 * EFLA_DVT);
#pragma unroll
            for (int m = 0; m < 4; ++m) {
                const float4 t = vload4(0, tile + (row0 + m) * EFLA_STATE_TS + c);
                acc[m] = fma((EFLA_VEC)(t.x), sa, acc[m]);
                acc[m] = fma((EFLA_VEC)(t.y), sb, acc[m]);
                acc[m] = fma((EFLA_VEC)(t.z), sc, acc[m]);
                acc[m] = fma((EFLA_VEC)(t.w), sd, acc[m]);
            }
        }
    }
}

/* S += K^T V': passes of C state rows, K tiles of KR rows. `kx` holds the
 * first tile's share on entry. */
void EFLA_CAT(efla_state_update, EFLA_DVT)(const efla_state_src *s, int t0, int length,
                                           float kx[EFLA_STATE_K_N], __local const float *k_inv,
                                           __local const float *vp, __local float *tile,
                                           __local float *S) {
    const int lid = get_local_id(0), row0 = 4 * (lid / 8), j0 = (lid % 8) * EFLA_CN;
    EFLA_VEC su[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int p0 = 0, rh = 0; p0 < s->dk;) {
        barrier(CLK_LOCAL_MEM_FENCE);
        efla_state_put_k(kx, rh, k_inv, tile);
        barrier(CLK_LOCAL_MEM_FENCE);
        const int next_rh = rh + EFLA_STATE_KR < length ? rh + EFLA_STATE_KR : 0;
        const int next_p0 = next_rh ? p0 : p0 + EFLA_C;
        if (next_p0 < s->dk) efla_state_fetch_k(s, t0, length, next_rh, next_p0, kx);
        for (int rr = 0; rr < EFLA_STATE_KR; ++rr) {
            const float4 kr = vload4(0, tile + rr * EFLA_STATE_KS + row0);
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
                if (i < s->dk) {
                    __local float *row = S + i * EFLA_DVT + j0;
                    EFLA_VSTORE(EFLA_VLOAD(row) + su[m], row);
                }
                su[m] = 0.0f;
            }
        }
        p0 = next_p0;
        rh = next_rh;
    }
}

__kernel __attribute__((reqd_work_group_size(EFLA_STATE_WG, 1, 1))) void
EFLA_STATE_NAME(__global const int4 *call, int table, int first_chunks, __global const store_t *k,
                __global const float *s0, __global float *s1, __global float *scratch,
                __local float *S) {
    __global const long *P = (__global const long *)call;
    __local float vp[EFLA_C * EFLA_DVT]; /* V' [C][DVT] */
    __local float tile[EFLA_STATE_TILE]; /* W tiles, then K tiles */
    __local float k_inv[EFLA_C];

    const int lid = get_local_id(0), row0 = 4 * (lid / 8), j0 = (lid % 8) * EFLA_CN;
    const int dk = (int)P[EFLA_P_DK], dv = (int)P[EFLA_P_DV];
    const int s_rows = (dk + EFLA_STATE_KW - 1) / EFLA_STATE_KW * EFLA_STATE_KW; /* zero padded */
    const int value_heads = (int)P[EFLA_P_VALUE_HEADS];
    const int flags = (int)P[EFLA_P_FLAGS];
    const int tiles = (dv + EFLA_DVT - 1) / EFLA_DVT;
    const int group = get_group_id(0);
    const int tile_index = group % tiles, hv = (group / tiles) % value_heads;
    const int sequence = group / tiles / value_heads;
    const int4 seq = call[table + sequence];
    const long chunk0 = call[first_chunks + sequence].x;
    const int h = hv / (value_heads / (int)P[EFLA_P_HEADS]);
    const int col0 = tile_index * EFLA_DVT; /* first state column of the tile */
    const long scratch_rows = (long)hv * P[EFLA_P_ROWS] + (long)seq.x * P[EFLA_P_TOKENS];
    efla_state_src src;
    src.w = scratch + P[EFLA_P_SCRATCH_W] + scratch_rows * dk;
    src.c = scratch + P[EFLA_P_SCRATCH_C] + scratch_rows * 2;
    src.k = k;
    src.k_origin = efla_row(P, EFLA_P_K, seq.x, 0, h);
    src.k_row = P[EFLA_P_K + 2];
    src.k_step = P[EFLA_P_K + 4];
    src.dk = dk;
    __global float *u = scratch + P[EFLA_P_SCRATCH_U] + scratch_rows * dv;
    __global float *h_chunk =
        scratch + P[EFLA_P_SCRATCH_H] + ((long)hv * P[EFLA_P_CHUNKS] + chunk0) * dk * dv;

    for (int idx = lid; idx < s_rows * EFLA_DVT; idx += EFLA_STATE_WG) {
        const int i = idx / EFLA_DVT, col = col0 + idx % EFLA_DVT;
        S[idx] = (flags & EFLA_PF_INITIAL_STATE) && i < dk && col < dv
                     ? s0[efla_state_index(P, EFLA_P_S0, seq.w, hv, i, col)]
                     : 0.0f;
    }
    barrier(CLK_LOCAL_MEM_FENCE);

    float w[EFLA_STATE_W_N], kx[EFLA_STATE_K_N];
    efla_state_fetch_w(&src, seq.y, min(EFLA_C, seq.z), 0, w);
    float inv = efla_state_fetch_inv(&src, seq.y, min(EFLA_C, seq.z));

    for (int c0 = 0; c0 < seq.z; c0 += EFLA_C, h_chunk += (long)dk * dv) {
        const int length = min(EFLA_C, seq.z - c0);
        const int t0 = seq.y + c0; /* first token of the chunk; also its scratch row */
        if (lid < EFLA_C) k_inv[lid] = inv;
        efla_state_save(S, dk, dv, EFLA_DVT, col0, h_chunk);
        float un[4][EFLA_CN];
#pragma unroll
        for (int m = 0; m < 4; ++m)
#pragma unroll
            for (int n = 0; n < EFLA_CN; ++n) {
                const int r = row0 + m, col = col0 + j0 + n;
                un[m][n] = r < length && col < dv ? u[(long)(t0 + r) * dv + col] : 0.0f;
            }

        EFLA_VEC acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        EFLA_CAT(efla_state_ws, EFLA_DVT)(&src, t0, length, w, S, tile, acc);
        efla_state_fetch_k(&src, t0, length, 0, 0, kx);

        /* V' = U - W S, to local memory and over U in scratch. */
#pragma unroll
        for (int m = 0; m < 4; ++m) {
            float ws[EFLA_CN];
            EFLA_VSTORE(acc[m], ws);
            const int r = row0 + m;
#pragma unroll
            for (int n = 0; n < EFLA_CN; ++n) {
                un[m][n] -= ws[n];
                if (r < length && col0 + j0 + n < dv)
                    u[(long)(t0 + r) * dv + col0 + j0 + n] = un[m][n];
            }
            EFLA_VSTORE(EFLA_VLOAD(un[m]), vp + r * EFLA_DVT + j0);
        }

        /* The next chunk's first loads, in flight during the update. */
        if (c0 + EFLA_C < seq.z) {
            const int next_length = min(EFLA_C, seq.z - c0 - EFLA_C);
            efla_state_fetch_w(&src, t0 + EFLA_C, next_length, 0, w);
            inv = efla_state_fetch_inv(&src, t0 + EFLA_C, next_length);
        }
        EFLA_CAT(efla_state_update, EFLA_DVT)(&src, t0, length, kx, k_inv, vp, tile, S);
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    if (flags & EFLA_PF_FINAL_STATE) {
        for (int idx = lid; idx < dk * EFLA_DVT; idx += EFLA_STATE_WG) {
            const int i = idx / EFLA_DVT, col = col0 + idx % EFLA_DVT;
            if (col < dv) s1[efla_state_index(P, EFLA_P_S1, seq.w, hv, i, col)] = S[idx];
        }
    }
}

#undef EFLA_STATE_NAME
#undef EFLA_CN
#undef EFLA_VEC
#undef EFLA_VLOAD
#undef EFLA_VSTORE
