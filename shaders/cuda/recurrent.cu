/*
 * The recurrent forward (ALGORITHM.md §2.1), for decode and short
 * sequences: memory-bound, so the state is read once and written once.
 *
 * One block of 128 threads per (sequence, value head, 32-column tile of
 * the state). Thread t owns the 4 columns j = tile*32 + 4 (t%8) .. +3 of
 * rows i = t/8 + 16m (RPT = Dk class / 16 of them, in registers), so one
 * warp instruction moves 4 whole 128-byte rows as 16-byte accesses. Per
 * token:  u = v - S^T k;  o = scale (S^T q + alpha u (k.q));  S += alpha k u^T
 * (o uses the old S: S_t^T q = S_{t-1}^T q + alpha u (k.q)), so the two
 * column sums share one reduction: across the 4 row slots of a warp by
 * shuffles, across the 4 warps through shared memory. Every warp computes
 * |k|^2, |q|^2 and k.q itself, every thread its own columns' u, so a token
 * costs two barriers; k, q, v and beta of a token are all requested
 * before the first (for T = 1: with the state, in one memory round trip).
 */
#include "device_common.cuh"

namespace {

constexpr int kThreads = EFLA_CUDA_RECURRENT_THREADS;
constexpr int kWarps = kThreads / 32;
constexpr int kQuads = EFLA_CUDA_TILE_V / 4; /* column quads per tile */
constexpr int kRowSlots = kThreads / kQuads; /* 16 */

/* Loads (or stores) this thread's 4 columns of state row i. */
EFLA_DEV void state_row_load(const efla_cuda_tensor &t, bool vector, int64_t n, int64_t hv,
                             int64_t i, int64_t j, int64_t dv, float x[4]) {
    if (vector && j + 3 < dv) {
        efla_load4(reinterpret_cast<const float *>(t.address) + efla_offset(t, n, hv, i, j), x);
        return;
    }
    for (int c = 0; c < 4; ++c)
        x[c] = j + c < dv ? efla_state_load(t, n, hv, i, j + c) : 0.0f;
}

EFLA_DEV void state_row_store(const efla_cuda_tensor &t, bool vector, int64_t n, int64_t hv,
                              int64_t i, int64_t j, int64_t dv, const float x[4]) {
    if (vector && j + 3 < dv) {
        efla_store4(reinterpret_cast<float *>(t.address) + efla_offset(t, n, hv, i, j), x);
        return;
    }
    for (int c = 0; c < 4; ++c)
        if (j + c < dv) efla_state_store(t, n, hv, i, j + c, x[c]);
}

template <int DT, int RPT> EFLA_DEV void recurrent(const efla_cuda_params &p) {
    constexpr int kClass = RPT * kRowSlots;
    const int tid = efla_tid(), lane = tid & 31, warp = tid >> 5;
    const int quad = tid % kQuads, slot = tid / kQuads;
    const int64_t block = efla_block_x();
    const int64_t tile = block % p.dv_tiles;
    const int64_t hv = (block / p.dv_tiles) % p.value_heads;
    const int64_t n = block / ((int64_t)p.dv_tiles * p.value_heads);
    const efla_cuda_sequence seq = efla_sequence(p, n);
    if (seq.length > p.recurrent_max_len) return; /* the chunked kernels take it */
    const int64_t h = hv / (p.value_heads / p.heads);
    const int64_t j0 = tile * EFLA_CUDA_TILE_V + 4 * quad;

    float *ks = efla_smem();          /* [2][kClass], by token parity */
    float *qs = ks + 2 * kClass;      /* [2][kClass] */
    float *partial = qs + 2 * kClass; /* [2][kWarps][2][32] */

    float state[RPT][4];
    const bool vector_in = efla_state_vectorizable(p.state_in);
#pragma unroll
    for (int r = 0; r < RPT; ++r) {
        const int64_t i = slot + kRowSlots * r;
        if (p.state_in.address && i < p.dk)
            state_row_load(p.state_in, vector_in, n, hv, i, j0, p.dv, state[r]);
        else
            for (int c = 0; c < 4; ++c)
                state[r][c] = 0.0f;
    }
    for (int i = (int)p.dk + tid; i < kClass; i += kThreads)
        ks[i] = ks[kClass + i] = qs[i] = qs[kClass + i] = 0.0f;

    for (int64_t t = 0; t < seq.length; ++t) {
        const int64_t token = seq.first + t;
        const int parity = (int)(t & 1);
        float *k = ks + parity * kClass, *q = qs + parity * kClass;
        float *sums = partial + parity * kWarps * 2 * 32;
        /* This parity's buffers held token t-2's k, q and sums: every thread
         * finished reading them before it reached token t-1's first barrier. */
        for (int64_t i = tid; i < p.dk; i += kThreads) {
            k[i] = efla_load<DT>(p.k.address, efla_offset(p.k, seq.batch_row, token, h, i));
            q[i] = efla_load<DT>(p.q.address, efla_offset(p.q, seq.batch_row, token, h, i));
        }
        float v[4];
        for (int c = 0; c < 4; ++c)
            v[c] = j0 + c < p.dv ? efla_load<DT>(p.v.address,
                                                 efla_offset(p.v, seq.batch_row, token, hv, j0 + c))
                                 : 0.0f;
        const float beta =
            efla_load<DT>(p.beta.address, efla_offset(p.beta, seq.batch_row, token, hv, 0));
        efla_sync(); /* k and q staged */

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
#pragma unroll
        for (int r = 0; r < RPT; ++r) {
            const float kr = k[slot + kRowSlots * r], qr = q[slot + kRowSlots * r];
#pragma unroll
            for (int c = 0; c < 4; ++c) {
                sk[c] += state[r][c] * kr;
                sq[c] += state[r][c] * qr;
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
#pragma unroll
        for (int c = 0; c < 4; ++c) {
            float col_k = 0.0f, col_q = 0.0f;
            for (int w = 0; w < kWarps; ++w) {
                col_k += sums[(w * 2) * 32 + 4 * quad + c];
                col_q += sums[(w * 2 + 1) * 32 + 4 * quad + c];
            }
            u[c] = v[c] - rk * col_k;
            if (slot == 0 && j0 + c < p.dv)
                efla_store<DT>(p.out.address, efla_offset(p.out, seq.batch_row, token, hv, j0 + c),
                               p.scale * (rq * col_q + alpha * u[c] * kq));
        }
#pragma unroll
        for (int r = 0; r < RPT; ++r) {
            const float a = alpha * rk * k[slot + kRowSlots * r];
#pragma unroll
            for (int c = 0; c < 4; ++c)
                state[r][c] += a * u[c];
        }
    }

    if (!p.state_out.address) return;
    const bool vector_out = efla_state_vectorizable(p.state_out);
#pragma unroll
    for (int r = 0; r < RPT; ++r) {
        const int64_t i = slot + kRowSlots * r;
        if (i < p.dk) state_row_store(p.state_out, vector_out, n, hv, i, j0, p.dv, state[r]);
    }
}

} // namespace

/* Decode is memory-bound: keep enough warps in flight: 4 blocks per SM,
 * at most 128 registers up to Dk 128, 170 for Dk 256; tighter caps spill). */
#define EFLA_RECURRENT_KERNEL(name, DT, RPT)                                                       \
    EFLA_KERNEL_OCCUPANCY(name, EFLA_CUDA_RECURRENT_THREADS, (RPT) <= 8 ? 4 : 3) {                 \
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
