/*
 * mma prepare: one block of T threads (8 or 16 warps) per (chunk, value
 * head). Everything that does not depend on the state: the row coefficients, L from the
 * exact stored keys (K K^T on tensor cores, the factors applied in f32),
 * A^-1 by the blocked f32 solve, W = (A^-1 diag(e)) K^ and K^T,
 * U^T = V^T (A^-1 diag(g))^T from V's rows as stored (V^T by
 * ldmatrix.trans), the output's masked scores P and row factors ck, rq.
 */
#ifndef EFLA_MMA_PREPARE_CUH
#define EFLA_MMA_PREPARE_CUH

#include "bulk_store.cuh"
#include "mma_rows.cuh"

namespace {

/* Warps of a T-thread block; the 64 x 64 products give each warp 16 rows
 * and kChunk / (warps / 4) columns (32 with 8 warps, 16 with 16). */
template <int T> constexpr int kWarps = T / 32;
template <int T> constexpr int kProductTiles = kChunk / (kWarps<T> / 4) / 8;

/* Shared memory of the prepare kernel (sizes: efla_cuda_prepare_mma_smem). */
struct PrepareSmem {
    uint16_t *rows;       /* raw K [C][kp], then W staging */
    uint16_t *transposed; /* raw Q [C][kp], then (ck K)^T [dkp][PC], then raw V [C][vp] */
    uint16_t *inverse;    /* P staging, then A^-1 diag(e), then A^-1 diag(g) [C][PC] */
    float *lower;         /* L, then A^-1 [C][LOWER_PITCH] */
    float *block_row;     /* the solve's [16][SOLVE_PITCH] */
    float *ck, *rq, *erase, *write;
};

EFLA_DEV PrepareSmem prepare_smem(int dkp, int dvp) {
    const int kp = dkp + 8, big = dkp > dvp ? dkp : dvp;
    const int transposed = kChunk * (big + 8) > dkp * kPitchC ? kChunk * (big + 8) : dkp * kPitchC;
    PrepareSmem s;
    s.rows = reinterpret_cast<uint16_t *>(efla_smem());
    s.transposed = s.rows + kChunk * kp;
    s.inverse = s.transposed + transposed;
    s.lower = reinterpret_cast<float *>(s.inverse + kChunk * kPitchC);
    s.block_row = s.lower + kChunk * EFLA_CUDA_MMA_LOWER_PITCH;
    s.ck = s.block_row + 16 * EFLA_CUDA_MMA_SOLVE_PITCH;
    s.rq = s.ck + kChunk;
    s.erase = s.rq + kChunk;
    s.write = s.erase + kChunk;
    return s;
}

/* beta of the chunk's rows into s.erase, loaded while the rows' copies are
 * in flight (not one global round trip per row later). */
template <int DT>
EFLA_DEV void load_betas(const efla_cuda_params &p, const efla_cuda_sequence &seq, int64_t t0,
                         int rows, int64_t hv, const PrepareSmem &s) {
    const int r = efla_tid();
    if (r < rows)
        s.erase[r] =
            efla_load<DT>(p.beta.address, efla_offset(p.beta, seq.batch_row, t0 + r, hv, 0));
}

/* Sum of squares of the 16-bit values in `words` (8 of them). */
template <int DT> EFLA_DEV float squares8(const uint32_t words[4]) {
    float sum = 0.0f;
#pragma unroll
    for (int w = 0; w < 4; ++w) {
        const float lo = efla_half_to_f32<DT>((uint16_t)(words[w] & 0xffffu));
        const float hi = efla_half_to_f32<DT>((uint16_t)(words[w] >> 16));
        sum += lo * lo + hi * hi;
    }
    return sum;
}

/* Row coefficients from the raw rows and beta (s.erase) in shared memory:
 * T / C threads per row (4 or 8) sum |k|^2 and |q|^2 over 16-byte pieces, then one
 * of them computes the row's coefficients, all rows at once. ck and rq
 * also go to the scratch for the output kernel. */
template <int DT, int T>
EFLA_DEV void prepare_coefficients(const efla_cuda_params &p, int rows, const PrepareSmem &s,
                                   int dkp, int kp, const MmaChunk &out) {
    constexpr int kParts = T / kChunk; /* threads per row */
    static_assert(kParts == 4 || kParts == 8, "four or eight threads per row");
    const int r = efla_tid() / kParts, part = efla_tid() % kParts;
    float kk = 0.0f, qq = 0.0f;
    for (int i = 8 * part; i < dkp; i += 8 * kParts) {
        uint32_t words[4];
        efla_load16(s.rows + r * kp + i, words);
        kk += squares8<DT>(words);
        efla_load16(s.transposed + r * kp + i, words);
        qq += squares8<DT>(words);
    }
#pragma unroll
    for (int mask = 1; mask < kParts; mask *= 2) {
        kk += efla_shfl_xor(kk, mask);
        qq += efla_shfl_xor(qq, mask);
    }
    if (part != 0) return;
    float ck = 0.0f, rq = 0.0f, erase = 0.0f, write = 0.0f;
    if (r < rows) efla_coefficients_of(p, kk, qq, s.erase[r], &ck, &rq, &erase, &write);
    s.ck[r] = out.ck[r] = ck;
    s.rq[r] = out.rq[r] = rq;
    s.erase[r] = erase;
    s.write[r] = write;
}

/* transposed[i][s] = ck_s K[s][i]: the unit keys, transposed, from the raw
 * keys; one 8 x 16 block per warp step (ldmatrix.trans), written as pairs. */
template <int DT, int T> EFLA_DEV void transpose_keys(const PrepareSmem &s, int dkp, int kp) {
    const int lane = efla_tid() & 31, g = lane >> 2, c2 = 2 * (lane & 3);
    for (int b = efla_tid() >> 5; b < (kChunk / 8) * (dkp / 16); b += kWarps<T>) {
        const int r0 = 8 * (b % (kChunk / 8)), i0 = 16 * (b / (kChunk / 8)), r = r0 + c2;
        uint32_t m[2];
        efla_load_trans2(m, s.rows, kp, r0, i0);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
            const float lo = s.ck[r] * efla_half_to_f32<DT>((uint16_t)(m[h] & 0xffffu));
            const float hi = s.ck[r + 1] * efla_half_to_f32<DT>((uint16_t)(m[h] >> 16));
            *reinterpret_cast<uint32_t *>(s.transposed + (i0 + 8 * h + g) * kPitchC + r) =
                efla_pack_half2<DT>(lo, hi);
        }
    }
}

/* inverse = A^-1 diag(f) in 16 bits, from the f32 A^-1: four columns per
 * thread and step (16-byte loads, 8-byte stores), all of a thread's steps
 * unrolled so that their loads are in flight together. */
template <int DT, int T> EFLA_DEV void inverse_to_half(const PrepareSmem &s, const float *f) {
    constexpr int kQuads = kChunk * kChunk / 4;
    static_assert(kQuads % T == 0, "whole steps");
#pragma unroll
    for (int step = 0; step < kQuads / T; ++step) {
        const int e = efla_tid() + step * T, t = e / (kChunk / 4);
        const int c = 4 * (e % (kChunk / 4));
        float x[4], y[4];
        efla_load4(s.lower + t * EFLA_CUDA_MMA_LOWER_PITCH + c, x);
        efla_load4(f + c, y);
        uint32_t *to = reinterpret_cast<uint32_t *>(s.inverse + t * kPitchC + c);
        to[0] = efla_pack_half2<DT>(x[0] * y[0], x[1] * y[1]);
        to[1] = efla_pack_half2<DT>(x[2] * y[2], x[3] * y[3]);
    }
}

/* rows[t][0..n) = A^-1 [t][..] transposed^T: warp w takes rows 16 (w % 4)
 * and every (warps / 4)-th block of 32 columns from block w / 4 (the last
 * block may be narrower). */
template <int DT, int T> EFLA_DEV void times_inverse(const PrepareSmem &s, int n, int rp) {
    const int warp = efla_tid() >> 5, row0 = 16 * (warp % 4);
    for (int n0 = 32 * (warp / 4); n0 < n; n0 += 8 * kWarps<T>) {
        const int tiles = n - n0 < 32 ? (n - n0) / 8 : 4;
        float acc[4][4] = {};
        warp_tiles<DT, 4>(acc, s.inverse, kPitchC, row0, s.transposed, kPitchC, n0, kChunk, tiles);
#pragma unroll
        for (int t = 0; t < 4; ++t) {
            if (t >= tiles) break;
            for (int e = 0; e < 4; ++e)
                s.rows[(row0 + efla_acc_row(e)) * rp + n0 + 8 * t + efla_acc_col(e)] =
                    efla_f32_to_half<DT>(acc[t][e]);
        }
    }
}

/* acc[t] += (V^T B)[row0.., n0 + 8t..] with V^T from the rows v [C][vp]
 * (ldmatrix.trans) and B given as Bt[n][k] = inverse [C][PC]. */
template <int DT, int NT>
EFLA_DEV void values_tiles(float (*acc)[4], const uint16_t *v, int vp, int row0,
                           const uint16_t *inverse, int n0) {
    for (int k0 = 0; k0 < kChunk; k0 += 16) {
        uint32_t fa[4];
        efla_load_a_trans(fa, v, vp, row0, k0);
#pragma unroll
        for (int t = 0; t < NT; t += 2) {
            uint32_t fb[2][2];
            efla_load_b_pair(fb, inverse, kPitchC, n0 + 8 * t, k0);
            efla_mma<DT>(acc[t], fa, fb[0]);
            efla_mma<DT>(acc[t + 1], fa, fb[1]);
        }
    }
}

/* U^T rows staged per round: L and the solve's block row are done by the
 * time U^T is formed, and hold this many rows of pitch PC. */
constexpr int kUtRoundRows =
    16 * ((4 * (kChunk * EFLA_CUDA_MMA_LOWER_PITCH + 16 * EFLA_CUDA_MMA_SOLVE_PITCH)) /
          (2 * 16 * kPitchC));

/* U^T [dvp][C] = V^T (A^-1 diag(g))^T, V's rows in `transposed`, to the
 * scratch `ut` (pitch PC, the state kernel's): per round of up to
 * kUtRoundRows rows, the accumulators as 16-bit pairs into shared memory
 * (over L), then stored as a block (bulk_store.cuh), not by 4-byte
 * global stores from the accumulators. Warp w takes the (row tile, half
 * of the positions) pairs w, w + warps, ... (half: the registers of the
 * 8-warp kernel's three blocks per SM).
 * Starts after a barrier. */
template <int DT, int T>
EFLA_DEV void values_times_inverse(const PrepareSmem &s, int dvp, uint16_t *ut) {
    constexpr int kHalf = kChunk / 16; /* position tiles per half */
    const int lane = efla_tid() & 31, g = lane >> 2, c2 = 2 * (lane & 3);
    uint16_t *staging = reinterpret_cast<uint16_t *>(s.lower);
#pragma unroll 1
    for (int r0 = 0; r0 < dvp; r0 += kUtRoundRows) {
        const int rows = dvp - r0 < kUtRoundRows ? dvp - r0 : kUtRoundRows;
        if (r0 > 0) {
            release_stores(); /* the last round's store has read the staging */
            efla_sync();
        }
        for (int job = efla_tid() >> 5; job < 2 * (rows / 16); job += kWarps<T>) {
            const int row0 = 16 * (job / 2), n0 = 8 * kHalf * (job % 2);
            float acc[kHalf][4] = {};
            values_tiles<DT, kHalf>(acc, s.transposed, dvp + 8, r0 + row0, s.inverse, n0);
            uint32_t *top = reinterpret_cast<uint32_t *>(staging + (row0 + g) * kPitchC + n0 + c2);
#pragma unroll
            for (int t = 0; t < kHalf; ++t) {
                top[4 * t] = efla_pack_half2<DT>(acc[t][0], acc[t][1]);
                top[4 * t + 4 * kPitchC] = efla_pack_half2<DT>(acc[t][2], acc[t][3]);
            }
        }
        proxy_fence();
        efla_sync(); /* the round's rows are staged */
        store_block<T>(ut + r0 * kPitchC, staging, rows, kPitchC, kChunk);
    }
}

/* The lane's factors for its accumulator rows (g, g + 8 of row0) and
 * columns (2c, 2c + 1 of each of the 4 n8 tiles from n0), read after the
 * products (registers) but before any result is stored (stores through
 * other pointers would otherwise make the compiler read them again after
 * each). */
template <int NT> struct LaneFactors { float row[2], col[NT][2]; };

template <int NT>
EFLA_DEV LaneFactors<NT> lane_factors(const float *rows, const float *rows2, const float *cols,
                                      int row0, int n0) {
    const int lane = efla_tid() & 31, g = lane >> 2, c2 = 2 * (lane & 3);
    LaneFactors<NT> f;
    for (int h = 0; h < 2; ++h)
        f.row[h] = rows[row0 + g + 8 * h] * (rows2 ? rows2[row0 + g + 8 * h] : 1.0f);
    for (int t = 0; t < NT; ++t)
        for (int i = 0; i < 2; ++i)
            f.col[t][i] = cols[n0 + 8 * t + c2 + i];
    return f;
}

/* P = mask_{s<=t}(diag(rq) Q K^T diag(ck)) [C][PC] in 16 bits, from the
 * accumulators into `staged` (shared; the caller stores it as a block),
 * from the raw rows: the warp's 16 rows, 8 NT of the 64
 * columns; tiles wholly above the diagonal are zeros without products. */
template <int DT, int T>
EFLA_DEV void masked_scores(const PrepareSmem &s, int dkp, int kp, uint16_t *staged) {
    constexpr int NT = kProductTiles<T>;
    const int warp = efla_tid() >> 5, row0 = 16 * (warp % 4), n0 = 8 * NT * (warp / 4);
    const int lane = efla_tid() & 31, g = lane >> 2, c2 = 2 * (lane & 3);
    const int below = row0 + 16 - n0; /* columns of the warp's block on or below the diagonal */
    const int tiles = below <= 0 ? 0 : (below < 8 * NT ? below / 8 : NT);
    float acc[NT][4] = {};
    if (tiles > 0) warp_tiles<DT, NT>(acc, s.transposed, kp, row0, s.rows, kp, n0, dkp, tiles);
    const LaneFactors<NT> f = lane_factors<NT>(s.rq, nullptr, s.ck, row0, n0);
#pragma unroll
    for (int t = 0; t < NT; ++t)
        for (int h = 0; h < 2; ++h) {
            const int r = row0 + g + 8 * h, c = n0 + 8 * t + c2;
            const float x0 = c <= r ? f.row[h] * f.col[t][0] * acc[t][2 * h] : 0.0f;
            const float x1 = c + 1 <= r ? f.row[h] * f.col[t][1] * acc[t][2 * h + 1] : 0.0f;
            *reinterpret_cast<uint32_t *>(staged + r * kPitchC + c) = efla_pack_half2<DT>(x0, x1);
        }
}

/* lower[t][s] = e_t ck_t ck_s k_t.k_s for s < t, else 0: the warp's 16
 * rows, 8 NT of the 64 columns. */
template <int DT, int T> EFLA_DEV void keys_gram(const PrepareSmem &s, int dkp, int kp) {
    constexpr int NT = kProductTiles<T>;
    const int warp = efla_tid() >> 5, row0 = 16 * (warp % 4), n0 = 8 * NT * (warp / 4);
    float acc[NT][4] = {};
    warp_tiles<DT, NT>(acc, s.rows, kp, row0, s.rows, kp, n0, dkp, NT);
    const LaneFactors<NT> f = lane_factors<NT>(s.erase, s.ck, s.ck, row0, n0);
#pragma unroll
    for (int t = 0; t < NT; ++t)
        for (int e = 0; e < 4; ++e) {
            const int r = row0 + efla_acc_row(e), c = n0 + 8 * t + efla_acc_col(e);
            s.lower[r * EFLA_CUDA_MMA_LOWER_PITCH + c] =
                c < r ? f.row[e / 2] * f.col[t][e % 2] * acc[t][e] : 0.0f;
        }
}

template <int DT, int T> EFLA_DEV void prepare_mma(const efla_cuda_params &p) {
    const int64_t g = efla_block_x(), slot = efla_block_y();
    const int64_t hv = p.hv_begin + slot, h = efla_key_head(p, hv);
    const efla_cuda_sequence seq = efla_sequence(p, efla_chunk_owner(p, g));
    const int64_t t0 = seq.first + (g - seq.first_chunk) * kChunk;
    const int rows = (int)efla_min64(kChunk, seq.first + seq.length - t0);
    const int dkp = (int)efla_cuda_pad16(p.dk), dvp = (int)efla_cuda_pad16(p.dv), kp = dkp + 8;
    const MmaChunk out = mma_chunk(p, g, slot);
    const PrepareSmem s = prepare_smem(dkp, dvp);

    load_rows<T>(p.k, row_source(p.k, seq, t0, rows, h), (int)p.dk, dkp, s.rows, kp);
    load_rows<T>(p.q, row_source(p.q, seq, t0, rows, h), (int)p.dk, dkp, s.transposed, kp);
    efla_cp_async_commit();
    load_betas<DT>(p, seq, t0, rows, hv, s);
    efla_cp_async_wait_all();
    efla_sync();
    prepare_coefficients<DT, T>(p, rows, s, dkp, kp, out);
    efla_sync();
    keys_gram<DT, T>(s, dkp, kp);
    masked_scores<DT, T>(s, dkp, kp, s.inverse); /* free until the solve's result */
    proxy_fence();
    efla_sync(); /* raw Q read, P staged */
    store_block<T>(out.pm, s.inverse, kChunk, kPitchC, kChunk);
    transpose_keys<DT, T>(s, dkp, kp); /* over raw Q, which is no longer needed */
    proxy_fence();
    release_stores(); /* P read before A^-1 diag(e) overwrites it */
    efla_blocked_inverse<T, EFLA_CUDA_MMA_LOWER_PITCH, EFLA_CUDA_MMA_SOLVE_PITCH>(
        s.lower, s.block_row); /* starts and ends with barriers */
    store_block<T>(out.kt, s.transposed, dkp, kPitchC, kChunk);
    inverse_to_half<DT, T>(s, s.erase); /* W = (A^-1 diag(e)) K^ */
    efla_sync();
    times_inverse<DT, T>(s, dkp, kp); /* over the raw keys, which are done */
    proxy_fence();
    release_stores(); /* K^T read before V's rows overwrite it */
    efla_sync();
    /* V's rows over K^T, in flight while W goes out; their address worked
     * out here: held from the start, it spilled on sm_90a */
    load_rows<T>(p.v, row_source(p.v, seq, t0, rows, hv), (int)p.dv, dvp, s.transposed, dvp + 8);
    efla_cp_async_commit();
    store_block<T>(out.w, s.rows, kChunk, kp, dkp);
    inverse_to_half<DT, T>(s, s.write); /* U = (A^-1 diag(g)) V */
    efla_cp_async_wait_all();
    efla_sync();
    /* U^T's address recomputed: held from the start, it spilled on sm_90a */
    values_times_inverse<DT, T>(s, dvp, mma_chunk(p, g, slot).u);
    release_stores(); /* W and U^T read before the block's shared memory goes */
}

} // namespace

#endif
