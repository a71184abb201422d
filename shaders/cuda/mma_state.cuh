/*
 * mma state scan: one block per (sequence, value head, BV columns of the
 * state), serial over the sequence's chunks; only what must be serial.
 * The state tile S [Dk][BV] stays in f32 accumulators. Per chunk c:
 *   S_c^T -> scratch (16 bits, for the output kernel);
 *   V' = U - W S_c -> scratch (V'^T, 16 bits);
 *   S += K^T V'.
 * The next chunk's W, K^T and U stream in (cp.async) while this one runs.
 * Warps: 4 for BV = 8, else 8 (EFLA_CUDA_STATE_WARPS). W S: warp w takes
 * chunk rows 16 (w % 4) and its share of the BV / 8 column tiles; K^T V':
 * warp w takes state row tiles w, w + WARPS, ... with every column tile.
 */
#ifndef EFLA_MMA_STATE_CUH
#define EFLA_MMA_STATE_CUH

#include "mma_rows.cuh"

namespace {

struct StateStage {
    uint16_t *w, *kt, *u; /* [C][kp], [dkp][PC], [C][BV + 8] */
};

template <int BV> EFLA_DEV StateStage state_stage(uint16_t *smem, int index, int dkp) {
    const int kp = dkp + 8;
    StateStage s;
    s.w = smem + index * (kChunk * kp + dkp * kPitchC + kChunk * (BV + 8));
    s.kt = s.w + kChunk * kp;
    s.u = s.kt + dkp * kPitchC;
    return s;
}

/* Issues the copies of one chunk's W, K^T and U columns (its scratch at
 * `chunk`) into `to`; the caller commits them as a group. */
template <int THREADS, int BV>
EFLA_DEV void state_load_stage(const uint16_t *chunk, const efla_cuda_mma_layout &l,
                               const StateStage &to, int64_t j0, int dkp, int dvp) {
    copy_rows_async<THREADS>(to.w, dkp + 8, chunk + l.w, dkp, kChunk, dkp);
    copy_rows_async<THREADS>(to.kt, kPitchC, chunk + l.kt, kChunk, dkp, kChunk);
    copy_rows_async<THREADS>(to.u, BV + 8, chunk + l.u + j0, dvp, kChunk, BV);
}

template <int DT, int BV> EFLA_DEV void state_mma(const efla_cuda_params &p) {
    constexpr int WARPS = EFLA_CUDA_STATE_WARPS(BV), THREADS = 32 * WARPS;
    constexpr int NT = BV / 8;            /* column tiles */
    constexpr int NTW = NT / (WARPS / 4); /* W S column tiles per warp */
    constexpr int SR = 16 / WARPS;        /* state row tiles per warp, at most */
    const int warp = efla_tid() >> 5;
    const int64_t block = efla_block_x();
    const int64_t tile = block % p.dv_tiles;
    const int64_t slot = (block / p.dv_tiles) % p.hv_count;
    const int64_t n = block / ((int64_t)p.dv_tiles * p.hv_count);
    const int64_t hv = p.hv_begin + slot, j0 = tile * BV;
    const efla_cuda_sequence seq = efla_sequence(p, n);
    if (seq.length <= p.recurrent_max_len) return;
    const int dkp = (int)efla_cuda_pad16(p.dk), dvp = (int)efla_cuda_pad16(p.dv), kp = dkp + 8;
    const int row_tiles = dkp / 16;
    uint16_t *smem = reinterpret_cast<uint16_t *>(efla_smem());
    const int stages = p.state_stages;
    uint16_t *st = state_stage<BV>(smem, stages, dkp).w; /* S^T [BV][kp] */
    uint16_t *vt = st + BV * kp;                         /* V'^T [BV][PC] */

    float state[SR][NT][4];
#pragma unroll
    for (int r = 0; r < SR; ++r)
#pragma unroll
        for (int t = 0; t < NT; ++t)
            for (int e = 0; e < 4; ++e) {
                const int64_t i = 16 * (warp + WARPS * r) + efla_acc_row(e);
                const int64_t j = j0 + 8 * t + efla_acc_col(e);
                state[r][t][e] = p.state_in.address && i < p.dk && j < p.dv
                                     ? efla_state_load(p.state_in, n, hv, i, j)
                                     : 0.0f;
            }
    auto publish_state = [&]() {
#pragma unroll
        for (int r = 0; r < SR; ++r) {
            const int rt = warp + WARPS * r;
            if (rt >= row_tiles) break;
#pragma unroll
            for (int t = 0; t < NT; ++t)
                for (int e = 0; e < 4; ++e)
                    st[(8 * t + efla_acc_col(e)) * kp + 16 * rt + efla_acc_row(e)] =
                        efla_f32_to_half<DT>(state[r][t][e]);
        }
    };
    publish_state();

    const int64_t chunks = (seq.length + kChunk - 1) / kChunk;
    /* Chunk c's operands go to stage c % stages, `stages - 1` chunks ahead;
     * every chunk commits one group (empty past the end), so waiting for
     * all but the newest stages - 2 groups means chunk c has landed. */
    const efla_cuda_mma_layout layout = efla_cuda_mma_scratch_layout(p.dk, p.dv);
    const int64_t chunk_step = layout.total * p.hv_count; /* elements from chunk to chunk */
    uint16_t *const first = reinterpret_cast<uint16_t *>(p.scratch) +
                            (seq.first_chunk * p.hv_count + slot) * layout.total;
    auto prefetch = [&](int64_t c) {
        if (c < chunks)
            state_load_stage<THREADS, BV>(first + c * chunk_step, layout,
                                          state_stage<BV>(smem, (int)(c % stages), dkp), j0, dkp,
                                          dvp);
        efla_cp_async_commit();
    };
    for (int64_t c = 0; c < stages - 1; ++c)
        prefetch(c);
    const int ws_row0 = 16 * (warp % 4), ws_tile0 = (warp / 4) * NTW;
    for (int64_t c = 0; c < chunks; ++c) {
        if (stages == 3)
            efla_cp_async_wait_one();
        else
            efla_cp_async_wait_all();
        efla_sync(); /* chunk c's operands and S_c^T are visible; chunk c - 1 is done */
        prefetch(c + stages - 1); /* into the stage chunk c - 1 used */
        const StateStage stage = state_stage<BV>(smem, (int)(c % stages), dkp);
        uint16_t *const chunk = first + c * chunk_step;
        float ws[NTW][4] = {}, ws2[NTW][4] = {};
        warp_tiles2<DT, NTW>(ws, ws2, stage.w, kp, ws_row0, st, kp, 8 * ws_tile0, dkp, NTW);
        /* While the products are in flight: S_c^T out. */
        copy_rows<THREADS>(chunk + layout.ht + j0 * dkp, dkp, st, kp, BV, dkp);

#pragma unroll

        for (int t = 0; t < NTW; ++t)
            for (int e = 0; e < 4; ++e) {
                ws[t][e] += ws2[t][e];
                const int row = ws_row0 + efla_acc_row(e),
                          col = 8 * (ws_tile0 + t) + efla_acc_col(e);
                const float v = efla_half_to_f32<DT>(stage.u[row * (BV + 8) + col]) - ws[t][e];
                vt[col * kPitchC + row] = efla_f32_to_half<DT>(v);
            }
        efla_sync(); /* V' complete; S_c^T no longer read */
        copy_rows<THREADS>(chunk + layout.vnt + j0 * kChunk, kChunk, vt, kPitchC, BV, kChunk);
#pragma unroll
        for (int r = 0; r < SR; ++r) {
            const int rt = warp + WARPS * r;
            if (rt >= row_tiles) break;
            warp_tiles<DT, NT>(state[r], stage.kt, kPitchC, 16 * rt, vt, kPitchC, 0, kChunk, NT);
        }
        publish_state();
    }

    if (!p.state_out.address) return;
#pragma unroll
    for (int r = 0; r < SR; ++r)
#pragma unroll
        for (int t = 0; t < NT; ++t)
            for (int e = 0; e < 4; ++e) {
                const int64_t i = 16 * (warp + WARPS * r) + efla_acc_row(e);
                const int64_t j = j0 + 8 * t + efla_acc_col(e);
                if (i < p.dk && j < p.dv)
                    efla_state_store(p.state_out, n, hv, i, j, state[r][t][e]);
            }
}

} // namespace

#endif
