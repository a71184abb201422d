/*
 * Chunked forward, phase 1 on tensor cores (the nvmma path): one
 * work-group of 8 warps per (chunk, value head), the math of the CUDA mma
 * prepare (shaders/cuda/mma_prepare.cuh) in the two-coefficient form with
 * unit keys k^ = ck k, ck = 1/|k| (ALGORITHM.md 2.6):
 *   L = StrictLower(diag(e) K^ K^T)   K K^T on tensor cores from the stored
 *                                     keys, the factors applied in f32
 *   Ainv = (I + L)^-1                 blocked, f32 (efla_prepare_solve)
 *   W = (Ainv diag(e)) K^,  U^T = V^T (Ainv diag(g))^T
 *   P = mask_{s<=t}(diag(qf) Q K^T diag(ck))
 * Every 16-bit operand is rounded once: K^ is unit and Ainv diag(e),
 * Ainv diag(g) are bounded (DESIGN.md, precision contract), so no operand
 * needs a low half. Results go to the chunk's scratch block in fragment
 * order (efla_params.h), with Q as stored and the q factors.
 */
#define EFLA_NP_ITEMS EFLA_NV_PREPARE_ITEMS
#define EFLA_NP_KP (EFLA_KT + 8) /* raw K and Q tile pitch (16-bit elements) */
#define EFLA_NP_CP (EFLA_C + 8)  /* 16-bit C-wide tile pitch: conflict-free fragments */
/* L [C][C] then the solve's x [16][C - 16] (the raw K and Q tiles before
 * them); then raw Q K^T, then Ainv [C][PAS]; afterwards the 16-bit tiles
 * Ainv diag(e), Ainv diag(g) and the K^T / V^T stage, [C][CP] each. */
#define EFLA_NP_LOWER (EFLA_C * EFLA_C + 16 * (EFLA_C - 16))
#define EFLA_NP_WORK (EFLA_NP_LOWER + EFLA_C * EFLA_PAS)
#define EFLA_NP_N (EFLA_C * EFLA_C / EFLA_NP_ITEMS) /* C x C elements per item */

/* K K^T and Q K^T from the stored bits over Dk into the warps' tiles, |q_r|^2
 * in items r < C, and Q to the scratch (A order) on the way. */
EFLA_NV_INLINE void efla_np_products(__global const long *P, const efla_prep *c,
                                     __local const long *q_base, __local const long *k_base,
                                     __global const store_t *q, __global const store_t *k,
                                     __local ushort *kt, __local ushort *qt, float4 kk[EFLA_MMA_PT],
                                     float4 qk[EFLA_MMA_PT], float *q_sum,
                                     __global uint *q_out EFLA_MMA_PARAM) {
    const int lid = get_local_id(0), dkp = EFLA_NV_PAD16(c->dk);
    const long k_step = P[EFLA_P_K + 4], q_step = P[EFLA_P_Q + 4];
    for (int d0 = 0; d0 < c->dk; d0 += EFLA_KT) {
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int idx = lid; idx < EFLA_C * EFLA_KT; idx += EFLA_NP_ITEMS) {
            const int r = idx / EFLA_KT, col = idx % EFLA_KT, d = d0 + col;
            const bool valid = r < c->chunk.z && d < c->dk;
            kt[r * EFLA_NP_KP + col] = valid ? efla_raw_bits(k, k_base[r] + d * k_step) : 0;
            qt[r * EFLA_NP_KP + col] = valid ? efla_raw_bits(q, q_base[r] + d * q_step) : 0;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < EFLA_C)
            for (int col = 0; col < EFLA_KT; ++col) {
                const float x = efla_half_value(qt[lid * EFLA_NP_KP + col]);
                *q_sum += x * x;
            }
        for (int idx = lid; idx < EFLA_C * EFLA_KT / 2; idx += EFLA_NP_ITEMS) {
            const int r = idx / (EFLA_KT / 2), col = 2 * (idx % (EFLA_KT / 2));
            if (d0 + col < dkp)
                q_out[efla_a_order(r, d0 + col, dkp / 16) / 2] =
                    efla_word(qt, r * EFLA_NP_KP + col);
        }
        efla_mma_block(kt, kt, EFLA_NP_KP, EFLA_KT, kk EFLA_MMA_ARG);
        efla_mma_block(qt, kt, EFLA_NP_KP, EFLA_KT, qk EFLA_MMA_ARG);
    }
}

/* The raw products from the fragments to local memory: K K^T into
 * `lower` [C][C] (its diagonal into k_squares), Q K^T into `qk_rows`
 * (row stride EFLA_PAS). */
EFLA_NV_INLINE void efla_np_spill(const float4 kk[EFLA_MMA_PT], const float4 qk[EFLA_MMA_PT],
                                  __local float *lower, __local float *qk_rows,
                                  __local float *k_squares) {
#pragma unroll
    for (int i = 0; i < EFLA_MMA_PT; ++i)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int2 at = efla_mma_position(i, e);
            const float x = efla_mma_element(kk[i], e);
            lower[at.x * EFLA_C + at.y] = x;
            qk_rows[at.x * EFLA_PAS + at.y] = efla_mma_element(qk[i], e);
            if (at.x == at.y) k_squares[at.x] = x;
        }
}

/* Row coefficients (items r < C) from |k_r|^2, |q_r|^2 and beta: the unit
 * key factor ck, the q factor qf (the scale folded in), erase e and write
 * g = alpha |k|; zeros past the chunk. qf also to the scratch. */
void efla_np_coefficients(__global const long *P, const efla_prep *c, __global const store_t *beta,
                          __local const float *k_squares, __local const float *q_squares,
                          __local float *ck, __local float *qf, __local float *erase,
                          __local float *write, __global float *qf_out) {
    const int r = get_local_id(0);
    if (r >= EFLA_C) return;
    float unit = 0.0f, factor = 0.0f, e = 0.0f, g = 0.0f;
    if (r < c->chunk.z) {
        const efla_row_coefficients row =
            efla_row_coefficients_of(P, c, beta, r, k_squares[r], q_squares[r]);
        unit = row.k_inv;
        factor = row.q_factor;
        e = row.erase;
        g = row.write;
    }
    ck[r] = unit;
    qf[r] = factor;
    erase[r] = e;
    write[r] = g;
    qf_out[r] = factor;
}

/* L = StrictLower(e_t ck_t ck_s k_t.k_s) in place, and P = qf_t ck_s q_t.k_s
 * (s <= t) to the scratch in A order, a pair of columns per item. */
void efla_np_scale(__local float *lower, __local const float *qk_rows, __local const float *ck,
                   __local const float *qf, __local const float *erase, __global uint *p_out) {
    const int lid = get_local_id(0);
    for (int idx = lid; idx < EFLA_C * EFLA_C; idx += EFLA_NP_ITEMS) {
        const int t = idx / EFLA_C, s = idx % EFLA_C;
        lower[idx] = s < t ? erase[t] * ck[t] * ck[s] * lower[idx] : 0.0f;
    }
    for (int idx = lid; idx < EFLA_C * EFLA_C / 2; idx += EFLA_NP_ITEMS) {
        const int t = idx / (EFLA_C / 2), s = 2 * (idx % (EFLA_C / 2));
        const float x0 = s <= t ? qf[t] * ck[s] * qk_rows[t * EFLA_PAS + s] : 0.0f;
        const float x1 = s + 1 <= t ? qf[t] * ck[s + 1] * qk_rows[t * EFLA_PAS + s + 1] : 0.0f;
        p_out[efla_a_order(t, s, EFLA_C / 16) / 2] = efla_pack2(x0, x1);
    }
}

/* Ainv diag(e) and Ainv diag(g) in 16 bits [C][CP], over the f32 Ainv and
 * L: every item reads its share into registers before any is written. */
EFLA_NV_INLINE void efla_np_inverse_halves(__local const float *ainv, __local const float *erase,
                                           __local const float *write, __local ushort *ae,
                                           __local ushort *ag) {
    const int lid = get_local_id(0);
    float x[EFLA_NP_N];
#pragma unroll
    for (int n = 0; n < EFLA_NP_N; ++n) {
        const int idx = lid + n * EFLA_NP_ITEMS;
        x[n] = ainv[idx / EFLA_C * EFLA_PAS + idx % EFLA_C];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
    for (int n = 0; n < EFLA_NP_N; ++n) {
        const int idx = lid + n * EFLA_NP_ITEMS, t = idx / EFLA_C, s = idx % EFLA_C;
        ae[t * EFLA_NP_CP + s] = efla_half_bits(x[n] * erase[s]);
        ag[t * EFLA_NP_CP + s] = efla_half_bits(x[n] * write[s]);
    }
}

/* Columns d..d + 3 of a row as stored (bits), zero past `width` or for
 * a row past the chunk. */
uint4 efla_np_bits4(__global const store_t *x, long base, long step, int d, int width, bool row) {
    uint bits[4];
#pragma unroll
    for (int i = 0; i < 4; ++i)
        bits[i] = row && d + i < width ? efla_raw_bits(x, base + (d + i) * step) : 0u;
    return (uint4)(bits[0], bits[1], bits[2], bits[3]);
}

/* The same as values. */
float4 efla_np_row4(__global const store_t *x, long base, long step, int d, int width, bool row) {
    const uint4 bits = efla_np_bits4(x, base, step, d, width, row);
    return (float4)(efla_half_value(bits.x), efla_half_value(bits.y), efla_half_value(bits.z),
                    efla_half_value(bits.w));
}

/* W = (Ainv diag(e)) K^ and K^T, C columns of Dk at a time: the unit keys
 * K^T [C][CP] (rows d, columns s) are staged once, rounded once, and serve
 * both as W's B operand and as the scan's K^T (B-pair order). An item takes
 * rows s, s + 1 and columns d..d + 3: neighbouring items read neighbouring
 * elements of a row. */
EFLA_NV_INLINE void efla_np_keys(__global const long *P, const efla_prep *c,
                                 __local const long *k_base, __global const store_t *k,
                                 __local const float *ck, __local const ushort *ae,
                                 __local ushort *stage, __global uint *kt_out,
                                 __global uint *w_out EFLA_MMA_PARAM) {
    const int lid = get_local_id(0), dkp = EFLA_NV_PAD16(c->dk);
    const long k_step = P[EFLA_P_K + 4];
    for (int d0 = 0; d0 < dkp; d0 += EFLA_C) {
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int idx = lid; idx < EFLA_C * EFLA_C / 8; idx += EFLA_NP_ITEMS) {
            const int s = 2 * (idx / (EFLA_C / 4)), d = 4 * (idx % (EFLA_C / 4));
            const float4 x0 =
                ck[s] * efla_np_row4(k, k_base[s], k_step, d0 + d, c->dk, s < c->chunk.z);
            const float4 x1 = ck[s + 1] * efla_np_row4(k, k_base[s + 1], k_step, d0 + d, c->dk,
                                                       s + 1 < c->chunk.z);
            const uint bits[4] = {efla_pack2(x0.x, x1.x), efla_pack2(x0.y, x1.y),
                                  efla_pack2(x0.z, x1.z), efla_pack2(x0.w, x1.w)};
#pragma unroll
            for (int i = 0; i < 4; ++i) {
                *(__local uint *)(stage + (d + i) * EFLA_NP_CP + s) = bits[i];
                if (d0 + d + i < dkp) kt_out[efla_b_order(d0 + d + i, s, dkp / 16) / 2] = bits[i];
            }
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        float4 acc[EFLA_MMA_PT];
#pragma unroll
        for (int i = 0; i < EFLA_MMA_PT; ++i)
            acc[i] = 0.0f;
        efla_mma_block(ae, stage, EFLA_NP_CP, EFLA_C, acc EFLA_MMA_ARG);
#pragma unroll
        for (int i = 0; i < EFLA_MMA_PT; ++i) {
            const int2 at = efla_mma_position(i, 0); /* row t, column d - d0 */
            if (d0 + at.y >= dkp) continue;
            w_out[efla_b_order(at.x, d0 + at.y, EFLA_C / 16) / 2] = efla_pack2(acc[i].x, acc[i].y);
            w_out[efla_b_order(at.x + 8, d0 + at.y, EFLA_C / 16) / 2] =
                efla_pack2(acc[i].z, acc[i].w);
        }
    }
}

/* U^T = V^T (Ainv diag(g))^T, C rows of Dv at a time: V^T [C][CP] staged
 * as stored (rows j, columns s) is the A operand, Ainv diag(g) [t][s] the
 * B operand as Bt; the result goes to the scratch in A order. */
EFLA_NV_INLINE void efla_np_values(__global const long *P, const efla_prep *c,
                                   __local const long *v_base, __global const store_t *v,
                                   __local const ushort *ag, __local ushort *stage,
                                   __global uint *u_out EFLA_MMA_PARAM) {
    const int lid = get_local_id(0), dvp = EFLA_NV_PAD16(c->dv);
    const long v_step = P[EFLA_P_V + 4];
    for (int j0 = 0; j0 < dvp; j0 += EFLA_C) {
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int idx = lid; idx < EFLA_C * EFLA_C / 8; idx += EFLA_NP_ITEMS) {
            const int s = 2 * (idx / (EFLA_C / 4)), j = 4 * (idx % (EFLA_C / 4));
            const uint4 lo = efla_np_bits4(v, v_base[s], v_step, j0 + j, c->dv, s < c->chunk.z);
            const uint4 hi =
                efla_np_bits4(v, v_base[s + 1], v_step, j0 + j, c->dv, s + 1 < c->chunk.z);
            const uint4 bits = lo | (hi << 16);
            *(__local uint *)(stage + j * EFLA_NP_CP + s) = bits.x;
            *(__local uint *)(stage + (j + 1) * EFLA_NP_CP + s) = bits.y;
            *(__local uint *)(stage + (j + 2) * EFLA_NP_CP + s) = bits.z;
            *(__local uint *)(stage + (j + 3) * EFLA_NP_CP + s) = bits.w;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        float4 acc[EFLA_MMA_PT];
#pragma unroll
        for (int i = 0; i < EFLA_MMA_PT; ++i)
            acc[i] = 0.0f;
        efla_mma_block(stage, ag, EFLA_NP_CP, EFLA_C, acc EFLA_MMA_ARG);
#pragma unroll
        for (int i = 0; i < EFLA_MMA_PT; ++i) {
            const int2 at = efla_mma_position(i, 0); /* row j - j0, column t */
            if (j0 + at.x >= dvp) continue;
            u_out[efla_a_order(j0 + at.x, at.y, EFLA_C / 16) / 2] = efla_pack2(acc[i].x, acc[i].y);
            u_out[efla_a_order(j0 + at.x + 8, at.y, EFLA_C / 16) / 2] =
                efla_pack2(acc[i].z, acc[i].w);
        }
    }
}

__kernel __attribute__((reqd_work_group_size(EFLA_NP_ITEMS, 1, 1))) void
efla_nvmma_prepare(__global const int4 *call, int table, __global const store_t *q,
                   __global const store_t *k, __global const store_t *v,
                   __global const store_t *beta, __global uint *scratch) {
    __global const long *P = (__global const long *)call;
    __local float work[EFLA_NP_WORK];
    __local float *lower = work, *ainv = work + EFLA_NP_LOWER;
    __local float k_squares[EFLA_C], q_squares[EFLA_C];
    __local float ck[EFLA_C], qf[EFLA_C], erase[EFLA_C], write[EFLA_C];
    __local long q_base[EFLA_C], k_base[EFLA_C], v_base[EFLA_C];
    EFLA_MMA_DECLARE(EFLA_NP_ITEMS)

    const int lid = get_local_id(0);
    const efla_prep c = efla_prepare_locate(P, call, table);
    const int dkp = EFLA_NV_PAD16(c.dk), dvp = EFLA_NV_PAD16(c.dv);
    /* the work-group's index is (chunk * HV + hv): its scratch block */
    __global uint *block = scratch + (long)get_group_id(0) * (EFLA_NV_TOTAL(dkp, dvp) / 2);
    efla_prepare_bases(P, &c, q_base, k_base, v_base);
    barrier(CLK_LOCAL_MEM_FENCE);

    float4 kk[EFLA_MMA_PT], qk[EFLA_MMA_PT];
#pragma unroll
    for (int i = 0; i < EFLA_MMA_PT; ++i)
        kk[i] = qk[i] = 0.0f;
    float q_sum = 0.0f;
    __local ushort *kt = (__local ushort *)lower, *qt = kt + EFLA_C * EFLA_NP_KP;
    efla_np_products(P, &c, q_base, k_base, q, k, kt, qt, kk, qk, &q_sum,
                     block + EFLA_NV_Q(dkp, dvp) / 2 EFLA_MMA_ARG);
    barrier(CLK_LOCAL_MEM_FENCE); /* the tiles' last readers are done */
    efla_np_spill(kk, qk, lower, ainv, k_squares);
    if (lid < EFLA_C) q_squares[lid] = q_sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    efla_np_coefficients(P, &c, beta, k_squares, q_squares, ck, qf, erase, write,
                         (__global float *)(block + EFLA_NV_RQ(dkp, dvp) / 2));
    barrier(CLK_LOCAL_MEM_FENCE);
    efla_np_scale(lower, ainv, ck, qf, erase, block + EFLA_NV_P(dkp, dvp) / 2);
    barrier(CLK_LOCAL_MEM_FENCE);
    efla_prepare_solve(lower, ainv, lower + EFLA_C * EFLA_C); /* ends with a barrier */

    __local ushort *ae = (__local ushort *)work, *ag = ae + EFLA_C * EFLA_NP_CP;
    __local ushort *stage = ag + EFLA_C * EFLA_NP_CP;
    efla_np_inverse_halves(ainv, erase, write, ae, ag);
    efla_np_keys(P, &c, k_base, k, ck, ae, stage, block + EFLA_NV_KT(dkp, dvp) / 2,
                 block + EFLA_NV_W(dkp, dvp) / 2 EFLA_MMA_ARG);
    efla_np_values(P, &c, v_base, v, ag, stage, block + EFLA_NV_U(dkp, dvp) / 2 EFLA_MMA_ARG);
}
