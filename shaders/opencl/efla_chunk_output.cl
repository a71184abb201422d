/*
 * Chunked forward, phase 3: the output, fully parallel (ALGORITHM.md 2.6).
 *
 * One work-group of 4C items per (chunk, value head, tile of OT = 64 Dv
 * columns), from the state before the chunk H[c] and V' (efla_chunk_state)
 * and the masked, scaled Q K^T rows A (efla_chunk_prepare):
 *   O = qf . (Q H[c]) + A V'
 * one tiled product over the concatenated contraction [Q | A] x [H; V'],
 * the row factor qf applied between the two parts. Item (cg = lid % 16,
 * rg = lid / 16) computes rows 4 rg..4 rg + 3, columns 4 cg..4 cg + 3: a
 * k step reads one float4 of the transposed X tile and one of the Y tile
 * for 16 multiply-adds. Tiles are fetched one step ahead into registers.
 */
#define EFLA_OT EFLA_CL_OUT_TILE
#define EFLA_OUT_WG (4 * EFLA_C)
#define EFLA_OUT_XS (EFLA_C + 4)  /* X^T tile row stride: [KT][C] */
#define EFLA_OUT_YS (EFLA_OT + 4) /* Y tile row stride: [KT][OT] */
#define EFLA_OUT_X_N (EFLA_C * EFLA_KT / EFLA_OUT_WG)
#define EFLA_OUT_Y_N (EFLA_KT * EFLA_OT / EFLA_OUT_WG)

/* Where one work-group's operands and output rows are. */
typedef struct efla_out_src {
    __global const store_t *q;
    __global const float *h, *a, *vn; /* H[c] [dk][dv]; A and V' rows of the chunk */
    long q_origin, q_row, q_step;
    long out_origin, out_row, out_step;
    int dk, dv, col0, length;
} efla_out_src;

/* The operands of this work-group's (chunk, value head, OT-column tile),
 * and the chunk's q factors into q_factor (the caller's barrier makes
 * them visible). Shared by the portable and the nvmma output kernels. */
efla_out_src efla_out_locate(__global const long *P, __global const int4 *call, int table,
                             __global const store_t *q, __global const float *scratch,
                             __local float *q_factor) {
    const int dk = (int)P[EFLA_P_DK], dv = (int)P[EFLA_P_DV];
    const int value_heads = (int)P[EFLA_P_VALUE_HEADS];
    const int tiles = (dv + EFLA_OT - 1) / EFLA_OT;
    const int group = get_group_id(0), lid = get_local_id(0);
    const int tile_index = group % tiles, hv = (group / tiles) % value_heads;
    const long chunk_index = group / tiles / value_heads;
    const int4 chunk = call[table + chunk_index];
    const int h = hv / (value_heads / (int)P[EFLA_P_HEADS]);
    const long row0 = (long)hv * P[EFLA_P_ROWS] + (long)chunk.x * P[EFLA_P_TOKENS] + chunk.y;
    efla_out_src src;
    src.q = q;
    src.h = scratch + P[EFLA_P_SCRATCH_H] + ((long)hv * P[EFLA_P_CHUNKS] + chunk_index) * dk * dv;
    src.a = scratch + P[EFLA_P_SCRATCH_A] + row0 * EFLA_C;
    src.vn = scratch + P[EFLA_P_SCRATCH_U] + row0 * dv;
    src.q_origin = efla_row(P, EFLA_P_Q, chunk.x, chunk.y, h);
    src.q_row = P[EFLA_P_Q + 2];
    src.q_step = P[EFLA_P_Q + 4];
    src.out_origin = efla_row(P, EFLA_P_OUT, chunk.x, chunk.y, hv);
    src.out_row = P[EFLA_P_OUT + 2];
    src.out_step = P[EFLA_P_OUT + 4];
    src.dk = dk;
    src.dv = dv;
    src.col0 = tile_index * EFLA_OT;
    src.length = chunk.z;
    if (lid < EFLA_C)
        q_factor[lid] = lid < chunk.z ? scratch[P[EFLA_P_SCRATCH_C] + (row0 + lid) * 2] : 0.0f;
    return src;
}

/* Step s < dk/KT: Q columns and H rows d0 = s KT..; after that, A columns
 * and V' rows m0.. of the chunk. X is read along its rows' contraction
 * index so that global loads are coalesced. */
void efla_out_fetch(const efla_out_src *o, int s, int q_steps, float x[EFLA_OUT_X_N],
                    float y[EFLA_OUT_Y_N]) {
    const int lid = get_local_id(0);
    const bool first = s < q_steps;
    const int k0 = (first ? s : s - q_steps) * EFLA_KT, k_end = first ? o->dk : o->length;
#pragma unroll
    for (int n = 0; n < EFLA_OUT_X_N; ++n) {
        const int idx = lid + n * EFLA_OUT_WG, r = idx / EFLA_KT, kk = k0 + idx % EFLA_KT;
        float value = 0.0f;
        if (r < o->length && kk < k_end)
            value = first ? efla_load(o->q, o->q_origin + r * o->q_row + kk * o->q_step)
                          : o->a[(long)r * EFLA_C + kk];
        x[n] = value;
    }
#pragma unroll
    for (int n = 0; n < EFLA_OUT_Y_N; ++n) {
        const int idx = lid + n * EFLA_OUT_WG, kk = k0 + idx / EFLA_OT,
                  col = o->col0 + idx % EFLA_OT;
        float value = 0.0f;
        if (kk < k_end && col < o->dv)
            value = first ? o->h[(long)kk * o->dv + col] : o->vn[(long)kk * o->dv + col];
        y[n] = value;
    }
}

void efla_out_put(const float x[EFLA_OUT_X_N], const float y[EFLA_OUT_Y_N], __local float *xt,
                  __local float *yt) {
    const int lid = get_local_id(0);
#pragma unroll
    for (int n = 0; n < EFLA_OUT_X_N; ++n) {
        const int idx = lid + n * EFLA_OUT_WG;
        xt[idx % EFLA_KT * EFLA_OUT_XS + idx / EFLA_KT] = x[n];
    }
#pragma unroll
    for (int n = 0; n < EFLA_OUT_Y_N; ++n) {
        const int idx = lid + n * EFLA_OUT_WG;
        yt[idx / EFLA_OT * EFLA_OUT_YS + idx % EFLA_OT] = y[n];
    }
}

/* acc += X Y over one staged KT step. */
void efla_out_multiply(__local const float *xt, __local const float *yt, float4 acc[4]) {
    const int lid = get_local_id(0), rows = 4 * (lid / 16), cols = 4 * (lid % 16);
#pragma unroll 8
    for (int kk = 0; kk < EFLA_KT; ++kk) {
        const float4 x = vload4(0, xt + kk * EFLA_OUT_XS + rows);
        const float4 y = vload4(0, yt + kk * EFLA_OUT_YS + cols);
        acc[0] = fma((float4)(x.x), y, acc[0]);
        acc[1] = fma((float4)(x.y), y, acc[1]);
        acc[2] = fma((float4)(x.z), y, acc[2]);
        acc[3] = fma((float4)(x.w), y, acc[3]);
    }
}

/* Writes the item's 4 x 4 outputs (rows past the chunk, columns past dv
 * skipped). */
void efla_out_store(__global store_t *out, long origin, long row_step, long col_step, int length,
                    int dv, int col0, const float4 acc[4]) {
    const int lid = get_local_id(0), rows = 4 * (lid / 16), cols = col0 + 4 * (lid % 16);
#pragma unroll
    for (int m = 0; m < 4; ++m) {
        if (rows + m >= length) continue;
        const float values[4] = {acc[m].x, acc[m].y, acc[m].z, acc[m].w};
        const long base = origin + (rows + m) * row_step;
#pragma unroll
        for (int n = 0; n < 4; ++n)
            if (cols + n < dv) efla_store(out, base + (cols + n) * col_step, values[n]);
    }
}

__kernel __attribute__((reqd_work_group_size(EFLA_OUT_WG, 1, 1))) void
efla_chunk_output(__global const int4 *call, int table, __global const store_t *q,
                  __global store_t *out, __global const float *scratch) {
    __global const long *P = (__global const long *)call;
    __local float xt[EFLA_KT * EFLA_OUT_XS], yt[EFLA_KT * EFLA_OUT_YS];
    __local float q_factor[EFLA_C];

    const int lid = get_local_id(0);
    const efla_out_src src = efla_out_locate(P, call, table, q, scratch, q_factor);
    const int dk = src.dk;

    const int q_steps = (dk + EFLA_KT - 1) / EFLA_KT, steps = q_steps + EFLA_C / EFLA_KT;
    float x[EFLA_OUT_X_N], y[EFLA_OUT_Y_N];
    float4 acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    efla_out_fetch(&src, 0, q_steps, x, y);
    for (int s = 0; s < steps; ++s) {
        barrier(CLK_LOCAL_MEM_FENCE);
        efla_out_put(x, y, xt, yt);
        barrier(CLK_LOCAL_MEM_FENCE);
        if (s + 1 < steps) efla_out_fetch(&src, s + 1, q_steps, x, y);
        if (s == q_steps) { /* Q H[c] done: scale its rows */
            const int rows = 4 * (lid / 16);
#pragma unroll
            for (int m = 0; m < 4; ++m)
                acc[m] *= q_factor[rows + m];
        }
        efla_out_multiply(xt, yt, acc);
    }
    efla_out_store(out, src.out_origin, src.out_row, src.out_step, src.length, src.dv, src.col0,
                   acc);
}
