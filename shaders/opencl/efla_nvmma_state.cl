/*
 * Chunked forward, phase 2 on tensor cores (the nvmma path), after the
 * CUDA mma state scan (shaders/cuda/mma_state.cuh, unfused): one
 * work-group of PARTS x GROUPS warps per (sequence, value head, 16 GROUPS
 * value columns), serial over the sequence's chunks. The state is held
 * transposed, S^T [Dv][Dk], in f32 mma accumulators: group w owns 16 rows
 * (value columns), its part q the k16 blocks q, q + PARTS, ... of them, so
 * each warp's chain per chunk is 1 / PARTS of Dk. Per chunk:
 *   V'^T = U^T - S^T W^T   A = S^T (two n8 accumulator tiles are one k16
 *                          A fragment); each part's partial sum goes
 *                          through local memory, and part q finishes
 *                          position blocks 4/PARTS q ..
 *   S^T += V'^T K^         A = V'^T, from the exchange
 * S_c^T and V'^T go to the scratch (A order) for the output kernel. The
 * chunk operands (W, K^T, U^T from the prepare, in fragment order: one
 * 16-byte load per lane and fragment pair) come straight from global
 * memory into registers, each issued right after its last use, a chunk
 * ahead: W after the W product, U^T after the correction, K^T after the
 * update. Two barriers per chunk. A template: efla_forward.cl includes it
 * per (EFLA_NS_DK, EFLA_NS_GROUPS, EFLA_NS_PARTS), making
 * efla_nvmma_state_k<DK>_g<GROUPS>_p<PARTS>.
 */
#ifndef EFLA_NS_SHARED
#define EFLA_NS_SHARED
#define EFLA_NS_CAT_(a, b, c, d, e, f, g) a##b##c##d##e##f##g
#define EFLA_NS_CAT(a, b, c, d, e, f, g) EFLA_NS_CAT_(a, b, c, d, e, f, g)

/* The two values of a 32-bit word of 16-bit halves, minus `sub`. */
float2 efla_ns_less(uint word, float2 sub) {
    return (float2)(efla_half_value(word & 0xffffu), efla_half_value(word >> 16)) - sub;
}
#endif

#define EFLA_NS_FN(name) EFLA_NS_CAT(name, _k, EFLA_NS_DK, _g, EFLA_NS_GROUPS, _p, EFLA_NS_PARTS)
#define EFLA_NS_ITEMS (32 * EFLA_NS_PARTS * EFLA_NS_GROUPS)
#define EFLA_NS_KB (EFLA_NS_DK / 16 / EFLA_NS_PARTS) /* k blocks of S^T per part, at most */
#define EFLA_NS_BLOCKS (EFLA_C / 16 / EFLA_NS_PARTS) /* position blocks a part finishes */
#define EFLA_NS_PB (EFLA_C / 16)                     /* position blocks of a chunk */

/* W's B fragments for the part's k blocks (all positions), zero past Dk. */
EFLA_NV_INLINE void EFLA_NS_FN(efla_ns_fetch_w)(__global const uint *w, int dkp, int q,
                                                uint4 wf[EFLA_NS_KB][EFLA_NS_PB]) {
    EFLA_MMA_UNROLL
    for (int i = 0; i < EFLA_NS_KB; ++i) {
        const int kb = q + EFLA_NS_PARTS * i;
        EFLA_MMA_UNROLL
        for (int pp = 0; pp < EFLA_NS_PB; ++pp)
            wf[i][pp] = 16 * kb < dkp ? efla_piece(w, kb * EFLA_NS_PB + pp) : (uint4)(0);
    }
}

/* K^T's B fragments for the part's k blocks of S^T (all positions). */
EFLA_NV_INLINE void EFLA_NS_FN(efla_ns_fetch_k)(__global const uint *kt, int dkp, int q,
                                                uint4 kf[EFLA_NS_KB][EFLA_NS_PB]) {
    EFLA_MMA_UNROLL
    for (int i = 0; i < EFLA_NS_KB; ++i) {
        const int kb = q + EFLA_NS_PARTS * i;
        EFLA_MMA_UNROLL
        for (int pb = 0; pb < EFLA_NS_PB; ++pb)
            kf[i][pb] = 16 * kb < dkp ? efla_piece(kt, pb * (dkp / 16) + kb) : (uint4)(0);
    }
}

/* U^T's pieces of the group's rows (row block jb) and the part's
 * position blocks; zero for a group past Dv. */
EFLA_NV_INLINE void EFLA_NS_FN(efla_ns_fetch_u)(__global const uint *u, int jb, bool live, int q,
                                                uint4 uf[EFLA_NS_BLOCKS]) {
    EFLA_MMA_UNROLL
    for (int b = 0; b < EFLA_NS_BLOCKS; ++b)
        uf[b] = live ? efla_piece(u, jb * EFLA_NS_PB + EFLA_NS_BLOCKS * q + b) : (uint4)(0);
}

/* v = the part's partial S^T W^T (n8 tiles of positions); S_c^T's k
 * blocks to `ht` from the same A fragments. */
EFLA_NV_INLINE void EFLA_NS_FN(efla_ns_times_w)(const float4 s[2 * EFLA_NS_KB],
                                                const uint4 wf[EFLA_NS_KB][EFLA_NS_PB],
                                                __global uint *ht, int jb, bool live, int dkp,
                                                int q, float4 v[2 * EFLA_NS_PB] EFLA_MMA_PARAM) {
    EFLA_MMA_UNROLL
    for (int t = 0; t < 2 * EFLA_NS_PB; ++t)
        v[t] = 0.0f;
    EFLA_MMA_UNROLL
    for (int i = 0; i < EFLA_NS_KB; ++i) {
        const int kb = q + EFLA_NS_PARTS * i;
        EFLA_MMA_SKIP(16 * kb >= dkp)
        const uint4 a = efla_acc_to_a(s[2 * i], s[2 * i + 1]);
        if (live && 16 * kb < dkp) efla_put_piece(ht, jb * (dkp / 16) + kb, a);
        EFLA_MMA_UNROLL
        for (int pp = 0; pp < EFLA_NS_PB; ++pp) {
            v[2 * pp] = efla_mma(v[2 * pp], a, wf[i][pp].xy EFLA_MMA_ARG);
            v[2 * pp + 1] = efla_mma(v[2 * pp + 1], a, wf[i][pp].zw EFLA_MMA_ARG);
        }
    }
}

/* The part's position blocks of V'^T = U^T - (the parts' partials summed),
 * as A fragments to the group's exchange `va` and to the scratch `vt`. */
EFLA_NV_INLINE void EFLA_NS_FN(efla_ns_correct)(__local const float4 *partial,
                                                const uint4 uf[EFLA_NS_BLOCKS], __local uint4 *va,
                                                __global uint *vt, int jb, bool live, int q) {
    const int lane = get_local_id(0) % 32;
    EFLA_MMA_UNROLL
    for (int b = 0; b < EFLA_NS_BLOCKS; ++b) {
        const int pb = EFLA_NS_BLOCKS * q + b;
        float4 lo = 0.0f, hi = 0.0f; /* the block's n8 tiles 2 pb, 2 pb + 1 */
        for (int w = 0; w < EFLA_NS_PARTS; ++w) {
            lo += partial[(w * 2 * EFLA_NS_PB + 2 * pb) * 32 + lane];
            hi += partial[(w * 2 * EFLA_NS_PB + 2 * pb + 1) * 32 + lane];
        }
        const uint4 u = uf[b]; /* a0..a3: tile 2 pb rows g, g + 8, then tile 2 pb + 1 */
        const float4 even = (float4)(efla_ns_less(u.x, lo.xy), efla_ns_less(u.y, lo.zw));
        const float4 odd = (float4)(efla_ns_less(u.z, hi.xy), efla_ns_less(u.w, hi.zw));
        const uint4 a = efla_acc_to_a(even, odd);
        va[pb * 32 + lane] = a;
        if (live) efla_put_piece(vt, jb * EFLA_NS_PB + pb, a);
    }
}

/* s += V'^T K^ over the part's k blocks. */
EFLA_NV_INLINE void EFLA_NS_FN(efla_ns_update)(__local const uint4 *va,
                                               const uint4 kf[EFLA_NS_KB][EFLA_NS_PB], int dkp,
                                               int q, float4 s[2 * EFLA_NS_KB] EFLA_MMA_PARAM) {
    const int lane = get_local_id(0) % 32;
    uint4 a[EFLA_NS_PB];
    EFLA_MMA_UNROLL
    for (int pb = 0; pb < EFLA_NS_PB; ++pb)
        a[pb] = va[pb * 32 + lane];
    EFLA_MMA_UNROLL
    for (int i = 0; i < EFLA_NS_KB; ++i) {
        EFLA_MMA_SKIP(16 * (q + EFLA_NS_PARTS * i) >= dkp)
        EFLA_MMA_UNROLL
        for (int pb = 0; pb < EFLA_NS_PB; ++pb) {
            s[2 * i] = efla_mma(s[2 * i], a[pb], kf[i][pb].xy EFLA_MMA_ARG);
            s[2 * i + 1] = efla_mma(s[2 * i + 1], a[pb], kf[i][pb].zw EFLA_MMA_ARG);
        }
    }
}

/* The state element (i, j) of the lane's accumulator u, e. */
int2 EFLA_NS_FN(efla_ns_at)(int u, int e, int q, int row) {
    const int i = 16 * (q + EFLA_NS_PARTS * (u / 2)) + 8 * (u % 2) + 2 * (get_local_id(0) % 4);
    return (int2)(i + (e & 1), row + (e >= 2 ? 8 : 0));
}

__kernel __attribute__((reqd_work_group_size(EFLA_NS_ITEMS, 1, 1))) void
EFLA_NS_FN(efla_nvmma_state)(__global const int4 *call, int table, int first_chunks,
                             __global const float *s0, __global float *s1, __global uint *scratch) {
    __global const long *P = (__global const long *)call;
    /* per group: the parts' partials [PARTS][8 tiles][32 lanes], V'^T [4][32] */
    __local float4 partial[EFLA_NS_GROUPS * EFLA_NS_PARTS * 2 * EFLA_NS_PB * 32];
    __local uint4 va[EFLA_NS_GROUPS * EFLA_NS_PB * 32];
    EFLA_MMA_DECLARE(EFLA_NS_ITEMS)

    const int lid = get_local_id(0), warp = lid / 32, lane = lid % 32;
    const int group = warp / EFLA_NS_PARTS, q = warp % EFLA_NS_PARTS;
    const int dk = (int)P[EFLA_P_DK], dv = (int)P[EFLA_P_DV];
    const int dkp = EFLA_NV_PAD16(dk), dvp = EFLA_NV_PAD16(dv);
    const int value_heads = (int)P[EFLA_P_VALUE_HEADS], flags = (int)P[EFLA_P_FLAGS];
    const int tiles = (dv + 16 * EFLA_NS_GROUPS - 1) / (16 * EFLA_NS_GROUPS);
    const int index = get_group_id(0), hv = (index / tiles) % value_heads;
    const int sequence = index / tiles / value_heads;
    const int4 seq = call[table + sequence];
    const long chunk0 = call[first_chunks + sequence].x;
    /* The group's rows of S^T: row block jb, value columns row, row + 8. */
    const int jb = (index % tiles) * EFLA_NS_GROUPS + group, row = 16 * jb + lane / 4;
    const bool live = jb < dvp / 16;
    const long words = EFLA_NV_TOTAL(dkp, dvp) / 2, step = words * value_heads;
    __global uint *block = scratch + (chunk0 * value_heads + hv) * words;
    __local float4 *my_partials = partial + group * EFLA_NS_PARTS * 2 * EFLA_NS_PB * 32;
    __local uint4 *my_va = va + group * EFLA_NS_PB * 32;

    float4 s[2 * EFLA_NS_KB];
    EFLA_MMA_UNROLL
    for (int u = 0; u < 2 * EFLA_NS_KB; ++u) {
        float x[4];
        for (int e = 0; e < 4; ++e) {
            const int2 at = EFLA_NS_FN(efla_ns_at)(u, e, q, row);
            x[e] = (flags & EFLA_PF_INITIAL_STATE) && at.x < dk && at.y < dv
                       ? s0[efla_state_index(P, EFLA_P_S0, seq.w, hv, at.x, at.y)]
                       : 0.0f;
        }
        s[u] = (float4)(x[0], x[1], x[2], x[3]);
    }

    const int chunks = (seq.z + EFLA_C - 1) / EFLA_C;
    uint4 wf[EFLA_NS_KB][EFLA_NS_PB], kf[EFLA_NS_KB][EFLA_NS_PB], uf[EFLA_NS_BLOCKS];
    if (chunks > 0) {
        EFLA_NS_FN(efla_ns_fetch_w)(block + EFLA_NV_W(dkp, dvp) / 2, dkp, q, wf);
        EFLA_NS_FN(efla_ns_fetch_k)(block + EFLA_NV_KT(dkp, dvp) / 2, dkp, q, kf);
        EFLA_NS_FN(efla_ns_fetch_u)(block + EFLA_NV_U(dkp, dvp) / 2, jb, live, q, uf);
    }
    for (int c = 0; c < chunks; ++c, block += step) {
        const bool more = c + 1 < chunks;
        float4 v[2 * EFLA_NS_PB];
        EFLA_NS_FN(efla_ns_times_w)
        (s, wf, block + EFLA_NV_HT(dkp, dvp) / 2, jb, live, dkp, q, v EFLA_MMA_ARG);
        if (more) EFLA_NS_FN(efla_ns_fetch_w)(block + step + EFLA_NV_W(dkp, dvp) / 2, dkp, q, wf);
        EFLA_MMA_UNROLL
        for (int t = 0; t < 2 * EFLA_NS_PB; ++t)
            my_partials[(q * 2 * EFLA_NS_PB + t) * 32 + lane] = v[t];
        barrier(CLK_LOCAL_MEM_FENCE); /* the partials are complete */
        EFLA_NS_FN(efla_ns_correct)
        (my_partials, uf, my_va, block + EFLA_NV_VT(dkp, dvp) / 2, jb, live, q);
        if (more)
            EFLA_NS_FN(efla_ns_fetch_u)(block + step + EFLA_NV_U(dkp, dvp) / 2, jb, live, q, uf);
        barrier(CLK_LOCAL_MEM_FENCE); /* V'^T is complete */
        EFLA_NS_FN(efla_ns_update)(my_va, kf, dkp, q, s EFLA_MMA_ARG);
        if (more) EFLA_NS_FN(efla_ns_fetch_k)(block + step + EFLA_NV_KT(dkp, dvp) / 2, dkp, q, kf);
    }

    if (!(flags & EFLA_PF_FINAL_STATE)) return;
    EFLA_MMA_UNROLL
    for (int u = 0; u < 2 * EFLA_NS_KB; ++u)
        for (int e = 0; e < 4; ++e) {
            const int2 at = EFLA_NS_FN(efla_ns_at)(u, e, q, row);
            if (at.x < dk && at.y < dv)
                s1[efla_state_index(P, EFLA_P_S1, seq.w, hv, at.x, at.y)] =
                    efla_mma_element(s[u], e);
        }
}

#undef EFLA_NS_FN
#undef EFLA_NS_ITEMS
#undef EFLA_NS_KB
#undef EFLA_NS_BLOCKS
#undef EFLA_NS_PB
