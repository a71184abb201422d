/*
 * mma state scan: one block of WARPS warps per (sequence, value head,
 * 16 WARPS columns of the state), serial over the sequence's chunks; only
 * what must be serial. The state is held transposed, S^T [Dv][Dk], in f32
 * accumulators, each warp owning 16 whole rows (16 value columns x all of
 * Dk). Per chunk c:
 *   S_c^T -> scratch (16 bits, for the output kernel);
 *   V'^T = U^T - S^T W^T -> scratch (16 bits);   A = S^T
 *   S^T += V'^T K                                A = V'^T
 * The accumulators of two neighbouring n8 tiles are the A fragment of one
 * k16 block (efla_acc_to_a), so S^T and V'^T never leave the warp: no
 * shared-memory round trip and no barrier between the two products. Only
 * W, K^T and U come through shared memory, `stages - 1` chunks ahead
 * (cp.async); one barrier per chunk guards those buffers. DKT is the
 * compiled Dk class in n8 tiles (the accumulators' size), the runtime Dk
 * may be smaller.
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

/* A fragment (a0..a3: rows g, g + 8; columns 2c, 2c + 8) into a row-major
 * 16-bit matrix at row `row` (the warp's row g), column `col` (2c of its
 * k block), pitch `pitch`. */
EFLA_DEV void store_a(uint16_t *m, int64_t pitch, int64_t row, int col, const uint32_t a[4]) {
    uint32_t *top = reinterpret_cast<uint32_t *>(m + row * pitch + col);
    uint32_t *bottom = reinterpret_cast<uint32_t *>(m + (row + 8) * pitch + col);
    top[0] = a[0];
    bottom[0] = a[1];
    top[4] = a[2];
    bottom[4] = a[3];
}

/* v[t] = S^T W^T for the chunk's 8 position tiles; S_c^T goes to `ht`
 * (the warp's rows) on the way, from the same A fragments. The mma
 * statements keep their order, so neighbouring ones go to different
 * accumulators (8 chains of Dk / 16 steps). */
template <int DT, int DKT>
EFLA_DEV void state_times_w(float (*v)[4], const float (*s)[4], const uint16_t *w, int kp, int dkp,
                            uint16_t *ht, int64_t row, int c2) {
#pragma unroll
    for (int kb = 0; kb < DKT / 2; ++kb) {
        if (16 * kb >= dkp) break;
        uint32_t a[4];
        efla_acc_to_a<DT>(a, s[2 * kb], s[2 * kb + 1]);
        store_a(ht, dkp, row, 16 * kb + c2, a);
#pragma unroll
        for (int t = 0; t < kChunk / 8; t += 2) {
            uint32_t b[2][2];
            efla_load_b_pair(b, w, kp, 8 * t, 16 * kb);
            efla_mma<DT>(v[t], a, b[0]);
            efla_mma<DT>(v[t + 1], a, b[1]);
        }
    }
}

/* V'^T = U^T - v as A fragments of the chunk's 4 position blocks, also
 * written to `vnt` (the warp's rows). u is the stage's U [C][pitch] at the
 * warp's first column. */
template <int DT>
EFLA_DEV void corrected_values(uint32_t va[kChunk / 16][4], float (*v)[4], const uint16_t *u,
                               int pitch, uint16_t *vnt, int64_t row, int c2) {
#pragma unroll
    for (int t = 0; t < kChunk / 8; ++t)
        for (int e = 0; e < 4; ++e) {
            const int pos = 8 * t + efla_acc_col(e), col = efla_acc_row(e);
            v[t][e] = efla_half_to_f32<DT>(u[pos * pitch + col]) - v[t][e];
        }
#pragma unroll
    for (int kb = 0; kb < kChunk / 16; ++kb) {
        efla_acc_to_a<DT>(va[kb], v[2 * kb], v[2 * kb + 1]);
        store_a(vnt, kChunk, row, 16 * kb + c2, va[kb]);
    }
}

/* s += V'^T K over the chunk's positions, K^T [dkp][PC] in the stage:
 * Dk / 8 chains of 4 steps, neighbouring mma statements on different
 * accumulators. */
template <int DT, int DKT>
EFLA_DEV void state_update(float (*s)[4], const uint32_t va[kChunk / 16][4], const uint16_t *kt,
                           int dkp) {
#pragma unroll
    for (int kb = 0; kb < kChunk / 16; ++kb)
#pragma unroll
        for (int t = 0; t < DKT; t += 2) {
            if (8 * t >= dkp) break;
            uint32_t b[2][2];
            efla_load_b_pair(b, kt, kPitchC, 8 * t, 16 * kb);
            efla_mma<DT>(s[t], va[kb], b[0]);
            efla_mma<DT>(s[t + 1], va[kb], b[1]);
        }
}

template <int DT, int DKT, int WARPS> EFLA_DEV void state_mma(const efla_cuda_params &p) {
    constexpr int THREADS = 32 * WARPS, BV = 16 * WARPS;
    const int warp = efla_tid() >> 5, c2 = 2 * (efla_tid() & 3);
    const int64_t block = efla_block_x();
    const int64_t tile = block % p.dv_tiles;
    const int64_t slot = (block / p.dv_tiles) % p.hv_count;
    const int64_t n = block / ((int64_t)p.dv_tiles * p.hv_count);
    const int64_t hv = p.hv_begin + slot, j0 = tile * BV;
    const efla_cuda_sequence seq = efla_sequence(p, n);
    if (seq.length <= p.recurrent_max_len) return;
    const int dkp = (int)efla_cuda_pad16(p.dk), dvp = (int)efla_cuda_pad16(p.dv), kp = dkp + 8;
    uint16_t *smem = reinterpret_cast<uint16_t *>(efla_smem());
    const int stages = p.state_stages;
    /* The warp's rows of S^T: value columns j0 + 16 warp + g (and + 8). */
    const int64_t row = j0 + 16 * warp + ((efla_tid() & 31) >> 2);

    float s[DKT][4];
#pragma unroll
    for (int t = 0; t < DKT; ++t)
        for (int e = 0; e < 4; ++e) {
            const int64_t i = 8 * t + efla_acc_col(e), j = row + (e >= 2 ? 8 : 0);
            s[t][e] = p.state_in.address && i < p.dk && j < p.dv
                          ? efla_state_load(p.state_in, n, hv, i, j)
                          : 0.0f;
        }

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
    for (int64_t c = 0; c < chunks; ++c) {
        if (stages == 3)
            efla_cp_async_wait_one();
        else
            efla_cp_async_wait_all();
        efla_sync(); /* chunk c's operands are visible; chunk c - 1's stage is free */
        prefetch(c + stages - 1);
        const StateStage stage = state_stage<BV>(smem, (int)(c % stages), dkp);
        uint16_t *const chunk = first + c * chunk_step;
        float v[kChunk / 8][4] = {};
        state_times_w<DT, DKT>(v, s, stage.w, kp, dkp, chunk + layout.ht, row, c2);
        uint32_t va[kChunk / 16][4];
        corrected_values<DT>(va, v, stage.u + 16 * warp, BV + 8, chunk + layout.vnt, row, c2);
        state_update<DT, DKT>(s, va, stage.kt, dkp);
    }

    if (!p.state_out.address) return;
#pragma unroll
    for (int t = 0; t < DKT; ++t)
        for (int e = 0; e < 4; ++e) {
            const int64_t i = 8 * t + efla_acc_col(e), j = row + (e >= 2 ? 8 : 0);
            if (i < p.dk && j < p.dv) efla_state_store(p.state_out, n, hv, i, j, s[t][e]);
        }
}

} // namespace

#endif
