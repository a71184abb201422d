/*
 * The recurrent forward (ALGORITHM.md §2.1), for decode and short
 * sequences: memory-bound, so the state is read once and written once.
 *
 * One block of 128 threads per (sequence, value head, 32-column tile of
 * the state). Lane l owns column j = tile*32 + l; warp w owns rows
 * i = w, w+4, w+8, ... (RPT = Dk class / 4 of them, in registers), so each
 * warp reads and writes whole 128-byte rows of the state. Per token:
 *   u = v - S^T k;  o = scale (S^T q + alpha u (k.q));  S += alpha k u^T
 * (o uses the old S: S_t^T q = S_{t-1}^T q + alpha u (k.q)), so the two
 * column sums share one cross-warp reduction.
 */
#include "device_common.cuh"

namespace {

constexpr int kWarps = EFLA_CUDA_RECURRENT_THREADS / 32;

/* Block-wide sums of a and b; every thread gets the same values. Contains
 * barriers: every thread of the block must call it. */
EFLA_DEV void block_sum2(float &a, float &b, float *slots) {
    const int lane = efla_tid() & 31, warp = efla_tid() >> 5;
    a = efla_warp_sum(a);
    b = efla_warp_sum(b);
    if (lane == 0) {
        slots[2 * warp] = a;
        slots[2 * warp + 1] = b;
    }
    efla_sync();
    a = 0.0f;
    b = 0.0f;
    for (int w = 0; w < kWarps; ++w) {
        a += slots[2 * w];
        b += slots[2 * w + 1];
    }
    efla_sync(); /* the slots may be reused at once */
}

template <int DT, int RPT> EFLA_DEV void recurrent(const efla_cuda_params &p) {
    constexpr int kClass = RPT * kWarps;
    const int tid = efla_tid(), lane = tid & 31, warp = tid >> 5;
    const int64_t block = efla_block_x();
    const int64_t tile = block % p.dv_tiles;
    const int64_t hv = (block / p.dv_tiles) % p.value_heads;
    const int64_t n = block / ((int64_t)p.dv_tiles * p.value_heads);
    const efla_cuda_sequence seq = efla_sequence(p, n);
    if (seq.length > p.recurrent_max_len) return; /* the chunked kernels take it */
    const int64_t h = hv / (p.value_heads / p.heads);
    const int64_t j = tile * EFLA_CUDA_TILE_V + lane;
    const bool column = j < p.dv;

    float *ks = efla_smem();              /* [kClass] */
    float *qs = ks + kClass;              /* [kClass] */
    float *partial = qs + kClass;         /* [2][kWarps][32] */
    float *slots = partial + 2 * kWarps * 32; /* [8] */
    float *us = slots + 8;                /* [32] */

    float state[RPT];
#pragma unroll
    for (int r = 0; r < RPT; ++r) {
        const int64_t i = warp + kWarps * r;
        state[r] = p.state_in.address && column && i < p.dk
                       ? efla_state_load(p.state_in, n, hv, i, j)
                       : 0.0f;
    }
    for (int i = tid; i < kClass; i += EFLA_CUDA_RECURRENT_THREADS) ks[i] = qs[i] = 0.0f;

    for (int64_t t = 0; t < seq.length; ++t) {
        const int64_t token = seq.first + t;
        efla_sync(); /* the previous token is done with ks, qs and us */
        for (int64_t i = tid; i < p.dk; i += EFLA_CUDA_RECURRENT_THREADS) {
            ks[i] = efla_load<DT>(p.k.address, efla_offset(p.k, seq.batch_row, token, h, i));
            qs[i] = efla_load<DT>(p.q.address, efla_offset(p.q, seq.batch_row, token, h, i));
        }
        efla_sync();
        if (p.l2norm_k || p.l2norm_q) {
            float kk = 0.0f, qq = 0.0f;
            for (int64_t i = tid; i < p.dk; i += EFLA_CUDA_RECURRENT_THREADS) {
                kk += ks[i] * ks[i];
                qq += qs[i] * qs[i];
            }
            block_sum2(kk, qq, slots);
            const float rk = p.l2norm_k ? efla_l2norm_factor(kk) : 1.0f;
            const float rq = p.l2norm_q ? efla_l2norm_factor(qq) : 1.0f;
            for (int64_t i = tid; i < p.dk; i += EFLA_CUDA_RECURRENT_THREADS) {
                ks[i] *= rk;
                qs[i] *= rq;
            }
            efla_sync();
        }
        float lambda = 0.0f, kq = 0.0f;
        for (int64_t i = tid; i < p.dk; i += EFLA_CUDA_RECURRENT_THREADS) {
            lambda += ks[i] * ks[i];
            kq += ks[i] * qs[i];
        }
        block_sum2(lambda, kq, slots);
        const float beta =
            efla_load<DT>(p.beta.address, efla_offset(p.beta, seq.batch_row, token, hv, 0));
        const float alpha = p.mode == 1 ? beta : efla_alpha(beta, lambda);

        float sk = 0.0f, sq = 0.0f;
#pragma unroll
        for (int r = 0; r < RPT; ++r) {
            sk += state[r] * ks[warp + kWarps * r];
            sq += state[r] * qs[warp + kWarps * r];
        }
        partial[warp * 32 + lane] = sk;
        partial[(kWarps + warp) * 32 + lane] = sq;
        efla_sync();
        if (warp == 0) {
            sk = 0.0f;
            sq = 0.0f;
            for (int w = 0; w < kWarps; ++w) {
                sk += partial[w * 32 + lane];
                sq += partial[(kWarps + w) * 32 + lane];
            }
            const float v =
                column ? efla_load<DT>(p.v.address, efla_offset(p.v, seq.batch_row, token, hv, j))
                       : 0.0f;
            const float u = v - sk;
            us[lane] = u;
            if (column)
                efla_store<DT>(p.out.address, efla_offset(p.out, seq.batch_row, token, hv, j),
                               p.scale * (sq + alpha * u * kq));
        }
        efla_sync();
        const float u = us[lane];
#pragma unroll
        for (int r = 0; r < RPT; ++r) state[r] += alpha * ks[warp + kWarps * r] * u;
    }

    if (!p.state_out.address || !column) return;
#pragma unroll
    for (int r = 0; r < RPT; ++r) {
        const int64_t i = warp + kWarps * r;
        if (i < p.dk) efla_state_store(p.state_out, n, hv, i, j, state[r]);
    }
}

} // namespace

/* Decode is memory-bound: keep enough warps in flight: 4 blocks per SM,
 * at most 128 registers up to Dk 128, 170 for Dk 256; tighter caps spill). */
#define EFLA_RECURRENT_KERNEL(name, DT, RPT)                                              \
    EFLA_KERNEL_OCCUPANCY(name, EFLA_CUDA_RECURRENT_THREADS, (RPT) <= 32 ? 4 : 3) {       \
        recurrent<DT, RPT>(p);                                                            \
    }

EFLA_RECURRENT_KERNEL(efla_recurrent_f32_k32, EFLA_CUDA_F32, 8)
EFLA_RECURRENT_KERNEL(efla_recurrent_f32_k64, EFLA_CUDA_F32, 16)
EFLA_RECURRENT_KERNEL(efla_recurrent_f32_k128, EFLA_CUDA_F32, 32)
EFLA_RECURRENT_KERNEL(efla_recurrent_f32_k256, EFLA_CUDA_F32, 64)
EFLA_RECURRENT_KERNEL(efla_recurrent_f16_k32, EFLA_CUDA_F16, 8)
EFLA_RECURRENT_KERNEL(efla_recurrent_f16_k64, EFLA_CUDA_F16, 16)
EFLA_RECURRENT_KERNEL(efla_recurrent_f16_k128, EFLA_CUDA_F16, 32)
EFLA_RECURRENT_KERNEL(efla_recurrent_f16_k256, EFLA_CUDA_F16, 64)
EFLA_RECURRENT_KERNEL(efla_recurrent_bf16_k32, EFLA_CUDA_BF16, 8)
EFLA_RECURRENT_KERNEL(efla_recurrent_bf16_k64, EFLA_CUDA_BF16, 16)
EFLA_RECURRENT_KERNEL(efla_recurrent_bf16_k128, EFLA_CUDA_BF16, 32)
EFLA_RECURRENT_KERNEL(efla_recurrent_bf16_k256, EFLA_CUDA_BF16, 64)
