/*
 * mma apply, the second kernel of the split prepare: one block of 4 warps
 * per (chunk, value head, tile of 64 columns), all independent, after the
 * factor kernel (mma_factor.cuh). A key tile forms, for its Dk columns,
 * K^T = (ck K)^T and W = (A^-1 diag(e)) K^; a value tile U^T = V^T
 * (A^-1 diag(g))^T for its Dv columns. Small blocks that only stream rows
 * through one 64-deep product each, so that many share an SM and the
 * copies of some overlap the products of others.
 */
#ifndef EFLA_MMA_APPLY_CUH
#define EFLA_MMA_APPLY_CUH

#include "mma_prepare.cuh"

namespace {

constexpr int kApplyThreads = EFLA_CUDA_MMA_APPLY_THREADS;
constexpr int kApplyTile = EFLA_CUDA_MMA_APPLY_TILE;
constexpr int kApplyPitch = kApplyTile + 8;
static_assert(kApplyThreads == 32 * (kChunk / 16), "a warp per 16 chunk rows");
static_assert(kApplyTile == kChunk, "a warp per 16 rows of a U^T tile as well");

/* Shared memory of the apply kernel (size: efla_cuda_apply_mma_smem). */
struct ApplySmem {
    uint16_t *raw;        /* the tile's K or V rows [C][TP] */
    uint16_t *factor;     /* A^-1 diag(e) or A^-1 diag(g) [C][PC] */
    uint16_t *transposed; /* K^ tile transposed, or U^T tile [TILE][PC] */
    uint16_t *staged;     /* W tile [C][TP] */
    float *ck;
};

EFLA_DEV ApplySmem apply_smem() {
    ApplySmem s;
    s.raw = reinterpret_cast<uint16_t *>(efla_smem());
    s.factor = s.raw + kChunk * kApplyPitch;
    s.transposed = s.factor + kChunk * kPitchC;
    s.staged = s.transposed + kApplyTile * kPitchC;
    s.ck = reinterpret_cast<float *>(s.staged + kChunk * kApplyPitch);
    return s;
}

/* The accumulators of n8 tiles t < ntiles (rows row0.., columns 8t..) as
 * 16-bit pairs into `to` (pitch `pitch`). */
template <int DT, int NT>
EFLA_DEV void stage_tiles(const float (*acc)[4], uint16_t *to, int pitch, int row0, int ntiles) {
    const int lane = efla_tid() & 31, g = lane >> 2, c2 = 2 * (lane & 3);
    uint32_t *top = reinterpret_cast<uint32_t *>(to + (row0 + g) * pitch + c2);
#pragma unroll
    for (int t = 0; t < NT; ++t) {
        if (t >= ntiles) break;
        top[4 * t] = efla_pack_half2<DT>(acc[t][0], acc[t][1]);
        top[4 * t + 4 * pitch] = efla_pack_half2<DT>(acc[t][2], acc[t][3]);
    }
}

/* Dk columns c0 .. c0 + width - 1: K^T's rows and W's columns. */
template <int DT>
EFLA_DEV void apply_keys(const efla_cuda_params &p, const RowSource &keys, const MmaChunk &out,
                         int c0, int width, const ApplySmem &s) {
    const int row0 = 16 * (efla_tid() >> 5), kp = (int)efla_cuda_pad16(p.dk) + 8;
    load_rows<kApplyThreads>(p.k, keys, (int)p.dk, width, s.raw, kApplyPitch, c0);
    copy_rows_async<kApplyThreads>(s.factor, kPitchC, out.ae, kPitchC, kChunk, kChunk);
    copy_rows_async<kApplyThreads>(reinterpret_cast<uint16_t *>(s.ck), 2 * kChunk,
                                   reinterpret_cast<const uint16_t *>(out.ck), 2 * kChunk, 1,
                                   2 * kChunk);
    efla_cp_async_commit();
    efla_cp_async_wait_all();
    efla_sync();
    transpose_keys<DT, kApplyThreads>(s.raw, kApplyPitch, s.ck, s.transposed, width);
    efla_sync();
    copy_rows<kApplyThreads>(out.kt + c0 * kPitchC, kPitchC, s.transposed, kPitchC, width, kChunk);
    float acc[kApplyTile / 8][4] = {};
    warp_tiles<DT, kApplyTile / 8>(acc, s.factor, kPitchC, row0, s.transposed, kPitchC, 0, kChunk,
                                   width / 8);
    stage_tiles<DT, kApplyTile / 8>(acc, s.staged, kApplyPitch, row0, width / 8);
    efla_sync();
    copy_rows<kApplyThreads>(out.w + c0, kp, s.staged, kApplyPitch, kChunk, width);
}

/* Dv columns c0 .. c0 + width - 1: U^T's rows. */
template <int DT>
EFLA_DEV void apply_values(const efla_cuda_params &p, const RowSource &values, const MmaChunk &out,
                           int c0, int width, const ApplySmem &s) {
    const int row0 = 16 * (efla_tid() >> 5);
    load_rows<kApplyThreads>(p.v, values, (int)p.dv, width, s.raw, kApplyPitch, c0);
    copy_rows_async<kApplyThreads>(s.factor, kPitchC, out.ag, kPitchC, kChunk, kChunk);
    efla_cp_async_commit();
    efla_cp_async_wait_all();
    efla_sync();
    if (row0 < width) {
        float acc[kChunk / 8][4] = {};
        values_tiles<DT, kChunk / 8>(acc, s.raw, kApplyPitch, row0, s.factor, 0);
        stage_tiles<DT, kChunk / 8>(acc, s.transposed, kPitchC, row0, kChunk / 8);
    }
    efla_sync();
    copy_rows<kApplyThreads>(out.u + c0 * kPitchC, kPitchC, s.transposed, kPitchC, width, kChunk);
}

template <int DT> EFLA_DEV void apply_mma(const efla_cuda_params &p) {
    const int64_t jobs = efla_cuda_apply_jobs(p.dk, p.dv), keys = efla_cuda_apply_key_tiles(p.dk);
    const int64_t g = efla_block_x(), slot = efla_block_y() / jobs, job = efla_block_y() % jobs;
    const int64_t hv = p.hv_begin + slot;
    const efla_cuda_sequence seq = efla_sequence(p, efla_chunk_owner(p, g));
    const int64_t t0 = seq.first + (g - seq.first_chunk) * kChunk;
    const int rows = (int)efla_min64(kChunk, seq.first + seq.length - t0);
    const MmaChunk out = mma_chunk(p, g, slot);
    const ApplySmem s = apply_smem();
    if (job < keys) {
        const int c0 = (int)job * kApplyTile, dkp = (int)efla_cuda_pad16(p.dk);
        const int width = dkp - c0 < kApplyTile ? dkp - c0 : kApplyTile;
        const int64_t h = hv / (p.value_heads / p.heads);
        apply_keys<DT>(p, row_source(p.k, seq, t0, rows, h), out, c0, width, s);
        return;
    }
    const int c0 = (int)(job - keys) * kApplyTile, dvp = (int)efla_cuda_pad16(p.dv);
    const int width = dvp - c0 < kApplyTile ? dvp - c0 : kApplyTile;
    apply_values<DT>(p, row_source(p.v, seq, t0, rows, hv), out, c0, width, s);
}

} // namespace

#endif
