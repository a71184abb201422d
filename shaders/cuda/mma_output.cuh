/*
 * mma output: one block of 8 warps per (chunk, value head, BO columns),
 * all independent:
 *   O = scale (diag(rq) Q S_c + mask_{s<=t}(diag(rq) Q K^T diag(ck)) V'),
 * with Q the rows as stored (rq applied in f32 after the product), the
 * masked scores P from the prepare kernel, S_c^T and V'^T from the state
 * kernel. Q and S_c^T arrive in Dk slices, the next one's copies in flight
 * during this one's products.
 */
#ifndef EFLA_MMA_OUTPUT_CUH
#define EFLA_MMA_OUTPUT_CUH

#include "mma_rows.cuh"

namespace {

constexpr int kOutputThreads = EFLA_CUDA_MMA_OUTPUT_THREADS;

/* The warp's 16 staged output rows (16-bit, pitch pp) to the tensor. */
template <int DT>
EFLA_DEV void store_output_rows(const efla_cuda_params &p, const efla_cuda_sequence &seq,
                                int64_t t0, int rows, int64_t hv, int64_t j0, int cols,
                                const uint16_t *staged, int pp, int row0) {
    const int lane = efla_tid() & 31;
    uint16_t *out = reinterpret_cast<uint16_t *>(p.out.address);
    if (rows_vectorizable(p.out, p.dv)) {
        const int pieces = cols >> 3;
        const bool pow2 = (pieces & (pieces - 1)) == 0;
        const int shift = efla_log2_pow2((uint32_t)pieces);
        for (int e = lane; e < 16 * pieces; e += 32) {
            /* by shifts where the pieces are a power of two (no division) */
            const int t = row0 + (pow2 ? e >> shift : e / pieces);
            const int c8 = 8 * (pow2 ? e & (pieces - 1) : e % pieces);
            if (t < rows && j0 + c8 < p.dv)
                efla_copy16(out + efla_offset(p.out, seq.batch_row, t0 + t, hv, j0 + c8),
                            staged + t * pp + c8);
        }
        return;
    }
    for (int e = lane; e < 16 * cols; e += 32) {
        const int t = row0 + e / cols, c = e % cols;
        if (t < rows && j0 + c < p.dv)
            out[efla_offset(p.out, seq.batch_row, t0 + t, hv, j0 + c)] = staged[t * pp + c];
    }
}

/* Dk moves through shared memory in slices of kOutputSlice columns of Q
 * and S_c^T, two in flight: the next slice's copies overlap this slice's
 * products, and the smaller buffers let more blocks share an SM. */
constexpr int kOutputSlice = EFLA_CUDA_MMA_OUTPUT_SLICE;
constexpr int kSlicePitch = kOutputSlice + 8;

/* Columns of slice sl (the last one may be narrower: dkp is a multiple of 16). */
EFLA_DEV int slice_width(int dkp, int sl) {
    return dkp - sl * kOutputSlice < kOutputSlice ? dkp - sl * kOutputSlice : kOutputSlice;
}

/* Buffers of one slice: Q [C][kSlicePitch], S_c^T [BO][kSlicePitch]. */
template <int BO> EFLA_DEV uint16_t *slice_q(uint16_t *smem, int stage) {
    return smem + stage * (kChunk + BO) * kSlicePitch;
}

/* Warps w and w + 4 share chunk rows 16 (w % 4), each with half of the BO
 * output columns. */
template <int DT, int BO> EFLA_DEV void output_mma(const efla_cuda_params &p) {
    constexpr int NTW = BO / 16; /* column tiles per warp, at most */
    const int warp = efla_tid() >> 5, row0 = 16 * (warp % 4), half = warp / 4;
    const int64_t g = efla_block_x();
    /* 32-bit: grid y is below 2^16 */
    const uint32_t by = (uint32_t)efla_block_y(), tiles = (uint32_t)p.output_tiles;
    const int64_t slot = by / tiles, tile = by % tiles;
    const int64_t hv = p.hv_begin + slot, j0 = tile * BO;
    const efla_cuda_sequence seq = efla_sequence(p, efla_chunk_owner(p, g));
    const int64_t t0 = seq.first + (g - seq.first_chunk) * kChunk;
    const int rows = (int)efla_min64(kChunk, seq.first + seq.length - t0);
    const int dkp = (int)efla_cuda_pad16(p.dk), dvp = (int)efla_cuda_pad16(p.dv);
    const int cols = (int)efla_min64(BO, dvp - j0); /* a multiple of 16 */
    const int wcols = cols / 2, c0 = half * wcols;  /* this warp's columns */
    const int64_t h = efla_key_head(p, hv);
    const MmaChunk src = mma_chunk(p, g, slot);
    const RowSource queries = row_source(p.q, seq, t0, rows, h);

    constexpr int SP = BO + 8;
    uint16_t *smem = reinterpret_cast<uint16_t *>(efla_smem());
    uint16_t *vt = slice_q<BO>(smem, 2); /* V'^T [BO][PC] */
    uint16_t *pm = vt + BO * kPitchC;    /* P [C][PC] */
    float *ck = reinterpret_cast<float *>(pm + kChunk * kPitchC), *rq = ck + kChunk;
    uint16_t *staged = smem; /* O [C][SP], once the slices are done */

    const int slices = (dkp + kOutputSlice - 1) / kOutputSlice;
    auto issue_slice = [&](int sl) {
        const int i0 = sl * kOutputSlice, width = slice_width(dkp, sl);
        uint16_t *q = slice_q<BO>(smem, sl % 2), *ht = q + kChunk * kSlicePitch;
        copy_rows_async<kOutputThreads>(ht, kSlicePitch, src.ht + j0 * dkp + i0, dkp, cols, width);
        load_rows<kOutputThreads>(p.q, queries, (int)p.dk, width, q, kSlicePitch, i0);
    };
    issue_slice(0);
    copy_rows_async<kOutputThreads>(vt, kPitchC, src.vnt + j0 * kChunk, kChunk, cols, kChunk);
    copy_rows_async<kOutputThreads>(pm, kPitchC, src.pm, kPitchC, kChunk, kChunk);
    copy_rows_async<kOutputThreads>(reinterpret_cast<uint16_t *>(ck), 4 * kChunk,
                                    reinterpret_cast<const uint16_t *>(src.ck), 4 * kChunk, 1,
                                    4 * kChunk);
    efla_cp_async_commit();

    float o[NTW][4] = {};
    for (int sl = 0; sl < slices; ++sl) {
        if (sl + 1 < slices) {
            issue_slice(sl + 1);
            efla_cp_async_commit();
            efla_cp_async_wait_one();
        } else {
            efla_cp_async_wait_all();
        }
        efla_sync(); /* slice sl has landed */
        const uint16_t *q = slice_q<BO>(smem, sl % 2), *ht = q + kChunk * kSlicePitch;
        warp_tiles<DT, NTW>(o, q, kSlicePitch, row0, ht, kSlicePitch, c0, slice_width(dkp, sl),
                            wcols / 8);
        efla_sync(); /* its buffers are free for slice sl + 2, or the staging */
    }
    for (int t = 0; t < NTW; ++t)
        for (int e = 0; e < 4; ++e)
            o[t][e] *= rq[row0 + efla_acc_row(e)];
    /* P V': P is zero past the warp's last row, so k stops there. */
    warp_tiles<DT, NTW>(o, pm, kPitchC, row0, vt, kPitchC, c0, row0 + 16, wcols / 8);
    for (int t = 0; t < NTW; ++t) {
        if (8 * t >= wcols) break;
        for (int e = 0; e < 4; ++e)
            staged[(row0 + efla_acc_row(e)) * SP + c0 + 8 * t + efla_acc_col(e)] =
                efla_f32_to_half<DT>(p.scale * o[t][e]);
    }
    efla_syncwarp();
    store_output_rows<DT>(p, seq, t0, rows, hv, j0 + c0, wcols, staged + c0, SP, row0);
}

} // namespace

#endif
