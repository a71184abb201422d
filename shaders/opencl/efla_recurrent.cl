/*
 * Token-by-token recurrence (decode; ALGORITHM.md 2.1).
 *
 * One work-group of EFLA_WG = dvr * rsr items per (sequence, value head,
 * tile of dvr state columns); one fixed size keeps the number of kernel
 * variants a driver compiles at one. Item (jl, rg) holds column jl of the
 * tile, rows rg, rg + rsr, ... (at most EFLA_RMAX) of the state in
 * registers; row groups past Dk hold nothing. Per
 * token: S^T k, S^T q and the scalars k.k, q.q, k.q are reduced across the
 * row groups in local memory, then every item updates its rows, and
 *   o = scale (S_old^T q + alpha (k.q) u)  ==  scale S_new^T q.
 *
 * Local memory (`shared`): k and q rows (2 dk), partial sums
 * (2 rsr dvr) and scalar partials (3 rsr) floats.
 */
__kernel __attribute__((reqd_work_group_size(EFLA_WG, 1, 1))) void
efla_recurrent(__global const int4 *call, int table, __global const store_t *q,
               __global const store_t *k, __global const store_t *v, __global const store_t *beta,
               __global store_t *out, __global const float *s0, __global float *s1, int dvr,
               int rsr, __local float *shared) {
    __global const long *P = (__global const long *)call;
    const int lid = get_local_id(0);
    const int jl = lid % dvr, rg = lid / dvr;
    const int dk = (int)P[EFLA_P_DK], dv = (int)P[EFLA_P_DV];
    const int value_heads = (int)P[EFLA_P_VALUE_HEADS], heads = (int)P[EFLA_P_HEADS];
    const int flags = (int)P[EFLA_P_FLAGS];
    const float scale = as_float((uint)P[EFLA_P_SCALE]);
    const int tiles = (dv + dvr - 1) / dvr;
    const int group = get_group_id(0);
    const int tile = group % tiles, hv = (group / tiles) % value_heads;
    const int4 seq = call[table + group / tiles / value_heads];
    const int h = hv / (value_heads / heads);
    const int j = tile * dvr + jl;
    const bool active = j < dv;

    __local float *kl = shared;
    __local float *ql = kl + dk;
    __local float *partial = ql + dk;                 /* [rsr][dvr][2] */
    __local float *scalars = partial + 2 * rsr * dvr; /* [rsr][3] */

    /* State addressing read once: stores to `out` or s1 could alias the
     * parameter block as far as the compiler knows, so P is not re-read
     * inside the loops. */
    const long s0_column = efla_state_index(P, EFLA_P_S0, seq.w, hv, 0, j),
               s0_row = P[EFLA_P_S0 + 3];
    const long s1_column = efla_state_index(P, EFLA_P_S1, seq.w, hv, 0, j),
               s1_row = P[EFLA_P_S1 + 3];
    float S[EFLA_RMAX];
#pragma unroll
    for (int r = 0; r < EFLA_RMAX; ++r) {
        const int i = rg + rsr * r;
        S[r] =
            (flags & EFLA_PF_INITIAL_STATE) && active && i < dk ? s0[s0_column + i * s0_row] : 0.0f;
    }

    const long q_step = P[EFLA_P_Q + 4], k_step = P[EFLA_P_K + 4];
    const long q_origin = efla_row(P, EFLA_P_Q, seq.x, 0, h), q_t = P[EFLA_P_Q + 2];
    const long k_origin = efla_row(P, EFLA_P_K, seq.x, 0, h), k_t = P[EFLA_P_K + 2];
    const long v_column = efla_row(P, EFLA_P_V, seq.x, 0, hv) + j * P[EFLA_P_V + 4],
               v_t = P[EFLA_P_V + 2];
    const long beta_origin = efla_row(P, EFLA_P_BETA, seq.x, 0, hv), beta_t = P[EFLA_P_BETA + 2];
    const long out_column = efla_row(P, EFLA_P_OUT, seq.x, 0, hv) + j * P[EFLA_P_OUT + 4],
               out_t = P[EFLA_P_OUT + 2];
    for (int t = seq.y; t < seq.y + seq.z; ++t) {
        const long q_row = q_origin + t * q_t, k_row = k_origin + t * k_t;
        for (int i = lid; i < dk; i += EFLA_WG) {
            kl[i] = efla_load(k, k_row + i * k_step);
            ql[i] = efla_load(q, q_row + i * q_step);
        }
        const float v_j = active ? efla_load(v, v_column + t * v_t) : 0.0f;
        const float b_t = efla_load(beta, beta_origin + t * beta_t);
        barrier(CLK_LOCAL_MEM_FENCE);

        float sk = 0.0f, sq = 0.0f, kk = 0.0f, qq = 0.0f, kq = 0.0f;
#pragma unroll
        for (int r = 0; r < EFLA_RMAX; ++r) {
            const int i = rg + rsr * r;
            if (i < dk) {
                const float ki = kl[i], qi = ql[i];
                sk += S[r] * ki;
                sq += S[r] * qi;
                kk += ki * ki;
                qq += qi * qi;
                kq += ki * qi;
            }
        }
        partial[2 * (rg * dvr + jl)] = sk;
        partial[2 * (rg * dvr + jl) + 1] = sq;
        if (jl == 0) {
            scalars[3 * rg] = kk;
            scalars[3 * rg + 1] = qq;
            scalars[3 * rg + 2] = kq;
        }
        barrier(CLK_LOCAL_MEM_FENCE);

        sk = sq = kk = qq = kq = 0.0f;
        for (int g = 0; g < min(rsr, dk); ++g) {
            sk += partial[2 * (g * dvr + jl)];
            sq += partial[2 * (g * dvr + jl) + 1];
            kk += scalars[3 * g];
            qq += scalars[3 * g + 1];
            kq += scalars[3 * g + 2];
        }
        const float fk = efla_l2_factor(kk, flags & EFLA_PF_L2NORM_K);
        const float fq = efla_l2_factor(qq, flags & EFLA_PF_L2NORM_Q);
        const float alpha = efla_step(b_t, fk * fk * kk, flags & EFLA_PF_DELTA).x;
        const float u = v_j - fk * sk;
        const float write = alpha * fk * u;
#pragma unroll
        for (int r = 0; r < EFLA_RMAX; ++r) {
            const int i = rg + rsr * r;
            if (i < dk) S[r] += write * kl[i];
        }
        const float o = scale * fq * (sq + alpha * fk * kq * u);
        if (rg == 0 && active) efla_store(out, out_column + t * out_t, o);
        barrier(CLK_LOCAL_MEM_FENCE); /* kl, ql and the partials are reused */
    }

    if (flags & EFLA_PF_FINAL_STATE) {
#pragma unroll
        for (int r = 0; r < EFLA_RMAX; ++r) {
            const int i = rg + rsr * r;
            if (active && i < dk) s1[s1_column + i * s1_row] = S[r];
        }
    }
}
