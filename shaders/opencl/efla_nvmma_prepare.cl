/*
 * Chunked forward, phase 1 on tensor cores (the nvmma path; replaces the
 * portable efla_chunk_prepare, same arguments, launch shape and results).
 *
 * K K^T and Q K^T from the exact stored 16-bit k and q (row factors
 * applied in f32 afterwards), the row coefficients and the blocked f32
 * inverse as in efla_chunk_prepare.cl, then W = Ainv (e . K^) and
 * U = Ainv (g . V) with Ainv, e . K^ and g . V split into hi + lo halves in
 * the storage dtype (efla_split_bits), accumulating in f32. Every product
 * is a C x C block spread over the warps (efla_mma_block).
 */
#define EFLA_MP_KP (EFLA_KT + 8) /* K and Q tile pitch (16-bit elements) */
#define EFLA_MP_CP (EFLA_C + 8)  /* Ainv and apply tile pitch (16-bit elements) */
/* L [C][C] then the solve's x [16][C-16]; before that the K and Q tiles,
 * after it the 16-bit Ainv and apply tiles. */
#define EFLA_MP_LOWER (EFLA_C * EFLA_C + 16 * (EFLA_C - 16))
/* The kernel's work area: L (and x) then Ainv f32; afterwards the four
 * 16-bit apply tiles (Ainv and coef . X, each hi and lo). */
#define EFLA_MP_WORK EFLA_MAX2(EFLA_MP_LOWER + EFLA_C * EFLA_PAS, 2 * EFLA_C * EFLA_MP_CP)

/* Raw K K^T and Q K^T over Dk into the warp's tiles; |q_r|^2 in items
 * lid < C. The 16-bit tiles kt, qt are [C][KT] with pitch KP. */
void efla_mp_products(__global const long *P, const efla_prep *c, __local const long *q_base,
                      __local const long *k_base, __global const store_t *q,
                      __global const store_t *k, __local ushort *kt, __local ushort *qt,
                      float4 kk[EFLA_MMA_PT], float4 qk[EFLA_MMA_PT],
                      float *q_squares EFLA_MMA_PARAM) {
    const int lid = get_local_id(0);
    const long k_step = P[EFLA_P_K + 4], q_step = P[EFLA_P_Q + 4];
    for (int d0 = 0; d0 < c->dk; d0 += EFLA_KT) {
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int idx = lid; idx < EFLA_C * EFLA_KT; idx += EFLA_WG) {
            const int r = idx / EFLA_KT, col = idx % EFLA_KT, d = d0 + col;
            const bool valid = r < c->chunk.z && d < c->dk;
            kt[r * EFLA_MP_KP + col] = valid ? efla_raw_bits(k, k_base[r] + d * k_step) : 0;
            qt[r * EFLA_MP_KP + col] = valid ? efla_raw_bits(q, q_base[r] + d * q_step) : 0;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        if (lid < EFLA_C)
            for (int col = 0; col < EFLA_KT; ++col) {
                const float x = efla_half_value(qt[lid * EFLA_MP_KP + col]);
                *q_squares += x * x;
            }
        efla_mma_block(kt, kt, EFLA_MP_KP, EFLA_KT, kk EFLA_MMA_ARG);
        efla_mma_block(qt, kt, EFLA_MP_KP, EFLA_KT, qk EFLA_MMA_ARG);
    }
}

/* dst rows = Ainv (coef . X) for X = K (width dk) or V (width dv): column
 * tiles of C, coef . X split into hi + lo 16-bit halves (bt, bt_lo: as
 * Bt [C][C]); Ainv comes split (a16, a16_lo): Ahi Bhi + Ahi Blo + Alo Bhi. */
void efla_mp_apply(const efla_prep *c, __local const long *base, long step, int width,
                   __global const store_t *src, __local const float *coef,
                   __local const ushort *a16, __local const ushort *a16_lo, __local ushort *bt,
                   __local ushort *bt_lo, __global float *dst EFLA_MMA_PARAM) {
    const int lid = get_local_id(0);
    for (int d0 = 0; d0 < width; d0 += EFLA_C) {
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int idx = lid; idx < EFLA_C * EFLA_C; idx += EFLA_WG) {
            const int m = idx / EFLA_C, col = idx % EFLA_C, d = d0 + col;
            const float x =
                m < c->chunk.z && d < width ? coef[m] * efla_load(src, base[m] + d * step) : 0.0f;
            const ushort2 bits = efla_split_bits(x);
            bt[col * EFLA_MP_CP + m] = bits.x;
            bt_lo[col * EFLA_MP_CP + m] = bits.y;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        float4 acc[EFLA_MMA_PT];
#pragma unroll
        for (int i = 0; i < EFLA_MMA_PT; ++i)
            acc[i] = 0.0f;
        efla_mma_block(a16, bt, EFLA_MP_CP, EFLA_C, acc EFLA_MMA_ARG);
        efla_mma_block(a16, bt_lo, EFLA_MP_CP, EFLA_C, acc EFLA_MMA_ARG);
        efla_mma_block(a16_lo, bt, EFLA_MP_CP, EFLA_C, acc EFLA_MMA_ARG);
#pragma unroll
        for (int i = 0; i < EFLA_MMA_PT; ++i)
#pragma unroll
            for (int e = 0; e < 4; ++e) {
                const int2 at = efla_mma_position(i, e);
                const int d = d0 + at.y;
                if (at.x < c->chunk.z && d < width)
                    dst[(long)at.x * width + d] = efla_mma_element(acc[i], e);
            }
    }
}

/* Ainv (f32, row stride EFLA_PAS) split into 16-bit hi and lo [C][CP]
 * tiles that may overlap it: every item reads its share into registers
 * before any is written. */
void efla_mp_split_inverse(__local const float *ainv, __local ushort *a16, __local ushort *a16_lo) {
    const int lid = get_local_id(0);
    float x[EFLA_C * EFLA_C / EFLA_WG];
#pragma unroll
    for (int n = 0; n < EFLA_C * EFLA_C / EFLA_WG; ++n) {
        const int idx = lid + n * EFLA_WG;
        x[n] = ainv[idx / EFLA_C * EFLA_PAS + idx % EFLA_C];
    }
    barrier(CLK_LOCAL_MEM_FENCE);
#pragma unroll
    for (int n = 0; n < EFLA_C * EFLA_C / EFLA_WG; ++n) {
        const int idx = lid + n * EFLA_WG, at = idx / EFLA_C * EFLA_MP_CP + idx % EFLA_C;
        const ushort2 bits = efla_split_bits(x[n]);
        a16[at] = bits.x;
        a16_lo[at] = bits.y;
    }
}

/* The raw products from the fragments to local memory: K K^T into
 * `lower` [C][C] (its diagonal into k_squares), Q K^T into `qk_rows`
 * (row stride EFLA_PAS). */
void efla_mp_spill(const float4 kk[EFLA_MMA_PT], const float4 qk[EFLA_MMA_PT], __local float *lower,
                   __local float *qk_rows, __local float *k_squares) {
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

/* L = StrictLower(e_r / |k_r| k_r . k_m / |k_m|) in place, and the masked,
 * scaled A = qf_r q_r . k_m / |k_m| (m <= r) to scratch. */
void efla_mp_scale(const efla_prep *c, __local float *lower, __local const float *qk_rows,
                   __local const float *w_coef, __local const float *k_inv,
                   __local const float *q_factor, __global float *a_rows) {
    for (int idx = get_local_id(0); idx < EFLA_C * EFLA_C; idx += EFLA_WG) {
        const int r = idx / EFLA_C, m = idx % EFLA_C;
        lower[idx] = m < r ? w_coef[r] * k_inv[m] * lower[idx] : 0.0f;
        if (r < c->chunk.z)
            a_rows[idx] = m <= r ? q_factor[r] * k_inv[m] * qk_rows[r * EFLA_PAS + m] : 0.0f;
    }
}

__kernel __attribute__((reqd_work_group_size(EFLA_WG, 1, 1))) void
efla_chunk_prepare(__global const int4 *call, int table, __global const store_t *q,
                   __global const store_t *k, __global const store_t *v,
                   __global const store_t *beta, __global float *scratch) {
    __global const long *P = (__global const long *)call;
    __local float work[EFLA_MP_WORK];
    __local float *lower = work;                /* see EFLA_MP_LOWER */
    __local float *ainv = work + EFLA_MP_LOWER; /* raw Q K^T, then Ainv */

    __local float k_squares[EFLA_C], q_squares[EFLA_C];
    __local float w_coef[EFLA_C], u_coef[EFLA_C], k_inv[EFLA_C], q_factor[EFLA_C];
    __local long q_base[EFLA_C], k_base[EFLA_C], v_base[EFLA_C];
    EFLA_MMA_DECLARE

    const int lid = get_local_id(0);
    const efla_prep c = efla_prepare_locate(P, call, table);
    efla_prepare_bases(P, &c, q_base, k_base, v_base);
    barrier(CLK_LOCAL_MEM_FENCE);

    float4 kk[EFLA_MMA_PT], qk[EFLA_MMA_PT];
#pragma unroll
    for (int i = 0; i < EFLA_MMA_PT; ++i)
        kk[i] = qk[i] = 0.0f;
    float q_sum = 0.0f;
    __local ushort *kt = (__local ushort *)lower, *qt = kt + EFLA_C * EFLA_MP_KP;
    efla_mp_products(P, &c, q_base, k_base, q, k, kt, qt, kk, qk, &q_sum EFLA_MMA_ARG);
    barrier(CLK_LOCAL_MEM_FENCE); /* the tiles' last readers are done */
    efla_mp_spill(kk, qk, lower, ainv, k_squares);
    if (lid < EFLA_C) q_squares[lid] = q_sum;
    barrier(CLK_LOCAL_MEM_FENCE);
    efla_prepare_coefficients(P, &c, beta, scratch, k_squares, q_squares, w_coef, u_coef, k_inv,
                              q_factor);
    barrier(CLK_LOCAL_MEM_FENCE);
    efla_mp_scale(&c, lower, ainv, w_coef, k_inv, q_factor,
                  scratch + P[EFLA_P_SCRATCH_A] + c.row0 * EFLA_C);
    barrier(CLK_LOCAL_MEM_FENCE);

    efla_prepare_solve(lower, ainv, lower + EFLA_C * EFLA_C);

    /* Ainv in 16-bit halves; the apply's first barrier publishes them. */
    __local ushort *a16 = (__local ushort *)work, *a16_lo = a16 + EFLA_C * EFLA_MP_CP;
    __local ushort *bt = a16_lo + EFLA_C * EFLA_MP_CP, *bt_lo = bt + EFLA_C * EFLA_MP_CP;
    efla_mp_split_inverse(ainv, a16, a16_lo);
    efla_mp_apply(&c, k_base, P[EFLA_P_K + 4], c.dk, k, w_coef, a16, a16_lo, bt, bt_lo,
                  scratch + P[EFLA_P_SCRATCH_W] + c.row0 * c.dk EFLA_MMA_ARG);
    efla_mp_apply(&c, v_base, P[EFLA_P_V + 4], c.dv, v, u_coef, a16, a16_lo, bt, bt_lo,
                  scratch + P[EFLA_P_SCRATCH_U] + c.row0 * c.dv EFLA_MMA_ARG);
}
