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
 * each local load feeds 4 CN multiply-adds.
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
#endif

__kernel __attribute__((reqd_work_group_size(EFLA_SCAN_WG, 1, 1))) void
EFLA_SCAN_NAME(__global const int4 *call, int table, __global const store_t *q,
               __global const store_t *k, __global store_t *out, __global const float *s0,
               __global float *s1, __global const float *scratch, __local float *S) {
    __global const long *P = (__global const long *)call;
    __local float vp[EFLA_C * EFLA_DVT]; /* V' [C][DVT] */
    __local float tile[EFLA_SCAN_TILE];  /* [W;Q] tiles, A, then K tiles */
    __local float q_factor[EFLA_C], k_inv[EFLA_C];
    __local long q_base[EFLA_C], k_base[EFLA_C]; /* element offsets of the chunk's rows */

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
    __global const float *w_rows = scratch + P[EFLA_P_SCRATCH_W] + scratch_rows * dk;
    __global const float *u_rows = scratch + P[EFLA_P_SCRATCH_U] + scratch_rows * dv;
    __global const float *a_rows = scratch + P[EFLA_P_SCRATCH_A] + scratch_rows * EFLA_C;
    __global const float *c_rows = scratch + P[EFLA_P_SCRATCH_C] + scratch_rows * 2;
    const long q_step = P[EFLA_P_Q + 4], k_step = P[EFLA_P_K + 4];
    const int row0 = 4 * grp; /* phase 1: rows of [W;Q]; phase 3: state rows in a pass */

    for (int idx = lid; idx < s_rows * EFLA_DVT; idx += EFLA_SCAN_WG) {
        const int i = idx / EFLA_DVT, col = col0 + idx % EFLA_DVT;
        S[idx] = (flags & EFLA_PF_INITIAL_STATE) && i < dk && col < dv
                     ? s0[efla_state_index(P, EFLA_P_S0, seq.w, hv, i, col)]
                     : 0.0f;
    }

    for (int c0 = 0; c0 < seq.z; c0 += EFLA_C) {
        const int length = min(EFLA_C, seq.z - c0);
        const int t0 = seq.y + c0; /* first token of the chunk; also its scratch row */
        if (lid < EFLA_C) {
            q_factor[lid] = lid < length ? c_rows[(long)(t0 + lid) * 2] : 0.0f;
            k_inv[lid] = lid < length ? c_rows[(long)(t0 + lid) * 2 + 1] : 0.0f;
            q_base[lid] = efla_row(P, EFLA_P_Q, seq.x, t0 + lid, h);
            k_base[lid] = efla_row(P, EFLA_P_K, seq.x, t0 + lid, h);
        }

        /* 1. [W S; Q S]: rows row0..row0+3 of the stacked 2C rows. */
        EFLA_VEC acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int d0 = 0; d0 < dk; d0 += EFLA_KT) {
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int idx = lid; idx < 2 * EFLA_C * EFLA_KT; idx += EFLA_SCAN_WG) {
                const int r = idx / EFLA_KT, c = idx % EFLA_KT, d = d0 + c;
                const int rr = r < EFLA_C ? r : r - EFLA_C;
                float x = 0.0f;
                if (rr < length && d < dk)
                    x = r < EFLA_C ? w_rows[(long)(t0 + rr) * dk + d]
                                   : efla_load(q, q_base[rr] + d * q_step);
                tile[r * EFLA_SCAN_TS + c] = x;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
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
        barrier(CLK_LOCAL_MEM_FENCE);

        /* 2a. V' = U - W S (the W rows' items); A into the tile. */
        if (row0 < EFLA_C) {
#pragma unroll
            for (int m = 0; m < 4; ++m) {
                const int r = row0 + m;
                float ws[EFLA_CN], u[EFLA_CN];
                EFLA_VSTORE(acc[m], ws);
#pragma unroll
                for (int n = 0; n < EFLA_CN; ++n) {
                    const int col = col0 + j0 + n;
                    u[n] =
                        (r < length && col < dv ? u_rows[(long)(t0 + r) * dv + col] : 0.0f) - ws[n];
                }
                EFLA_VSTORE(EFLA_VLOAD(u), vp + r * EFLA_DVT + j0);
            }
        }
        for (int idx = lid; idx < EFLA_C * EFLA_C; idx += EFLA_SCAN_WG) {
            const int r = idx / EFLA_C, m = idx % EFLA_C;
            tile[r * EFLA_SCAN_AS + m] = r < length ? a_rows[(long)(t0 + r) * EFLA_C + m] : 0.0f;
        }
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
                    const long base = efla_row(P, EFLA_P_OUT, seq.x, t0 + r, hv);
#pragma unroll
                    for (int n = 0; n < EFLA_CN; ++n) {
                        const int col = col0 + j0 + n;
                        if (col < dv) efla_store(out, base + col * P[EFLA_P_OUT + 4], values[n]);
                    }
                }
            }
        }

        /* 3. S += K^T V': passes of 2C state rows, K tiles of C/2 rows. */
        for (int p0 = 0; p0 < dk; p0 += 2 * EFLA_C) {
            EFLA_VEC su[4] = {0.0f, 0.0f, 0.0f, 0.0f};
            for (int rh = 0; rh < length; rh += EFLA_SCAN_KR) {
                barrier(CLK_LOCAL_MEM_FENCE);
                for (int idx = lid; idx < EFLA_SCAN_KR * 2 * EFLA_C; idx += EFLA_SCAN_WG) {
                    const int rr = idx / (2 * EFLA_C), c = idx % (2 * EFLA_C);
                    const int r = rh + rr, d = p0 + c;
                    tile[rr * EFLA_SCAN_KS + c] =
                        r < length && d < dk ? k_inv[r] * efla_load(k, k_base[r] + d * k_step)
                                             : 0.0f;
                }
                barrier(CLK_LOCAL_MEM_FENCE);
                for (int rr = 0; rr < EFLA_SCAN_KR; ++rr) {
                    const float4 kr = vload4(0, tile + rr * EFLA_SCAN_KS + row0);
                    const EFLA_VEC v = EFLA_VLOAD(vp + (rh + rr) * EFLA_DVT + j0);
                    su[0] = fma((EFLA_VEC)(kr.x), v, su[0]);
                    su[1] = fma((EFLA_VEC)(kr.y), v, su[1]);
                    su[2] = fma((EFLA_VEC)(kr.z), v, su[2]);
                    su[3] = fma((EFLA_VEC)(kr.w), v, su[3]);
                }
            }
#pragma unroll
            for (int m = 0; m < 4; ++m) {
                const int i = p0 + row0 + m;
                if (i < dk) {
                    __local float *s = S + i * EFLA_DVT + j0;
                    EFLA_VSTORE(EFLA_VLOAD(s) + su[m], s);
                }
            }
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
