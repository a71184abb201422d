/*
 * mma values: one block of 8 warps per (chunk, value head), after the
 * prepare kernel: U^T [dvp][C] = V^T (A^-1 diag(g))^T, the state kernel's
 * U^T, from the value rows as stored (cp.async, no conversion) and the
 * prepare kernel's A^-1 diag(g). V^T comes straight from the rows by
 * ldmatrix.trans. Apart from prepare: nothing waits for V's rows there,
 * and this kernel's small shared memory lets many blocks share an SM.
 */
#ifndef EFLA_MMA_VALUES_CUH
#define EFLA_MMA_VALUES_CUH

#include "mma_rows.cuh"

namespace {

constexpr int kValuesThreads = EFLA_CUDA_MMA_VALUES_THREADS;

/* acc[t] = (V^T B)[row0.., n0 + 8t..] with V^T from the rows v [C][vp] and
 * B given as Bt[n][k] = ig [C][PC]. */
template <int DT, int NT>
EFLA_DEV void values_tiles(float (*acc)[4], const uint16_t *v, int vp, int row0, const uint16_t *ig,
                           int n0) {
#pragma unroll
    for (int k0 = 0; k0 < kChunk; k0 += 16) {
        uint32_t fa[4];
        efla_load_a_trans(fa, v, vp, row0, k0);
#pragma unroll
        for (int t = 0; t < NT; t += 2) {
            uint32_t fb[2][2];
            efla_load_b_pair(fb, ig, kPitchC, n0 + 8 * t, k0);
            efla_mma<DT>(acc[t], fa, fb[0]);
            efla_mma<DT>(acc[t + 1], fa, fb[1]);
        }
    }
}

template <int DT> EFLA_DEV void values_mma(const efla_cuda_params &p) {
    constexpr int kHalf = kChunk / 16; /* n8 tiles per half of the positions */
    const int64_t g = efla_block_x(), slot = efla_block_y();
    const int64_t hv = p.hv_begin + slot;
    const efla_cuda_sequence seq = efla_sequence(p, efla_chunk_owner(p, g));
    const int64_t t0 = seq.first + (g - seq.first_chunk) * kChunk;
    const int rows = (int)efla_min64(kChunk, seq.first + seq.length - t0);
    const int dvp = (int)efla_cuda_pad16(p.dv), vp = dvp + 8;
    const MmaChunk out = mma_chunk(p, g, slot);
    uint16_t *v = reinterpret_cast<uint16_t *>(efla_smem()); /* [C][vp] */
    uint16_t *ig = v + kChunk * vp;                          /* [C][PC] */

    load_rows<kValuesThreads>(p.v, seq, t0, rows, hv, (int)p.dv, dvp, v, vp);
    copy_rows_async<kValuesThreads>(ig, kPitchC, out.ig, kPitchC, kChunk, kChunk);
    efla_cp_async_commit();
    efla_cp_async_wait_all();
    efla_sync();

    /* Warp w takes the (16 value rows, half of the positions) jobs w, w + 8, ... */
    const int lane = efla_tid() & 31, rg = lane >> 2, c2 = 2 * (lane & 3);
    for (int job = efla_tid() >> 5; job < 2 * (dvp / 16); job += kValuesThreads / 32) {
        const int row0 = 16 * (job / 2), n0 = 8 * kHalf * (job % 2);
        float acc[kHalf][4] = {};
        values_tiles<DT, kHalf>(acc, v, vp, row0, ig, n0);
        uint16_t *top = out.u + (row0 + rg) * kPitchC + n0 + c2, *bottom = top + 8 * kPitchC;
#pragma unroll
        for (int t = 0; t < kHalf; ++t) {
            *reinterpret_cast<uint32_t *>(top + 8 * t) = efla_pack_half2<DT>(acc[t][0], acc[t][1]);
            *reinterpret_cast<uint32_t *>(bottom + 8 * t) =
                efla_pack_half2<DT>(acc[t][2], acc[t][3]);
        }
    }
}

} // namespace

#endif
