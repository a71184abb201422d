/*
 * Chunked forward, phase 2: the scan over chunks (ALGORITHM.md 2.2, 2.6).
 *
 * One work-group of EFLA_WG items per (sequence, value head, tile of dvt
 * state columns); the state tile S [dk][dvt] stays in local memory for the
 * whole sequence and no per-chunk state is written. Per chunk, from the
 * scratch rows of efla_chunk_prepare:
 *   V' = U - W S
 *   O  = qf . (Q S) + A V'        (A: the masked, scaled Q K^T rows)
 *   S += K^T V'                   (K^ = k / |k|)
 * Item (jl, rg) owns column jl and chunk rows rg, rg + rs, ... of V' and
 * O (rs = EFLA_WG / dvt), and state rows rg, rg + rs, ... of each K tile.
 */
#define EFLA_SCAN_ROWS (EFLA_C * EFLA_CL_MAX_DV_TILE / EFLA_WG) /* rows per item, at most */
#define EFLA_SCAN_TILE EFLA_MAX2(2 * EFLA_C * EFLA_KTP, EFLA_C * EFLA_C)

__kernel __attribute__((reqd_work_group_size(EFLA_WG, 1, 1))) void
efla_chunk_scan(__global const int4 *call, int table, __global const store_t *q,
                __global const store_t *k, __global store_t *out, __global const float *s0,
                __global float *s1, __global const float *scratch, int dvt, __local float *S) {
    __global const long *P = (__global const long *)call;
    __local float vp[EFLA_C * EFLA_CL_MAX_DV_TILE]; /* V' [C][dvt] */
    __local float tile[EFLA_SCAN_TILE];             /* W and Q tiles, A, then K tiles */
    __local float q_factor[EFLA_C], k_inv[EFLA_C];

    const int lid = get_local_id(0);
    const int jl = lid % dvt, rg = lid / dvt, rs = EFLA_WG / dvt, rows = EFLA_C / rs;
    const int dk = (int)P[EFLA_P_DK], dv = (int)P[EFLA_P_DV];
    const int value_heads = (int)P[EFLA_P_VALUE_HEADS];
    const int flags = (int)P[EFLA_P_FLAGS];
    const int tiles = (dv + dvt - 1) / dvt;
    const int group = get_group_id(0);
    const int tile_index = group % tiles, hv = (group / tiles) % value_heads;
    const int4 seq = call[table + group / tiles / value_heads];
    const int h = hv / (value_heads / (int)P[EFLA_P_HEADS]);
    const int j = tile_index * dvt + jl;
    const bool active = j < dv;
    const long scratch_rows = (long)hv * P[EFLA_P_ROWS] + (long)seq.x * P[EFLA_P_TOKENS];
    __global const float *w_rows = scratch + P[EFLA_P_SCRATCH_W] + scratch_rows * dk;
    __global const float *u_rows = scratch + P[EFLA_P_SCRATCH_U] + scratch_rows * dv;
    __global const float *a_rows = scratch + P[EFLA_P_SCRATCH_A] + scratch_rows * EFLA_C;
    __global const float *c_rows = scratch + P[EFLA_P_SCRATCH_C] + scratch_rows * 2;

    for (int idx = lid; idx < dk * dvt; idx += EFLA_WG) {
        const int i = idx / dvt, col = tile_index * dvt + idx % dvt;
        S[idx] = (flags & EFLA_PF_INITIAL_STATE) && col < dv
                     ? s0[efla_state_index(P, EFLA_P_S0, seq.w, hv, i, col)]
                     : 0.0f;
    }

    for (int c0 = 0; c0 < seq.z; c0 += EFLA_C) {
        const int length = min(EFLA_C, seq.z - c0);
        const int t0 = seq.y + c0; /* first token of the chunk; also its scratch row */
        if (lid < EFLA_C) {
            q_factor[lid] = lid < length ? c_rows[(long)(t0 + lid) * 2] : 0.0f;
            k_inv[lid] = lid < length ? c_rows[(long)(t0 + lid) * 2 + 1] : 0.0f;
        }

        /* W S and Q S over Dk tiles. */
        float ws[EFLA_SCAN_ROWS], qs[EFLA_SCAN_ROWS];
#pragma unroll
        for (int m = 0; m < EFLA_SCAN_ROWS; ++m)
            ws[m] = qs[m] = 0.0f;
        for (int d0 = 0; d0 < dk; d0 += EFLA_KT) {
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int idx = lid; idx < EFLA_C * EFLA_KT; idx += EFLA_WG) {
                const int r = idx / EFLA_KT, c = idx % EFLA_KT, d = d0 + c;
                const bool valid = r < length && d < dk;
                tile[r * EFLA_KTP + c] = valid ? w_rows[(long)(t0 + r) * dk + d] : 0.0f;
                tile[(EFLA_C + r) * EFLA_KTP + c] =
                    valid ? efla_load(q,
                                      efla_row(P, EFLA_P_Q, seq.x, t0 + r, h) + d * P[EFLA_P_Q + 4])
                          : 0.0f;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            const int width = min(EFLA_KT, dk - d0);
            for (int c = 0; c < width; ++c) {
                const float s = S[(d0 + c) * dvt + jl];
#pragma unroll
                for (int m = 0; m < EFLA_SCAN_ROWS; ++m) {
                    if (m < rows) {
                        const int r = rg + rs * m;
                        ws[m] += tile[r * EFLA_KTP + c] * s;
                        qs[m] += tile[(EFLA_C + r) * EFLA_KTP + c] * s;
                    }
                }
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        /* V' = U - W S; then A into the tile. */
#pragma unroll
        for (int m = 0; m < EFLA_SCAN_ROWS; ++m) {
            if (m < rows) {
                const int r = rg + rs * m;
                const float u = r < length && active ? u_rows[(long)(t0 + r) * dv + j] : 0.0f;
                vp[r * dvt + jl] = u - ws[m];
            }
        }
        for (int idx = lid; idx < EFLA_C * EFLA_C; idx += EFLA_WG) {
            const int r = idx / EFLA_C;
            tile[idx] = r < length ? a_rows[(long)(t0 + r) * EFLA_C + idx % EFLA_C] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        /* O = qf . (Q S) + A V' */
#pragma unroll
        for (int m = 0; m < EFLA_SCAN_ROWS; ++m) {
            if (m < rows) {
                const int r = rg + rs * m;
                float o = q_factor[r] * qs[m];
                for (int mm = 0; mm <= r; ++mm)
                    o += tile[r * EFLA_C + mm] * vp[mm * dvt + jl];
                if (r < length && active)
                    efla_store(
                        out, efla_row(P, EFLA_P_OUT, seq.x, t0 + r, hv) + j * P[EFLA_P_OUT + 4], o);
            }
        }

        /* S += K^T V' over Dk tiles. */
        for (int d0 = 0; d0 < dk; d0 += EFLA_KT) {
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int idx = lid; idx < EFLA_C * EFLA_KT; idx += EFLA_WG) {
                const int r = idx / EFLA_KT, c = idx % EFLA_KT, d = d0 + c;
                tile[r * EFLA_KTP + c] =
                    r < length && d < dk
                        ? k_inv[r] * efla_load(k, efla_row(P, EFLA_P_K, seq.x, t0 + r, h) +
                                                      d * P[EFLA_P_K + 4])
                        : 0.0f;
            }
            barrier(CLK_LOCAL_MEM_FENCE);
            for (int ii = rg; ii < EFLA_KT && d0 + ii < dk; ii += rs) {
                float s = 0.0f;
                for (int r = 0; r < length; ++r)
                    s += tile[r * EFLA_KTP + ii] * vp[r * dvt + jl];
                S[(d0 + ii) * dvt + jl] += s;
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }

    if (flags & EFLA_PF_FINAL_STATE) {
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int idx = lid; idx < dk * dvt; idx += EFLA_WG) {
            const int i = idx / dvt, col = tile_index * dvt + idx % dvt;
            if (col < dv) s1[efla_state_index(P, EFLA_P_S1, seq.w, hv, i, col)] = S[idx];
        }
    }
}
