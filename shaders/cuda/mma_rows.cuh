/*
 * What the three mma kernels share: the scratch of one (chunk, value head)
 * (layout in efla_cuda_params.h), warp tile products, and 16-byte row
 * copies between tensors, the scratch and shared memory.
 */
#ifndef EFLA_MMA_ROWS_CUH
#define EFLA_MMA_ROWS_CUH

#include "chunk_common.cuh"
#include "mma_common.cuh"

namespace {

constexpr int kChunk = EFLA_CUDA_CHUNK;
constexpr int kPitchC = EFLA_CUDA_MMA_PITCH_C;

struct MmaChunk {
    uint16_t *w, *kt, *u, *vnt, *ht, *pm;
    float *ck, *rq;
};

EFLA_DEV MmaChunk mma_chunk(const efla_cuda_params &p, int64_t chunk, int64_t slot) {
    const efla_cuda_mma_layout l = efla_cuda_mma_scratch_layout(p.dk, p.dv);
    uint16_t *base =
        reinterpret_cast<uint16_t *>(p.scratch) + (chunk * p.hv_count + slot) * l.total;
    MmaChunk s;
    s.w = base + l.w;
    s.kt = base + l.kt;
    s.u = base + l.u;
    s.vnt = base + l.vnt;
    s.ht = base + l.ht;
    s.pm = base + l.pm;
    s.ck = reinterpret_cast<float *>(base + l.factors);
    s.rq = s.ck + kChunk;
    return s;
}

/* acc[t] += A[row0.., 0..k) B_t for n-tiles t < ntiles (t < NT) at columns
 * n0 + 8 t; A row-major (pitch pa), B given as Bt[n][k] (pitch pb).
 * PAIRED: B tiles load in pairs (one ldmatrix.x4 for two), half the
 * shared-memory instructions, for a few more registers (the prepare
 * kernel, at three blocks' 80, would spill). */
template <int DT, int NT, bool PAIRED = false>
EFLA_DEV void warp_tiles(float (*acc)[4], const uint16_t *a, int pa, int row0, const uint16_t *bt,
                         int pb, int n0, int k, int ntiles) {
    for (int k0 = 0; k0 < k; k0 += 16) {
        uint32_t fa[4];
        efla_load_a(fa, a, pa, row0, k0);
#pragma unroll
        for (int t = 0; t < NT; t += PAIRED ? 2 : 1) {
            if (t >= ntiles) break;
            if (PAIRED && t + 1 < NT && t + 1 < ntiles) {
                uint32_t fb[2][2];
                efla_load_b_pair(fb, bt, pb, n0 + 8 * t, k0);
                efla_mma<DT>(acc[t], fa, fb[0]);
                efla_mma<DT>(acc[t + 1 < NT ? t + 1 : t], fa, fb[1]);
            } else {
                uint32_t fb[2];
                efla_load_b(fb, bt, pb, n0 + 8 * t, k0);
                efla_mma<DT>(acc[t], fa, fb);
            }
        }
    }
}

/* As warp_tiles, with the k steps alternating between acc and acc2: two
 * independent mma chains, half the latency of one (the caller adds them). */
template <int DT, int NT>
EFLA_DEV void warp_tiles2(float (*acc)[4], float (*acc2)[4], const uint16_t *a, int pa, int row0,
                          const uint16_t *bt, int pb, int n0, int k, int ntiles) {
    for (int k0 = 0; k0 < k; k0 += 32) {
        uint32_t fa[4], fa2[4];
        const bool pair = k0 + 16 < k;
        efla_load_a(fa, a, pa, row0, k0);
        if (pair) efla_load_a(fa2, a, pa, row0, k0 + 16);
#pragma unroll
        for (int t = 0; t < NT; ++t) {
            if (t >= ntiles) break;
            uint32_t fb[2], fb2[2];
            efla_load_b(fb, bt, pb, n0 + 8 * t, k0);
            efla_mma<DT>(acc[t], fa, fb);
            if (pair) {
                efla_load_b(fb2, bt, pb, n0 + 8 * t, k0 + 16);
                efla_mma<DT>(acc2[t], fa2, fb2);
            }
        }
    }
}

/* Whether rows of d elements of `t` move as 16-byte pieces: unit inner
 * stride, 8-element strides, 16-byte aligned address, d a multiple of 8. */
EFLA_DEV bool rows_vectorizable(const efla_cuda_tensor &t, int64_t d) {
    return t.stride[3] == 1 && d % 8 == 0 && t.stride[2] % 8 == 0 && t.stride[1] % 8 == 0 &&
           t.stride[0] % 8 == 0 && t.address % 16 == 0;
}

/* copy(r, c8) for every 16-byte piece of a rows x cols (a multiple of 8)
 * 16-bit block. When the pieces per row divide the threads, each thread
 * keeps one column and steps over rows: no division per piece (these
 * loops sit on the state kernel's serial path); by shifts where the
 * pieces are a power of two (every full-width slice and tile), as the
 * divisions by a runtime count were a good part of the output kernel's
 * instructions. */
template <int THREADS, typename Copy> EFLA_DEV void for_each_piece(int rows, int cols, Copy copy) {
    const int pieces = cols >> 3;
    if ((pieces & (pieces - 1)) == 0 && pieces <= THREADS) {
        const int shift = efla_log2_pow2((uint32_t)pieces);
        const int c8 = 8 * (efla_tid() & (pieces - 1)), step = THREADS >> shift;
        for (int r = efla_tid() >> shift; r < rows; r += step)
            copy(r, c8);
        return;
    }
    if (THREADS % pieces == 0) {
        const int c8 = 8 * (efla_tid() % pieces), step = THREADS / pieces;
        for (int r = efla_tid() / pieces; r < rows; r += step)
            copy(r, c8);
        return;
    }
    for (int e = efla_tid(); e < rows * pieces; e += THREADS)
        copy(e / pieces, 8 * (e % pieces));
}

/* rows x cols 16-bit elements from `from` (pitch pf) to `to` (pitch pt) in
 * 16-byte pieces; both 16-byte aligned. */
template <int THREADS>
EFLA_DEV void copy_rows(uint16_t *to, int64_t pt, const uint16_t *from, int64_t pf, int rows,
                        int cols) {
    for_each_piece<THREADS>(
        rows, cols, [&](int r, int c8) { efla_copy16(to + r * pt + c8, from + r * pf + c8); });
}

/* The same as asynchronous copies into shared memory (cp.async). */
template <int THREADS>
EFLA_DEV void copy_rows_async(uint16_t *to, int pt, const uint16_t *from, int64_t pf, int rows,
                              int cols) {
    for_each_piece<THREADS>(
        rows, cols, [&](int r, int c8) { efla_cp_async16(to + r * pt + c8, from + r * pf + c8); });
}

/* Where a chunk's rows of one head start: the element at (row t0, column
 * 0), and how many rows of the chunk exist. Computed once, so a kernel
 * carries one pointer to a later load instead of the sequence, t0 and the
 * head. */
struct RowSource {
    const uint16_t *first;
    int rows;
};

EFLA_DEV RowSource row_source(const efla_cuda_tensor &t, const efla_cuda_sequence &seq, int64_t t0,
                              int rows, int64_t head) {
    RowSource s;
    s.first =
        reinterpret_cast<const uint16_t *>(t.address) + efla_offset(t, seq.batch_row, t0, head, 0);
    s.rows = rows;
    return s;
}

/* Columns i0 .. i0 + width - 1 of the chunk's 16-bit rows `from` (of
 * tensor t, d columns) into dst[C][pitch], as stored (bits), zero past
 * from.rows and past d. Where rows move as 16-byte pieces they are
 * cp.async copies (all in flight at once): the caller commits and waits.
 * i0 and width are multiples of 8. */
template <int THREADS>
EFLA_DEV void load_rows(const efla_cuda_tensor &t, const RowSource &from, int d, int width,
                        uint16_t *dst, int pitch, int i0 = 0) {
    const int64_t stride = t.stride[1];
    if (rows_vectorizable(t, d)) {
        const uint16_t *first = from.first + i0;
        for_each_piece<THREADS>(kChunk, width, [&](int r, int c8) {
            uint16_t *to = dst + r * pitch + c8;
            if (r < from.rows && i0 + c8 < d)
                efla_cp_async16(to, first + r * stride + c8);
            else
                efla_zero16(to);
        });
        return;
    }
    for (int e = efla_tid(); e < kChunk * width; e += THREADS) {
        const int r = e / width, i = i0 + e % width;
        dst[r * pitch + i - i0] =
            r < from.rows && i < d ? from.first[r * stride + i * t.stride[3]] : 0;
    }
}

} // namespace

#endif
