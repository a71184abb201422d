/*
 * Chunked forward, phase 3 on tensor cores (the nvmma path), after the
 * CUDA mma output (shaders/cuda/mma_output.cuh): one work-group of 4
 * warps per (chunk, value head, 64 value columns), all independent:
 *   O = diag(qf) (Q S_c) + P V'
 * with Q as stored, S_c^T and V'^T from the scan and P (the masked
 * scores, qf folded in) from the prepare, all in the scratch in fragment
 * order: every fragment is one 16-byte global load per lane, the A-order
 * pieces of S_c^T and V'^T read as B fragments of S_c and V' (registers
 * {a0, a2} and {a1, a3}). Warp m owns chunk rows 16 m..; P is zero above
 * the diagonal, so P V' stops at block m. No local memory.
 */
__kernel __attribute__((reqd_work_group_size(EFLA_NV_OUTPUT_ITEMS, 1, 1))) void
efla_nvmma_output(__global const int4 *call, int table, __global store_t *out,
                  __global const uint *scratch) {
    __global const long *P = (__global const long *)call;
    EFLA_MMA_DECLARE(EFLA_NV_OUTPUT_ITEMS)
    const int lane = get_local_id(0) % 32, mb = get_local_id(0) / 32;
    const int dk = (int)P[EFLA_P_DK], dv = (int)P[EFLA_P_DV];
    const int dkp = EFLA_NV_PAD16(dk), dvp = EFLA_NV_PAD16(dv), kbs = dkp / 16;
    const int value_heads = (int)P[EFLA_P_VALUE_HEADS];
    const int tiles = (dvp + EFLA_NV_OUT_TILE - 1) / EFLA_NV_OUT_TILE;
    const int index = get_group_id(0) / tiles, j0 = (get_group_id(0) % tiles) * EFLA_NV_OUT_TILE;
    const int hv = index % value_heads, jbs = min(EFLA_NV_OUT_TILE, dvp - j0) / 16;
    const int4 chunk = call[table + index / value_heads];
    __global const uint *block = scratch + (long)index * (EFLA_NV_TOTAL(dkp, dvp) / 2);
    __global const uint *ht = block + EFLA_NV_HT(dkp, dvp) / 2;
    __global const uint *vt = block + EFLA_NV_VT(dkp, dvp) / 2;

    float4 o[EFLA_NV_OUT_TILE / 8];
    EFLA_MMA_UNROLL
    for (int t = 0; t < EFLA_NV_OUT_TILE / 8; ++t)
        o[t] = 0.0f;
    EFLA_MMA_LOOP
    for (int kb = 0; kb < kbs; ++kb) {
        const uint4 a = efla_piece(block + EFLA_NV_Q(dkp, dvp) / 2, mb * kbs + kb);
        EFLA_MMA_UNROLL
        for (int jb = 0; jb < EFLA_NV_OUT_TILE / 16; ++jb) {
            EFLA_MMA_SKIP(jb >= jbs)
            const uint4 b = jb < jbs ? efla_piece(ht, (j0 / 16 + jb) * kbs + kb) : (uint4)(0);
            o[2 * jb] = efla_mma(o[2 * jb], a, b.xz EFLA_MMA_ARG);
            o[2 * jb + 1] = efla_mma(o[2 * jb + 1], a, b.yw EFLA_MMA_ARG);
        }
    }
    __global const float *qf = (__global const float *)(block + EFLA_NV_RQ(dkp, dvp) / 2);
    const float low = qf[16 * mb + lane / 4], high = qf[16 * mb + lane / 4 + 8];
    EFLA_MMA_UNROLL
    for (int t = 0; t < EFLA_NV_OUT_TILE / 8; ++t)
        o[t] *= (float4)(low, low, high, high);
    EFLA_MMA_UNROLL
    for (int pb = 0; pb < EFLA_C / 16; ++pb) {
        EFLA_MMA_SKIP(pb > mb)
        const uint4 a = efla_piece(block + EFLA_NV_P(dkp, dvp) / 2, mb * (EFLA_C / 16) + pb);
        EFLA_MMA_UNROLL
        for (int jb = 0; jb < EFLA_NV_OUT_TILE / 16; ++jb) {
            EFLA_MMA_SKIP(jb >= jbs)
            const uint4 b =
                jb < jbs ? efla_piece(vt, (j0 / 16 + jb) * (EFLA_C / 16) + pb) : (uint4)(0);
            o[2 * jb] = efla_mma(o[2 * jb], a, b.xz EFLA_MMA_ARG);
            o[2 * jb + 1] = efla_mma(o[2 * jb + 1], a, b.yw EFLA_MMA_ARG);
        }
    }

    const long origin = efla_row(P, EFLA_P_OUT, chunk.x, chunk.y, hv);
    const long row_step = P[EFLA_P_OUT + 2], col_step = P[EFLA_P_OUT + 4];
    /* a lane's neighbouring columns as one 32-bit store where they are
     * neighbours in memory at an even element offset */
    const bool pairs = col_step == 1 && row_step % 2 == 0 && origin % 2 == 0;
#pragma unroll
    for (int t = 0; t < EFLA_NV_OUT_TILE / 8; ++t)
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const int r = 16 * mb + lane / 4 + 8 * h, j = j0 + 8 * t + 2 * (lane % 4);
            const float x0 = h ? o[t].z : o[t].x, x1 = h ? o[t].w : o[t].y;
            const long at = origin + r * row_step + j * col_step;
            if (r >= chunk.z || j >= dv) continue;
            if (pairs && j + 1 < dv) {
                *(__global uint *)(out + at) = efla_pack2(x0, x1);
                continue;
            }
            efla_store(out, at, x0);
            if (j + 1 < dv) efla_store(out, at + col_step, x1);
        }
}
