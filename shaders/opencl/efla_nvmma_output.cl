/*
 * Chunked forward, phase 3 on tensor cores (the nvmma path; replaces the
 * portable efla_chunk_output, same arguments and launch shape).
 *
 * O = qf . (Q H[c]) + A V' as in efla_chunk_output.cl, whose fetch
 * (efla_out_fetch: global -> registers, one step ahead) it shares; the
 * staged tiles go to the storage dtype, q exactly, H, A and V' split into
 * hi + lo (efla_split_bits: the sum cancels where the erase is large), and
 * are multiplied with mma.sync, accumulating in f32: Q Hhi + Q Hlo, then
 * Ahi V'hi + Ahi V'lo + Alo V'hi. 4C items = C/8 warps; warp w covers rows
 * 16 (w % (C/16)).. and 32 columns from 32 (w / (C/16)): 4 tiles of 16x8.
 */
#define EFLA_MO_PITCH (EFLA_KT + 8) /* 16-bit elements per tile row: conflict-free fragments */
#define EFLA_MO_ROW_BLOCKS (EFLA_C / 16)

/* The fetched step in 16 bits: X row-major [C][KT] (q exact: no low half;
 * A split), Y as Yt [OT][KT] split (H and V'). */
void efla_mo_put(const float x[EFLA_OUT_X_N], const float y[EFLA_OUT_Y_N], bool split_x,
                 __local ushort *xs, __local ushort *xs_lo, __local ushort *yt,
                 __local ushort *yt_lo) {
    const int lid = get_local_id(0);
#pragma unroll
    for (int n = 0; n < EFLA_OUT_X_N; ++n) {
        const int idx = lid + n * EFLA_OUT_WG, at = idx / EFLA_KT * EFLA_MO_PITCH + idx % EFLA_KT;
        const ushort2 bits = efla_split_bits(x[n]);
        xs[at] = bits.x;
        if (split_x) xs_lo[at] = bits.y;
    }
#pragma unroll
    for (int n = 0; n < EFLA_OUT_Y_N; ++n) {
        const int idx = lid + n * EFLA_OUT_WG, at = idx % EFLA_OT * EFLA_MO_PITCH + idx / EFLA_OT;
        const ushort2 bits = efla_split_bits(y[n]);
        yt[at] = bits.x;
        yt_lo[at] = bits.y;
    }
}

/* acc[nt] += X Y over one staged KT step for the warp's 16 x 32 block:
 * X Yhi + X Ylo (+ Xlo Yhi when X is split). */
void efla_mo_multiply(__local const ushort *xs, __local const ushort *xs_lo,
                      __local const ushort *yt, __local const ushort *yt_lo, bool split_x, int row0,
                      int n0, float4 acc[4] EFLA_MMA_PARAM) {
    EFLA_MMA_UNROLL
    for (int k0 = 0; k0 < EFLA_KT; k0 += 16) {
        const uint4 a = efla_frag_a(xs, EFLA_MO_PITCH, row0, k0);
        const uint4 a_lo = efla_frag_a(xs_lo, EFLA_MO_PITCH, row0, k0);
        EFLA_MMA_UNROLL
        for (int nt = 0; nt < 4; ++nt) {
            const uint2 b = efla_frag_b(yt, EFLA_MO_PITCH, n0 + 8 * nt, k0);
            const uint2 b_lo = efla_frag_b(yt_lo, EFLA_MO_PITCH, n0 + 8 * nt, k0);
            acc[nt] = efla_mma(acc[nt], a, b EFLA_MMA_ARG);
            acc[nt] = efla_mma(acc[nt], a, b_lo EFLA_MMA_ARG);
            if (split_x) acc[nt] = efla_mma(acc[nt], a_lo, b EFLA_MMA_ARG);
        }
    }
}

void efla_mo_store(__global store_t *out, long origin, long row_step, long col_step, int length,
                   int dv, int row0, int col0, const float4 acc[4]) {
    const int lane = get_local_id(0) % 32, g = lane / 4, c = lane % 4;
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
        const int col = col0 + 8 * nt + 2 * c;
        const float values[4] = {acc[nt].x, acc[nt].y, acc[nt].z, acc[nt].w};
#pragma unroll
        for (int e = 0; e < 4; ++e) {
            const int r = row0 + g + (e >= 2 ? 8 : 0), j = col + (e & 1);
            if (r < length && j < dv)
                efla_store(out, origin + r * row_step + j * col_step, values[e]);
        }
    }
}

__kernel __attribute__((reqd_work_group_size(EFLA_OUT_WG, 1, 1))) void
efla_chunk_output(__global const int4 *call, int table, __global const store_t *q,
                  __global store_t *out, __global const float *scratch) {
    __global const long *P = (__global const long *)call;
    __local uint xs_words[2 * EFLA_C * EFLA_MO_PITCH / 2],
        yt_words[2 * EFLA_OT * EFLA_MO_PITCH / 2];
    __local ushort *xs = (__local ushort *)xs_words, *xs_lo = xs + EFLA_C * EFLA_MO_PITCH;
    __local ushort *yt = (__local ushort *)yt_words, *yt_lo = yt + EFLA_OT * EFLA_MO_PITCH;
    __local float q_factor[EFLA_C];
    EFLA_MMA_DECLARE

    const int lid = get_local_id(0), warp = lid / 32;
    const int row0 = 16 * (warp % EFLA_MO_ROW_BLOCKS), n0 = 32 * (warp / EFLA_MO_ROW_BLOCKS);
    const efla_out_src src = efla_out_locate(P, call, table, q, scratch, q_factor);
    const int dk = src.dk;

    const int q_steps = (dk + EFLA_KT - 1) / EFLA_KT, steps = q_steps + EFLA_C / EFLA_KT;
    float x[EFLA_OUT_X_N], y[EFLA_OUT_Y_N];
    float4 acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    efla_out_fetch(&src, 0, q_steps, x, y);
    for (int s = 0; s < steps; ++s) {
        const bool split_x = s >= q_steps; /* the A part: uniform over the work-group */
        barrier(CLK_LOCAL_MEM_FENCE);
        efla_mo_put(x, y, split_x, xs, xs_lo, yt, yt_lo);
        barrier(CLK_LOCAL_MEM_FENCE);
        if (s + 1 < steps) efla_out_fetch(&src, s + 1, q_steps, x, y);
        if (s == q_steps) { /* Q H[c] done: scale its rows */
            const int g = lid % 32 / 4;
            const float low = q_factor[row0 + g], high = q_factor[row0 + g + 8];
#pragma unroll
            for (int nt = 0; nt < 4; ++nt)
                acc[nt] *= (float4)(low, low, high, high);
        }
        efla_mo_multiply(xs, xs_lo, yt, yt_lo, split_x, row0, n0, acc EFLA_MMA_ARG);
    }
    efla_mo_store(out, src.out_origin, src.out_row, src.out_step, src.length, src.dv, row0,
                  src.col0 + n0, acc);
}
