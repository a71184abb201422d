/*
 * mma factor, the first kernel of the split prepare: one block of 8 warps
 * per (chunk, value head). What needs all of Dk and serves every column:
 * the row coefficients, L from the exact stored keys (K K^T), A^-1 by the
 * blocked f32 solve, the output's masked scores P (Q K^T), and the factors
 * A^-1 diag(e) and A^-1 diag(g) in 16 bits for the apply kernel
 * (mma_apply.cuh), which forms W, K^T and U^T from them column tile by
 * column tile. K and Q arrive in Dk slices, the next one's copies in
 * flight during this one's products: ~59 KB of shared memory at any Dk,
 * three blocks per SM where the one-kernel prepare fits two at Dk 256.
 */
#ifndef EFLA_MMA_FACTOR_CUH
#define EFLA_MMA_FACTOR_CUH

#include "mma_prepare.cuh"

namespace {

constexpr int kFactorThreads = EFLA_CUDA_MMA_FACTOR_THREADS;
constexpr int kFactorSlice = EFLA_CUDA_MMA_FACTOR_SLICE;
constexpr int kFactorPitch = kFactorSlice + 8;
static_assert(kFactorThreads == 4 * kChunk, "four threads per row");
static_assert(kFactorPitch == kPitchC, "a slice buffer also stages one [C][PC] matrix");

/* Shared memory of the factor kernel (size: efla_cuda_factor_mma_smem). */
struct FactorSmem {
    uint16_t *buffers; /* four [C][PC]: K and Q of two slices, then the staging of P and factors */
    float *lower;      /* L, then A^-1 [C][LOWER_PITCH] */
    float *block_row;  /* the solve's [16][SOLVE_PITCH] */
    float *ck, *rq, *erase, *write;
};

EFLA_DEV FactorSmem factor_smem() {
    FactorSmem s;
    s.buffers = reinterpret_cast<uint16_t *>(efla_smem());
    s.lower = reinterpret_cast<float *>(s.buffers + 4 * kChunk * kPitchC);
    s.block_row = s.lower + kChunk * EFLA_CUDA_MMA_LOWER_PITCH;
    s.ck = s.block_row + 16 * EFLA_CUDA_MMA_SOLVE_PITCH;
    s.rq = s.ck + kChunk;
    s.erase = s.rq + kChunk;
    s.write = s.erase + kChunk;
    return s;
}

EFLA_DEV uint16_t *factor_buffer(const FactorSmem &s, int i) {
    return s.buffers + i * kChunk * kPitchC;
}

/* What a thread sums over the slices: its warp's 16 rows x 32 columns of
 * K K^T and Q K^T (the tiles at or below the diagonal), and a quarter of
 * one row's |k|^2 and |q|^2. */
struct FactorSums {
    float gram[4][4], scores[4][4];
    float kk, qq;
};

/* n8 tiles of the warp's 32 columns that reach its rows' diagonal. */
EFLA_DEV int factor_tiles() {
    const int warp = efla_tid() >> 5, row0 = 16 * (warp % 4), n0 = 32 * (warp / 4);
    return n0 > row0 + 15 ? 0 : (row0 + 16 - n0 < 32 ? (row0 + 16 - n0) / 8 : 4);
}

EFLA_DEV int slice_columns(int dkp, int sl) {
    return dkp - sl * kFactorSlice < kFactorSlice ? dkp - sl * kFactorSlice : kFactorSlice;
}

/* Slice sl of K and Q into the buffers of stage sl % 2. */
EFLA_DEV void issue_factor_slice(const efla_cuda_params &p, const RowSource &keys,
                                 const RowSource &queries, int dkp, const FactorSmem &s, int sl) {
    const int i0 = sl * kFactorSlice, width = slice_columns(dkp, sl);
    const int stage = 2 * (sl % 2);
    load_rows<kFactorThreads>(p.k, keys, (int)p.dk, width, factor_buffer(s, stage), kPitchC, i0);
    load_rows<kFactorThreads>(p.q, queries, (int)p.dk, width, factor_buffer(s, stage + 1), kPitchC,
                              i0);
}

/* One slice's share of the sums. */
template <int DT>
EFLA_DEV void sum_slice(const uint16_t *k, const uint16_t *q, int width, FactorSums &sum) {
    const int warp = efla_tid() >> 5, row0 = 16 * (warp % 4), n0 = 32 * (warp / 4);
    const int r = efla_tid() / 4, part = efla_tid() % 4;
    for (int i = 8 * part; i < width; i += 32) {
        uint32_t words[4];
        efla_load16(k + r * kPitchC + i, words);
        sum.kk += squares8<DT>(words);
        efla_load16(q + r * kPitchC + i, words);
        sum.qq += squares8<DT>(words);
    }
    const int tiles = factor_tiles();
    if (tiles == 0) return;
    warp_tiles<DT, 4>(sum.gram, k, kPitchC, row0, k, kPitchC, n0, width, tiles);
    warp_tiles<DT, 4>(sum.scores, q, kPitchC, row0, k, kPitchC, n0, width, tiles);
}

/* The row coefficients from the summed squares and beta (s.erase), as in
 * prepare_coefficients; ck and rq also to the scratch for the output. */
EFLA_DEV void factor_coefficients(const efla_cuda_params &p, int rows, const FactorSums &sum,
                                  const FactorSmem &s, const MmaChunk &out) {
    const int r = efla_tid() / 4, part = efla_tid() % 4;
    float kk = sum.kk, qq = sum.qq;
    kk += efla_shfl_xor(kk, 1);
    qq += efla_shfl_xor(qq, 1);
    kk += efla_shfl_xor(kk, 2);
    qq += efla_shfl_xor(qq, 2);
    if (part != 0) return;
    float ck = 0.0f, rq = 0.0f, erase = 0.0f, write = 0.0f;
    if (r < rows) efla_coefficients_of(p, kk, qq, s.erase[r], &ck, &rq, &erase, &write);
    s.ck[r] = out.ck[r] = ck;
    s.rq[r] = out.rq[r] = rq;
    s.erase[r] = erase;
    s.write[r] = write;
}

/* From the sums and coefficients: L [t][s] = e_t ck_t ck_s k_t.k_s for
 * s < t (else 0) into s.lower, and P = mask_{s<=t}(diag(rq) Q K^T
 * diag(ck)) in 16 bits into `staged` [C][PC]. */
template <int DT>
EFLA_DEV void factor_products(const FactorSums &sum, const FactorSmem &s, uint16_t *staged) {
    const int warp = efla_tid() >> 5, row0 = 16 * (warp % 4), n0 = 32 * (warp / 4);
    const int lane = efla_tid() & 31, g = lane >> 2, c2 = 2 * (lane & 3);
    const LaneFactors fl = lane_factors(s.erase, s.ck, s.ck, row0, n0);
    const LaneFactors fp = lane_factors(s.rq, nullptr, s.ck, row0, n0);
#pragma unroll
    for (int t = 0; t < 4; ++t)
        for (int h = 0; h < 2; ++h) {
            const int r = row0 + g + 8 * h, c = n0 + 8 * t + c2;
            float *lower = s.lower + r * EFLA_CUDA_MMA_LOWER_PITCH + c;
            lower[0] = c < r ? fl.row[h] * fl.col[t][0] * sum.gram[t][2 * h] : 0.0f;
            lower[1] = c + 1 < r ? fl.row[h] * fl.col[t][1] * sum.gram[t][2 * h + 1] : 0.0f;
            const float x0 = c <= r ? fp.row[h] * fp.col[t][0] * sum.scores[t][2 * h] : 0.0f;
            const float x1 =
                c + 1 <= r ? fp.row[h] * fp.col[t][1] * sum.scores[t][2 * h + 1] : 0.0f;
            *reinterpret_cast<uint32_t *>(staged + r * kPitchC + c) = efla_pack_half2<DT>(x0, x1);
        }
}

/* The slices of K and Q summed, two in flight; ends after a barrier. */
template <int DT>
EFLA_DEV void factor_sums(const efla_cuda_params &p, const RowSource &keys,
                          const RowSource &queries, int dkp, const FactorSmem &s, FactorSums &sum) {
    const int slices = (dkp + kFactorSlice - 1) / kFactorSlice;
    for (int sl = 0; sl < slices; ++sl) {
        if (sl + 1 < slices) {
            issue_factor_slice(p, keys, queries, dkp, s, sl + 1);
            efla_cp_async_commit();
            efla_cp_async_wait_one();
        } else {
            efla_cp_async_wait_all();
        }
        efla_sync(); /* slice sl has landed */
        const int stage = 2 * (sl % 2);
        sum_slice<DT>(factor_buffer(s, stage), factor_buffer(s, stage + 1), slice_columns(dkp, sl),
                      sum);
        efla_sync(); /* its buffers are free for slice sl + 2, or the staging */
    }
}

template <int DT> EFLA_DEV void factor_mma(const efla_cuda_params &p) {
    const int64_t g = efla_block_x(), slot = efla_block_y();
    const int64_t hv = p.hv_begin + slot, h = hv / (p.value_heads / p.heads);
    const efla_cuda_sequence seq = efla_sequence(p, efla_chunk_owner(p, g));
    const int64_t t0 = seq.first + (g - seq.first_chunk) * kChunk;
    const int rows = (int)efla_min64(kChunk, seq.first + seq.length - t0);
    const int dkp = (int)efla_cuda_pad16(p.dk);
    const FactorSmem s = factor_smem();
    const RowSource keys = row_source(p.k, seq, t0, rows, h);
    const RowSource queries = row_source(p.q, seq, t0, rows, h);

    issue_factor_slice(p, keys, queries, dkp, s, 0);
    efla_cp_async_commit();
    load_betas<DT>(p, seq, t0, rows, hv, s.erase);
    FactorSums sum = {};
    factor_sums<DT>(p, keys, queries, dkp, s, sum);
    const MmaChunk out = mma_chunk(p, g, slot);
    factor_coefficients(p, rows, sum, s, out);
    efla_sync();
    factor_products<DT>(sum, s, factor_buffer(s, 0));
    efla_blocked_inverse<kFactorThreads, EFLA_CUDA_MMA_LOWER_PITCH, EFLA_CUDA_MMA_SOLVE_PITCH>(
        s.lower, s.block_row); /* starts and ends with barriers: P is staged */
    copy_rows<kFactorThreads>(out.pm, kPitchC, factor_buffer(s, 0), kPitchC, kChunk, kChunk);
    inverse_to_half<DT, kFactorThreads>(s.lower, s.erase, factor_buffer(s, 1));
    inverse_to_half<DT, kFactorThreads>(s.lower, s.write, factor_buffer(s, 2));
    efla_sync();
    copy_rows<kFactorThreads>(out.ae, kPitchC, factor_buffer(s, 1), kPitchC, kChunk, kChunk);
    copy_rows<kFactorThreads>(out.ag, kPitchC, factor_buffer(s, 2), kPitchC, kChunk, kChunk);
}

} // namespace

#endif
