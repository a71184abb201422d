/*
 * Chunked forward, phase 2 on tensor cores (the nvmma path): the state
 * scan of efla_chunk_state.cl (same scratch in, same H and V' out, f32)
 * with the state held transposed, S^T [Dv][Dk], in the f32 accumulators
 * of mma.sync. A template: efla_forward.cl includes it once per
 * (EFLA_NS_WARPS, EFLA_NS_DK), making efla_nvmma_state<WARPS>_<DK>.
 *
 * One work-group of WARPS warps per (sequence, value head, 16 WARPS value
 * columns); warp w owns 16 whole rows of S^T (value columns 16 w..) over
 * all of Dk (DK is the largest Dk the variant holds: 8-column tiles of
 * state[DK / 8], statically indexed, loops cut at the run-time Dk). Per
 * chunk, with W [C][Dk] and the raw keys K [C][Dk] staged as 16-bit tiles
 * in local memory (all warps share them):
 *   H[c] = S                         from the registers, f32
 *   V'^T = U^T - S^T W^T             A = S^T (the accumulators, packed),
 *                                    B(k = dk, n = pos) = W[pos][dk]
 *   S^T += (V' / |k|)^T K            A = V'^T scaled by 1/|k| per position
 *                                    (the accumulators, packed),
 *                                    B(k = pos, n = dk) = K^T[dk][pos]
 * The D fragment of n8 tiles 2j, 2j + 1 is the A fragment of k16 block j
 * (efla_ns_frag), so S and V' never leave the warp: no barrier between the
 * products, one barrier pair per staged tile (W, then K^T in the same
 * local area: 48 KiB holds no more). The keys are exact in 16 bits and
 * 1/|k| is folded into V'; S, W and V' / |k| are split into hi + lo
 * halves (efla_split_bits) as in the other nvmma kernels: V' = U - W S
 * cancels where the erase is large (Dk = 1 failed the bf16 bar with one
 * rounding), so W S takes Shi Whi + Shi Wlo + Slo Whi and the update
 * Vhi K + Vlo K. S stays f32 in the accumulators (DESIGN.md: the state is
 * rounded only as an operand). Dk is staged EFLA_NS_KS columns at a time
 * (Dk = 256 takes two passes per product).
 */
#ifndef EFLA_NS_SHARED
#define EFLA_NS_SHARED
#define EFLA_NS_KS 128                       /* Dk columns of W (rows of K^T) staged at a time */
#define EFLA_NS_WP (EFLA_NS_KS + 8)          /* W tile [C][WP] pitch, 16-bit elements */
#define EFLA_NS_KP (EFLA_C + 8)              /* K^T tile [KS][KP] pitch, 16-bit elements */
#define EFLA_NS_PT (EFLA_C / 8)              /* n8 tiles of V'^T: chunk positions */
#define EFLA_NS_LO (EFLA_C * EFLA_NS_WP / 2) /* words from the W hi tile to the lo one */
/* The local tile area (words): W hi + lo, or K^T. */
#define EFLA_NS_AREA EFLA_MAX2(2 * EFLA_NS_LO, EFLA_NS_KS * EFLA_NS_KP / 2)
#define EFLA_MIN2(a, b) ((a) < (b) ? (a) : (b))
#ifdef EFLA_NVMMA_EMULATE /* small code: PoCL's compile time grows fast with unrolling */
#define EFLA_NS_UNROLL _Pragma("unroll 1")
#define EFLA_NS_INLINE
#else
/* Inlined and unrolled: the register arrays stay registers. */
#define EFLA_NS_UNROLL _Pragma("unroll")
#define EFLA_NS_INLINE __attribute__((always_inline))
#endif

/* Where a sequence's rows are. */
typedef struct efla_ns_src {
    __global const float *w, *c;
    __global float *u;
    __global const store_t *k;
    long k_origin, k_row, k_step;
    int dk, dv, t0, length;
    bool k_quads; /* k rows move as aligned ushort4 (unit step, 4-element aligned) */
} efla_ns_src;

/* Two values as 32-bit words of 16-bit halves, the first in the low half:
 * .x the rounded values, .y the rest (efla_split_bits). */
uint2 efla_ns_pack(float low, float high) {
    const ushort2 a = efla_split_bits(low), b = efla_split_bits(high);
    return (uint2)((uint)a.x | ((uint)b.x << 16), (uint)a.y | ((uint)b.y << 16));
}

/* The A fragment of a k16 block from the D fragments of its two n8 tiles,
 * split into hi and lo halves. */
void efla_ns_frag(float4 even, float4 odd, uint4 *hi, uint4 *lo) {
    const uint2 a0 = efla_ns_pack(even.x, even.y), a1 = efla_ns_pack(even.z, even.w);
    const uint2 a2 = efla_ns_pack(odd.x, odd.y), a3 = efla_ns_pack(odd.z, odd.w);
    *hi = (uint4)(a0.x, a1.x, a2.x, a3.x);
    *lo = (uint4)(a0.y, a1.y, a2.y, a3.y);
}

float4 efla_ns_set(float4 d, int e, float x) {
    if (e == 0) d.x = x;
    if (e == 1) d.y = x;
    if (e == 2) d.z = x;
    if (e == 3) d.w = x;
    return d;
}
#endif

#define EFLA_NS_CAT_(a, b, c, d) a##b##c##d
#define EFLA_NS_CAT(a, b, c, d) EFLA_NS_CAT_(a, b, c, d)
#define EFLA_NS_NAME EFLA_NS_CAT(efla_nvmma_state, EFLA_NS_WARPS, _, EFLA_NS_DK)
#define EFLA_NS_FN(name) EFLA_NS_CAT(name, EFLA_NS_WARPS, _, EFLA_NS_DK)
#define EFLA_NS_WG (32 * EFLA_NS_WARPS)
#define EFLA_NS_NT (EFLA_NS_DK / 8)              /* n8 tiles of S^T per warp */
#define EFLA_NS_PIECES (EFLA_NS_DK / EFLA_NS_KS) /* staged passes over Dk, at most */
#if EFLA_NS_PIECES > 2
#error "the nvmma state scan stages Dk in at most two passes"
#endif
/* Loads per batch: all in flight before the batch is stored. */
#define EFLA_NS_QB EFLA_MIN2(16, EFLA_C *EFLA_NS_KS / 4 / EFLA_NS_WG)

/* W rows of the chunk, columns pc KS.. of Dk, as 16-bit hi and lo tiles
 * [C][WP] (zero past the chunk and past Dk), lo after hi. */
EFLA_NS_INLINE void EFLA_NS_FN(efla_ns_put_w)(const efla_ns_src *s, int pc, __local uint *wt) {
    const int lid = get_local_id(0), d0 = pc * EFLA_NS_KS;
    if (s->dk % 4 == 0) { /* rows of float4: W rows are 16-byte aligned */
        for (int base = 0; base < EFLA_C * EFLA_NS_KS / 4; base += EFLA_NS_WG * EFLA_NS_QB) {
            float4 x[EFLA_NS_QB];
            EFLA_NS_UNROLL
            for (int n = 0; n < EFLA_NS_QB; ++n) {
                const int idx = base + lid + n * EFLA_NS_WG, r = idx / (EFLA_NS_KS / 4);
                const int d = d0 + 4 * (idx % (EFLA_NS_KS / 4));
                x[n] = r < s->length && d < s->dk ? vload4(0, s->w + (long)(s->t0 + r) * s->dk + d)
                                                  : 0.0f;
            }
            EFLA_NS_UNROLL
            for (int n = 0; n < EFLA_NS_QB; ++n) {
                const int idx = base + lid + n * EFLA_NS_WG, r = idx / (EFLA_NS_KS / 4);
                const int at = (r * EFLA_NS_WP + 4 * (idx % (EFLA_NS_KS / 4))) / 2;
                const uint2 a = efla_ns_pack(x[n].x, x[n].y), b = efla_ns_pack(x[n].z, x[n].w);
                wt[at] = a.x;
                wt[at + 1] = b.x;
                wt[EFLA_NS_LO + at] = a.y;
                wt[EFLA_NS_LO + at + 1] = b.y;
            }
        }
        return;
    }
    __local ushort *tile = (__local ushort *)wt, *tile_lo = tile + 2 * EFLA_NS_LO;
    for (int idx = lid; idx < EFLA_C * EFLA_NS_KS; idx += EFLA_NS_WG) {
        const int r = idx / EFLA_NS_KS, col = idx % EFLA_NS_KS, d = d0 + col;
        const float x = r < s->length && d < s->dk ? s->w[(long)(s->t0 + r) * s->dk + d] : 0.0f;
        const ushort2 bits = efla_split_bits(x);
        tile[r * EFLA_NS_WP + col] = bits.x;
        tile_lo[r * EFLA_NS_WP + col] = bits.y;
    }
}

/* Raw k rows of the chunk, columns pc KS.. of Dk, transposed: K^T [KS][KP]
 * (zero past the chunk and past Dk). */
EFLA_NS_INLINE void EFLA_NS_FN(efla_ns_put_k)(const efla_ns_src *s, int pc,
                                              __local uint *kt_words) {
    const int lid = get_local_id(0), d0 = pc * EFLA_NS_KS;
    __local ushort *kt = (__local ushort *)kt_words;
    if (s->k_quads) {
        __global const ushort *k = (__global const ushort *)s->k;
        for (int base = 0; base < EFLA_C * EFLA_NS_KS / 4; base += EFLA_NS_WG * EFLA_NS_QB) {
            ushort4 x[EFLA_NS_QB];
            EFLA_NS_UNROLL
            for (int n = 0; n < EFLA_NS_QB; ++n) {
                const int idx = base + lid + n * EFLA_NS_WG, r = idx / (EFLA_NS_KS / 4);
                const int d = d0 + 4 * (idx % (EFLA_NS_KS / 4));
                x[n] =
                    r < s->length && d < s->dk
                        ? *(__global const ushort4 *)(k + s->k_origin + (s->t0 + r) * s->k_row + d)
                        : (ushort4)(0);
            }
            EFLA_NS_UNROLL
            for (int n = 0; n < EFLA_NS_QB; ++n) {
                const int idx = base + lid + n * EFLA_NS_WG, r = idx / (EFLA_NS_KS / 4);
                const int col = 4 * (idx % (EFLA_NS_KS / 4));
                kt[col * EFLA_NS_KP + r] = x[n].x;
                kt[(col + 1) * EFLA_NS_KP + r] = x[n].y;
                kt[(col + 2) * EFLA_NS_KP + r] = x[n].z;
                kt[(col + 3) * EFLA_NS_KP + r] = x[n].w;
            }
        }
        return;
    }
    for (int idx = lid; idx < EFLA_C * EFLA_NS_KS; idx += EFLA_NS_WG) {
        const int r = idx / EFLA_NS_KS, col = idx % EFLA_NS_KS, d = d0 + col;
        kt[col * EFLA_NS_KP + r] =
            r < s->length && d < s->dk
                ? efla_raw_bits(s->k, s->k_origin + (s->t0 + r) * s->k_row + d * s->k_step)
                : 0;
    }
}

/* The warp's S^T rows (value columns j_low, j_low + 8) from or to a state
 * tensor at `slot` (s0 or s1). */
EFLA_NS_INLINE void EFLA_NS_FN(efla_ns_load_state)(__global const long *P, __global const float *s0,
                                                   int n, int hv, int dk, int dv, int j_low,
                                                   float4 state[EFLA_NS_NT]) {
    const int c = get_local_id(0) % 4;
    EFLA_NS_UNROLL
    for (int t = 0; t < EFLA_NS_NT; ++t)
        EFLA_NS_UNROLL
    for (int e = 0; e < 4; ++e) {
        const int i = 8 * t + 2 * c + (e & 1), j = j_low + (e >= 2 ? 8 : 0);
        const float x =
            s0 && i < dk && j < dv ? s0[efla_state_index(P, EFLA_P_S0, n, hv, i, j)] : 0.0f;
        state[t] = efla_ns_set(state[t], e, x);
    }
}

/* The warp's columns of the state S [dk][dv] to `to`, element (i, j) at
 * to[i * si + j * sj]: H[c] (the chunk's slice, si = dv, sj = 1) and the
 * final state (the tensor's strides, `to` at its (n, hv) slice). */
EFLA_NS_INLINE void EFLA_NS_FN(efla_ns_write)(__global float *to, long si, long sj, int dk, int dv,
                                              int j_low, const float4 state[EFLA_NS_NT]) {
    const int c = get_local_id(0) % 4;
    EFLA_NS_UNROLL
    for (int t = 0; t < EFLA_NS_NT; ++t) {
        if (8 * t >= dk) break;
        EFLA_NS_UNROLL
        for (int e = 0; e < 4; ++e) {
            const int i = 8 * t + 2 * c + (e & 1), j = j_low + (e >= 2 ? 8 : 0);
            if (i < dk && j < dv) to[i * si + j * sj] = efla_mma_element(state[t], e);
        }
    }
}

/* U^T for the warp's V'^T fragments (zero past the chunk and Dv). */
EFLA_NS_INLINE void EFLA_NS_FN(efla_ns_fetch_u)(const efla_ns_src *s, int j_low,
                                                float4 un[EFLA_NS_PT]) {
    const int c = get_local_id(0) % 4;
    EFLA_NS_UNROLL
    for (int p = 0; p < EFLA_NS_PT; ++p)
        EFLA_NS_UNROLL
    for (int e = 0; e < 4; ++e) {
        const int pos = 8 * p + 2 * c + (e & 1), j = j_low + (e >= 2 ? 8 : 0);
        const float x = pos < s->length && j < s->dv ? s->u[(long)(s->t0 + pos) * s->dv + j] : 0.0f;
        un[p] = efla_ns_set(un[p], e, x);
    }
}

/* V'^T = U^T - (S^T W^T) into vt; V' over U in scratch. */
EFLA_NS_INLINE void EFLA_NS_FN(efla_ns_finish_v)(const efla_ns_src *s, int j_low,
                                                 const float4 un[EFLA_NS_PT],
                                                 float4 vt[EFLA_NS_PT]) {
    const int c = get_local_id(0) % 4;
    EFLA_NS_UNROLL
    for (int p = 0; p < EFLA_NS_PT; ++p) {
        vt[p] = un[p] - vt[p];
        EFLA_NS_UNROLL
        for (int e = 0; e < 4; ++e) {
            const int pos = 8 * p + 2 * c + (e & 1), j = j_low + (e >= 2 ? 8 : 0);
            if (pos < s->length && j < s->dv)
                s->u[(long)(s->t0 + pos) * s->dv + j] = efla_mma_element(vt[p], e);
        }
    }
}

/* vt += S^T W^T over Dk columns pc KS.. (pc a constant: the state tiles
 * stay statically indexed); the chunk's 1/|k| into k_inv with piece 0. */
EFLA_NS_INLINE void EFLA_NS_FN(efla_ns_ws)(const efla_ns_src *s, int pc, __local uint *stage,
                                           __local float *k_inv, const float4 state[EFLA_NS_NT],
                                           float4 vt[EFLA_NS_PT] EFLA_MMA_PARAM) {
    const int lid = get_local_id(0);
    __local const ushort *w_hi = (__local const ushort *)stage, *w_lo = w_hi + 2 * EFLA_NS_LO;
    barrier(CLK_LOCAL_MEM_FENCE);
    EFLA_NS_FN(efla_ns_put_w)(s, pc, stage);
    if (pc == 0)
        for (int r = lid; r < EFLA_C; r += EFLA_NS_WG)
            k_inv[r] = r < s->length ? s->c[(long)(s->t0 + r) * 2 + 1] : 0.0f;
    barrier(CLK_LOCAL_MEM_FENCE);
    EFLA_MMA_UNROLL
    for (int kb = 0; kb < EFLA_NS_KS / 16; ++kb) {
        const int b16 = pc * (EFLA_NS_KS / 16) + kb;
        if (16 * b16 >= s->dk) break;
        uint4 a, a_lo;
        efla_ns_frag(state[2 * b16], state[2 * b16 + 1], &a, &a_lo);
        EFLA_MMA_UNROLL
        for (int p = 0; p < EFLA_NS_PT; ++p) {
            const uint2 b = efla_frag_b(w_hi, EFLA_NS_WP, 8 * p, 16 * kb);
            const uint2 b_lo = efla_frag_b(w_lo, EFLA_NS_WP, 8 * p, 16 * kb);
            vt[p] = efla_mma(vt[p], a, b EFLA_MMA_ARG);
            vt[p] = efla_mma(vt[p], a, b_lo EFLA_MMA_ARG);
            vt[p] = efla_mma(vt[p], a_lo, b EFLA_MMA_ARG);
        }
    }
}

/* S^T += (V' / |k|)^T K for Dk columns pc KS.. (pc a constant). */
EFLA_NS_INLINE void EFLA_NS_FN(efla_ns_update)(const efla_ns_src *s, int pc, __local uint *stage,
                                               const uint4 va[EFLA_C / 16],
                                               const uint4 va_lo[EFLA_C / 16],
                                               float4 state[EFLA_NS_NT] EFLA_MMA_PARAM) {
    barrier(CLK_LOCAL_MEM_FENCE);
    EFLA_NS_FN(efla_ns_put_k)(s, pc, stage);
    barrier(CLK_LOCAL_MEM_FENCE);
    EFLA_MMA_UNROLL
    for (int tt = 0; tt < EFLA_NS_KS / 8; ++tt) {
        const int t = pc * (EFLA_NS_KS / 8) + tt;
        if (8 * t >= s->dk) break;
        EFLA_MMA_UNROLL
        for (int q = 0; q < EFLA_C / 16; ++q) {
            const uint2 b = efla_frag_b((__local const ushort *)stage, EFLA_NS_KP, 8 * tt, 16 * q);
            state[t] = efla_mma(state[t], va[q], b EFLA_MMA_ARG);
            state[t] = efla_mma(state[t], va_lo[q], b EFLA_MMA_ARG);
        }
    }
}

__kernel __attribute__((reqd_work_group_size(EFLA_NS_WG, 1, 1))) void
EFLA_NS_NAME(__global const int4 *call, int table, int first_chunks, __global const store_t *k,
             __global const float *s0, __global float *s1, __global float *scratch) {
    __global const long *P = (__global const long *)call;
    __local uint stage[EFLA_NS_AREA]; /* W hi, lo [C][WP]; then K^T [KS][KP]; 16-bit */
    __local float k_inv[EFLA_C];
    EFLA_MMA_DECLARE

    const int lid = get_local_id(0), warp = lid / 32, c4 = lid % 4;
    const int dk = (int)P[EFLA_P_DK], dv = (int)P[EFLA_P_DV];
    const int value_heads = (int)P[EFLA_P_VALUE_HEADS];
    const int flags = (int)P[EFLA_P_FLAGS];
    const int tiles = (dv + 16 * EFLA_NS_WARPS - 1) / (16 * EFLA_NS_WARPS);
    const int group = get_group_id(0);
    const int tile_index = group % tiles, hv = (group / tiles) % value_heads;
    const int sequence = group / tiles / value_heads;
    const int4 seq = call[table + sequence];
    const long chunk0 = call[first_chunks + sequence].x;
    const int h = hv / (value_heads / (int)P[EFLA_P_HEADS]);
    /* The item's S^T rows: value columns j_low and j_low + 8. */
    const int j_low = tile_index * 16 * EFLA_NS_WARPS + 16 * warp + lid % 32 / 4;
    const long scratch_rows = (long)hv * P[EFLA_P_ROWS] + (long)seq.x * P[EFLA_P_TOKENS];
    efla_ns_src src;
    src.w = scratch + P[EFLA_P_SCRATCH_W] + scratch_rows * dk;
    src.c = scratch + P[EFLA_P_SCRATCH_C] + scratch_rows * 2;
    src.u = scratch + P[EFLA_P_SCRATCH_U] + scratch_rows * dv;
    src.k = k;
    src.k_origin = efla_row(P, EFLA_P_K, seq.x, 0, h);
    src.k_row = P[EFLA_P_K + 2];
    src.k_step = P[EFLA_P_K + 4];
    src.k_quads = src.k_step == 1 && src.k_row % 4 == 0 && src.k_origin % 4 == 0 && dk % 4 == 0;
    src.dk = dk;
    src.dv = dv;
    __global float *h_chunk =
        scratch + P[EFLA_P_SCRATCH_H] + ((long)hv * P[EFLA_P_CHUNKS] + chunk0) * dk * dv;

    float4 state[EFLA_NS_NT];
    EFLA_NS_FN(efla_ns_load_state)
    (P, flags & EFLA_PF_INITIAL_STATE ? s0 : 0, seq.w, hv, dk, dv, j_low, state);

    for (int c0 = 0; c0 < seq.z; c0 += EFLA_C, h_chunk += (long)dk * dv) {
        src.t0 = seq.y + c0; /* first token of the chunk; also its scratch row */
        src.length = min(EFLA_C, seq.z - c0);
        float4 un[EFLA_NS_PT], vt[EFLA_NS_PT];
        EFLA_NS_FN(efla_ns_fetch_u)(&src, j_low, un);
        EFLA_NS_FN(efla_ns_write)(h_chunk, dv, 1, dk, dv, j_low, state);

        /* S^T W^T, Dk in passes of KS. */
        EFLA_NS_UNROLL
        for (int p = 0; p < EFLA_NS_PT; ++p)
            vt[p] = 0.0f;
        EFLA_NS_FN(efla_ns_ws)(&src, 0, stage, k_inv, state, vt EFLA_MMA_ARG);
#if EFLA_NS_PIECES > 1
        if (dk > EFLA_NS_KS) EFLA_NS_FN(efla_ns_ws)(&src, 1, stage, k_inv, state, vt EFLA_MMA_ARG);
#endif
        EFLA_NS_FN(efla_ns_finish_v)(&src, j_low, un, vt);

        /* (V' / |k|)^T as A fragments: k16 blocks of chunk positions. */
        uint4 va[EFLA_C / 16], va_lo[EFLA_C / 16];
        EFLA_NS_UNROLL
        for (int q = 0; q < EFLA_C / 16; ++q) {
            const int pos = 16 * q + 2 * c4;
            const float2 low = (float2)(k_inv[pos], k_inv[pos + 1]);
            const float2 high = (float2)(k_inv[pos + 8], k_inv[pos + 9]);
            efla_ns_frag(vt[2 * q] * (float4)(low, low), vt[2 * q + 1] * (float4)(high, high),
                         &va[q], &va_lo[q]);
        }

        /* S^T += (V' / |k|)^T K. */
        EFLA_NS_FN(efla_ns_update)(&src, 0, stage, va, va_lo, state EFLA_MMA_ARG);
#if EFLA_NS_PIECES > 1
        if (dk > EFLA_NS_KS)
            EFLA_NS_FN(efla_ns_update)(&src, 1, stage, va, va_lo, state EFLA_MMA_ARG);
#endif
    }

    if (flags & EFLA_PF_FINAL_STATE)
        EFLA_NS_FN(efla_ns_write)
        (s1 + efla_state_index(P, EFLA_P_S1, seq.w, hv, 0, 0), P[EFLA_P_S1 + 3], P[EFLA_P_S1 + 4],
         dk, dv, j_low, state);
}

#undef EFLA_NS_NAME
#undef EFLA_NS_FN
#undef EFLA_NS_WG
#undef EFLA_NS_NT
#undef EFLA_NS_PIECES
#undef EFLA_NS_QB
