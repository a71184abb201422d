/*
 * The recurrent forward (ALGORITHM.md §2.1), for decode and short
 * sequences: bound by the state's bytes, so the state is read once and
 * written once, with as many of those bytes in flight as an SM can hold.
 *
 * One block of 128 threads per (sequence, value head, 32-column tile of
 * the state). Thread t owns the 4 columns j = tile*32 + 4 (t%8) .. +3 of
 * rows i = t/8 + 16m (class / 16 of them), so one warp instruction moves
 * 4 whole 128-byte rows as 16-byte accesses. The tile lives in shared
 * memory, not in registers: it arrives by cp.async, which holds no
 * registers while in flight, and the kernel's few registers (56 on sm_90a)
 * let nine blocks share an SM at Dk 128 (four when the tile was in
 * registers). A thread only ever touches its own cells of the tile, so the
 * tile needs no barrier. Per token:  u = v - S^T k;  o = scale (S^T q + alpha u (k.q));
 * S += alpha k u^T (o uses the old S: S_t^T q = S_{t-1}^T q + alpha u
 * (k.q)), so the two column sums share one reduction: across the 4 row
 * slots of a warp by shuffles, across the 4 warps through shared memory.
 * Every warp computes |k|^2, |q|^2 and k.q itself, every thread its own
 * columns' u, so a token costs two barriers; k, q, v and beta of a token
 * are all requested before the first (for T = 1: with the state, in one
 * memory round trip).
 */
#include "device_common.cuh"

namespace {

constexpr int kThreads = EFLA_CUDA_RECURRENT_THREADS;
constexpr int kWarps = kThreads / 32;
constexpr int kTile = EFLA_CUDA_TILE_V;
constexpr int kQuads = kTile / 4;            /* column quads per tile */
constexpr int kRowSlots = kThreads / kQuads; /* 16 */

/* Where this thread's cells are: `first` is element (n, hv, 0, j) of the
 * state tensor (null without one), `cols` the columns from j that exist. */
struct StateCells {
    const efla_cuda_tensor *tensor;
    float *first;
    int64_t cols;
    bool vector; /* 4 columns move as one 16-byte access */
};

EFLA_DEV StateCells state_cells(const efla_cuda_tensor &t, int64_t n, int64_t hv, int64_t j,
                                int64_t dv) {
    StateCells c;
    c.tensor = &t;
    c.first =
        t.address ? reinterpret_cast<float *>(t.address) + efla_offset(t, n, hv, 0, j) : nullptr;
    c.cols = dv - j;
    c.vector = c.cols >= 4 && efla_state_vectorizable(t);
    return c;
}

/* This thread's cells of the tile [class][32] from the state tensor, by
 * cp.async where they move as 16-byte pieces (the caller commits and
 * waits); zeros past dk and dv, and everywhere without a state. */
template <int RPT>
EFLA_DEV void load_cells(const StateCells &from, int64_t dk, int slot, int quad, float *tile) {
    const int64_t row_stride = from.tensor->stride[2], col_stride = from.tensor->stride[3];
#pragma unroll 4
    for (int r = 0; r < RPT; ++r) {
        const int64_t i = slot + kRowSlots * r;
        float *to = tile + i * kTile + 4 * quad;
        if (!from.first || i >= dk || from.cols <= 0) {
            efla_zero16(to);
        } else if (from.vector) {
            efla_cp_async16(to, from.first + i * row_stride);
        } else {
            for (int c = 0; c < 4; ++c)
                to[c] = c < from.cols ? from.first[i * row_stride + c * col_stride] : 0.0f;
        }
    }
}

/* This thread's cells of the tile to the state tensor (which exists). */
template <int RPT>
EFLA_DEV void store_cells(const StateCells &to, int64_t dk, int slot, int quad, const float *tile) {
    if (to.cols <= 0) return;
    const int64_t row_stride = to.tensor->stride[2], col_stride = to.tensor->stride[3];
#pragma unroll 4
    for (int r = 0; r < RPT; ++r) {
        const int64_t i = slot + kRowSlots * r;
        if (i >= dk) break;
        float x[4];
        efla_load4(tile + i * kTile + 4 * quad, x);
        if (to.vector) {
            efla_store4(to.first + i * row_stride, x);
            continue;
        }
        for (int c = 0; c < 4 && c < to.cols; ++c)
            to.first[i * row_stride + c * col_stride] = x[c];
    }
}

template <int DT, int RPT> EFLA_DEV void recurrent(const efla_cuda_params &p) {
    constexpr int kClass = RPT * kRowSlots;
    const int tid = efla_tid(), lane = tid & 31, warp = tid >> 5;
    const int quad = tid % kQuads, slot = tid / kQuads;
    /* 32-bit: the host keeps the grid below 2^31 blocks */
    const uint32_t block = (uint32_t)efla_block_x(), tiles = (uint32_t)p.dv_tiles;
    const uint32_t heads = (uint32_t)p.value_heads;
    const int64_t tile = block % tiles, hv = (block / tiles) % heads;
    const int64_t n = block / (tiles * heads);
    const efla_cuda_sequence seq = efla_sequence(p, n);
    if (seq.length > p.recurrent_max_len) return; /* the chunked kernels take it */
    const int64_t h = efla_key_head(p, hv);
    const int64_t j = tile * kTile + 4 * quad;

    float *cells = efla_smem();                    /* the state tile [kClass][kTile] */
    float *ks = cells + kClass * kTile;            /* [2][kClass], by token parity */
    float *qs = ks + 2 * kClass;                   /* [2][kClass] */
    float *partial = qs + 2 * kClass;              /* [2][kWarps][2][32] */
    float *mine = cells + slot * kTile + 4 * quad; /* this thread's cells: rows +16 */

    load_cells<RPT>(state_cells(p.state_in, n, hv, j, p.dv), p.dk, slot, quad, cells);
    efla_cp_async_commit();
    for (int i = (int)p.dk + tid; i < kClass; i += kThreads)
        ks[i] = ks[kClass + i] = qs[i] = qs[kClass + i] = 0.0f;

    for (int64_t t = 0; t < seq.length; ++t) {
        const int64_t token = seq.first + t;
        const int parity = (int)(t & 1);
        float *k = ks + parity * kClass, *q = qs + parity * kClass;
        float *sums = partial + parity * kWarps * 2 * 32;
        /* This parity's buffers held token t-2's k, q and sums: every thread
         * finished reading them before it reached token t-1's first barrier. */
        const int64_t k_row = efla_offset(p.k, seq.batch_row, token, h, 0);
        const int64_t q_row = efla_offset(p.q, seq.batch_row, token, h, 0);
#pragma unroll 1 /* one or two steps; unrolled, its loads spilled */
        for (int64_t i = tid; i < p.dk; i += kThreads) {
            k[i] = efla_load<DT>(p.k.address, k_row + i * p.k.stride[3]);
            q[i] = efla_load<DT>(p.q.address, q_row + i * p.q.stride[3]);
        }
        const int64_t v_row = efla_offset(p.v, seq.batch_row, token, hv, j);
        float v[4];
#pragma unroll
        for (int c = 0; c < 4; ++c)
            v[c] = c < p.dv - j ? efla_load<DT>(p.v.address, v_row + c * p.v.stride[3]) : 0.0f;
        const float beta =
            efla_load<DT>(p.beta.address, efla_offset(p.beta, seq.batch_row, token, hv, 0));
        if (t == 0) efla_cp_async_wait_all(); /* this thread's cells have arrived */
        efla_sync();                          /* k and q staged */

        float kk = 0.0f, qq = 0.0f, kq = 0.0f;
        for (int i = lane; i < kClass; i += 32) {
            kk += k[i] * k[i];
            qq += q[i] * q[i];
            kq += k[i] * q[i];
        }
        kk = efla_warp_sum(kk);
        kq = efla_warp_sum(kq);
        if (p.l2norm_q) qq = efla_warp_sum(qq);
        const float rk = p.l2norm_k ? efla_l2norm_factor(kk) : 1.0f;
        const float rq = p.l2norm_q ? efla_l2norm_factor(qq) : 1.0f;
        const float lambda = kk * rk * rk;
        kq *= rk * rq;
        const float alpha = p.mode == 1 ? beta : efla_alpha(beta, lambda);

        float sk[4] = {0.0f, 0.0f, 0.0f, 0.0f}, sq[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll 4
        for (int r = 0; r < RPT; ++r) {
            const float kr = k[slot + kRowSlots * r], qr = q[slot + kRowSlots * r];
            float x[4];
            efla_load4(mine + r * kRowSlots * kTile, x);
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                sk[c] += x[c] * kr;
                sq[c] += x[c] * qr;
            }
        }
#pragma unroll
        for (int c = 0; c < 4; ++c)
            for (int mask = kQuads; mask < 32; mask <<= 1) {
                sk[c] += efla_shfl_xor(sk[c], mask);
                sq[c] += efla_shfl_xor(sq[c], mask);
            }
        if (lane < kQuads)
            for (int c = 0; c < 4; ++c) {
                sums[(warp * 2) * 32 + 4 * quad + c] = sk[c];
                sums[(warp * 2 + 1) * 32 + 4 * quad + c] = sq[c];
            }
        efla_sync(); /* the warps' column sums are complete */

        float u[4];
        const int64_t out_row = efla_offset(p.out, seq.batch_row, token, hv, j);
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            float col_k = 0.0f, col_q = 0.0f;
            for (int w = 0; w < kWarps; ++w) {
                col_k += sums[(w * 2) * 32 + 4 * quad + c];
                col_q += sums[(w * 2 + 1) * 32 + 4 * quad + c];
            }
            u[c] = v[c] - rk * col_k;
            if (slot == 0 && c < p.dv - j)
                efla_store<DT>(p.out.address, out_row + c * p.out.stride[3],
                               p.scale * (rq * col_q + alpha * u[c] * kq));
        }
#pragma unroll 4
        for (int r = 0; r < RPT; ++r) {
            const float a = alpha * rk * k[slot + kRowSlots * r];
            float x[4];
            efla_load4(mine + r * kRowSlots * kTile, x);
#pragma unroll
            for (int c = 0; c < 4; ++c)
                x[c] += a * u[c];
            efla_store4(mine + r * kRowSlots * kTile, x);
        }
    }

    if (!p.state_out.address) return;
    efla_cp_async_wait_all(); /* a sequence without tokens copies its state */
    store_cells<RPT>(state_cells(p.state_out, n, hv, j, p.dv), p.dk, slot, quad, cells);
}

} // namespace

/* Shared memory allows ten blocks per SM at Dk 128 and six at Dk 256;
 * ptxas is asked for registers that allow at least eight and six (fewer
 * spilled on some targets). */
#define EFLA_RECURRENT_KERNEL(name, DT, RPT)                                                       \
    EFLA_KERNEL_OCCUPANCY(name, EFLA_CUDA_RECURRENT_THREADS, (RPT) <= 8 ? 8 : 6) {                 \
        recurrent<DT, RPT>(p);                                                                     \
    }

EFLA_RECURRENT_KERNEL(efla_recurrent_f32_k32, EFLA_CUDA_F32, 2)
EFLA_RECURRENT_KERNEL(efla_recurrent_f32_k64, EFLA_CUDA_F32, 4)
EFLA_RECURRENT_KERNEL(efla_recurrent_f32_k128, EFLA_CUDA_F32, 8)
EFLA_RECURRENT_KERNEL(efla_recurrent_f32_k256, EFLA_CUDA_F32, 16)
EFLA_RECURRENT_KERNEL(efla_recurrent_f16_k32, EFLA_CUDA_F16, 2)
EFLA_RECURRENT_KERNEL(efla_recurrent_f16_k64, EFLA_CUDA_F16, 4)
EFLA_RECURRENT_KERNEL(efla_recurrent_f16_k128, EFLA_CUDA_F16, 8)
EFLA_RECURRENT_KERNEL(efla_recurrent_f16_k256, EFLA_CUDA_F16, 16)
EFLA_RECURRENT_KERNEL(efla_recurrent_bf16_k32, EFLA_CUDA_BF16, 2)
EFLA_RECURRENT_KERNEL(efla_recurrent_bf16_k64, EFLA_CUDA_BF16, 4)
EFLA_RECURRENT_KERNEL(efla_recurrent_bf16_k128, EFLA_CUDA_BF16, 8)
EFLA_RECURRENT_KERNEL(efla_recurrent_bf16_k256, EFLA_CUDA_BF16, 16)
