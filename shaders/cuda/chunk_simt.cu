/*
 * The chunked forward on plain f32 FMA (the "simt" path), in two kernels
 * (ALGORITHM.md §2.2 in the two-coefficient form of §2.6):
 *
 * prepare, one block per (chunk, value head), chunk-parallel: unit keys
 *   K^, erase e and write g per row, L = StrictLower(diag(e) K^K^T),
 *   A^-1 = (I + L)^-1, W = A^-1 (e . K^), U = A^-1 (g . V) and
 *   QK^T masked to s <= t; written with K^ and Q^ to the scratch.
 * scan, one block per (sequence, value head, 32-column state tile), walks
 *   the sequence's chunks in order with its state tile in shared memory:
 *   V' = U - W S;  O = scale (Q^ S + QK^T V');  S += K^T V'.
 *
 * Head dimensions are processed in 64-wide slices in run-time loops, so
 * one kernel serves every Dk and Dv from 1 to 256. Rows past the end of a
 * sequence are zeros in the scratch (e = g = 0, K^ = Q^ = 0), so a partial
 * last chunk needs no special case beyond not storing its outputs.
 */
#include "chunk_common.cuh"

namespace {

constexpr int C = EFLA_CUDA_CHUNK;
constexpr int P = EFLA_CUDA_STAGE_PITCH;
constexpr int kPrepareThreads = EFLA_CUDA_PREPARE_THREADS;
constexpr int kScanThreads = EFLA_CUDA_SCAN_THREADS;

/* out[t][c0 + cc] = sum_{s<=t} inverse[t][s] stage[s][cc] for this thread's
 * row t = tid/4 and columns cc = tid%4 + 4m, written to global rows of
 * pitch `pitch` (floats), for cc < width. */
EFLA_DEV void lower_product(const float *inverse, const float *stage, float *out, int64_t pitch,
                            int64_t c0, int width) {
    const int t = efla_tid() >> 2, c = efla_tid() & 3;
    float acc[16];
#pragma unroll
    for (int m = 0; m < 16; ++m)
        acc[m] = 0.0f;
    for (int s = 0; s <= t; ++s) {
        const float a = inverse[t * P + s];
#pragma unroll
        for (int m = 0; m < 16; ++m)
            acc[m] += a * stage[s * P + c + 4 * m];
    }
#pragma unroll
    for (int m = 0; m < 16; ++m)
        if (c + 4 * m < width) out[t * pitch + c0 + c + 4 * m] = acc[m];
}

template <int DT> EFLA_DEV void prepare(const efla_cuda_params &p) {
    const int tid = efla_tid();
    const int64_t g = efla_block_x(), slot = efla_block_y();
    const int64_t hv = p.hv_begin + slot, h = efla_key_head(p, hv);
    const int64_t n = efla_chunk_owner(p, g);
    const efla_cuda_sequence seq = efla_sequence(p, n);
    const int64_t t0 = seq.first + (g - seq.first_chunk) * C;
    const int rows = (int)efla_min64(C, seq.first + seq.length - t0);

    float *base = reinterpret_cast<float *>(p.scratch) + (g * p.hv_count + slot) * p.chunk_floats;
    float *khat = base + efla_cuda_scratch_khat(p.dk, p.dv);
    float *qhat = base + efla_cuda_scratch_qhat(p.dk, p.dv);
    float *w_out = base + efla_cuda_scratch_w(p.dk, p.dv);
    float *u_out = base + efla_cuda_scratch_u(p.dk, p.dv);
    float *aqk = base + efla_cuda_scratch_aqk(p.dk, p.dv);

    float *stage_k = efla_smem();     /* [C][P] */
    float *stage_q = stage_k + C * P; /* [C][P] */
    float *lower = stage_q + C * P;   /* [C][P]: K^K^T, then L */
    float *inverse = lower + C * P;   /* [C][P] */
    float *ck = inverse + C * P, *rq = ck + C, *erase = rq + C, *write = erase + C;

    efla_row_coefficients<DT, kPrepareThreads>(p, seq, t0, rows, h, hv, ck, rq, erase, write);
    efla_sync();

    /* K^K^T and Q^K^T: thread owns row t = tid/4, columns s = tid%4 + 4m. */
    const int t = tid >> 2, c = tid & 3;
    float acc_kk[16], acc_qk[16];
#pragma unroll
    for (int m = 0; m < 16; ++m)
        acc_kk[m] = acc_qk[m] = 0.0f;
    for (int64_t i0 = 0; i0 < p.dk; i0 += C) {
        const int width = (int)efla_min64(C, p.dk - i0);
        efla_sync();
        for (int e = tid; e < C * C; e += kPrepareThreads) {
            const int r = e / C, cc = e % C;
            float kv = 0.0f, qv = 0.0f;
            if (r < rows && cc < width) {
                kv = ck[r] * efla_load<DT>(p.k.address,
                                           efla_offset(p.k, seq.batch_row, t0 + r, h, i0 + cc));
                qv = rq[r] * efla_load<DT>(p.q.address,
                                           efla_offset(p.q, seq.batch_row, t0 + r, h, i0 + cc));
            }
            stage_k[r * P + cc] = kv;
            stage_q[r * P + cc] = qv;
            if (cc < width) {
                khat[r * p.dk + i0 + cc] = kv;
                qhat[r * p.dk + i0 + cc] = qv;
            }
        }
        efla_sync();
        for (int cc = 0; cc < width; ++cc) {
            const float kt = stage_k[t * P + cc], qt = stage_q[t * P + cc];
#pragma unroll
            for (int m = 0; m < 16; ++m) {
                const float ks = stage_k[(c + 4 * m) * P + cc];
                acc_kk[m] += kt * ks;
                acc_qk[m] += qt * ks;
            }
        }
    }
#pragma unroll
    for (int m = 0; m < 16; ++m) {
        const int s = c + 4 * m;
        lower[t * P + s] = s < t ? erase[t] * acc_kk[m] : 0.0f;
        aqk[t * C + s] = s <= t ? acc_qk[m] : 0.0f;
    }
    efla_sync();
    if (tid < C) efla_solve_column(lower, inverse, tid);

    /* W = A^-1 (e . K^), slice by slice of Dk. */
    for (int64_t i0 = 0; i0 < p.dk; i0 += C) {
        const int width = (int)efla_min64(C, p.dk - i0);
        efla_sync(); /* the inverse is complete; the stage is free */
        for (int e = tid; e < C * C; e += kPrepareThreads) {
            const int r = e / C, cc = e % C;
            float kv = 0.0f;
            if (r < rows && cc < width)
                kv =
                    erase[r] * ck[r] *
                    efla_load<DT>(p.k.address, efla_offset(p.k, seq.batch_row, t0 + r, h, i0 + cc));
            stage_k[r * P + cc] = kv;
        }
        efla_sync();
        lower_product(inverse, stage_k, w_out, p.dk, i0, width);
    }
    /* U = A^-1 (g . V), slice by slice of Dv. */
    for (int64_t j0 = 0; j0 < p.dv; j0 += C) {
        const int width = (int)efla_min64(C, p.dv - j0);
        efla_sync();
        for (int e = tid; e < C * C; e += kPrepareThreads) {
            const int r = e / C, cc = e % C;
            float vv = 0.0f;
            if (r < rows && cc < width)
                vv = write[r] * efla_load<DT>(p.v.address,
                                              efla_offset(p.v, seq.batch_row, t0 + r, hv, j0 + cc));
            stage_k[r * P + cc] = vv;
        }
        efla_sync();
        lower_product(inverse, stage_k, u_out, p.dv, j0, width);
    }
}

template <int DT> EFLA_DEV void scan(const efla_cuda_params &p) {
    constexpr int kWarps = kScanThreads / 32;
    const int tid = efla_tid(), lane = tid & 31, warp = tid >> 5;
    const int64_t block = efla_block_x();
    const int64_t tile = block % p.dv_tiles;
    const int64_t slot = (block / p.dv_tiles) % p.hv_count;
    const int64_t n = block / ((int64_t)p.dv_tiles * p.hv_count);
    const int64_t hv = p.hv_begin + slot;
    const efla_cuda_sequence seq = efla_sequence(p, n);
    if (seq.length <= p.recurrent_max_len) return; /* the recurrent kernel takes it */
    const int64_t j = tile * EFLA_CUDA_TILE_V + lane;
    const bool column = j < p.dv;

    float *state = efla_smem();                    /* [dk][32] */
    float *vnew = state + p.dk * EFLA_CUDA_TILE_V; /* [C][32] */
    float *stage_a = vnew + C * EFLA_CUDA_TILE_V;  /* [C][P] */
    float *stage_b = stage_a + C * P;              /* [C][P] */

    for (int64_t i = warp; i < p.dk; i += kWarps)
        state[i * EFLA_CUDA_TILE_V + lane] =
            p.state_in.address && column ? efla_state_load(p.state_in, n, hv, i, j) : 0.0f;

    const int64_t chunks = (seq.length + C - 1) / C;
    for (int64_t c = 0; c < chunks; ++c) {
        const float *base = reinterpret_cast<const float *>(p.scratch) +
                            ((seq.first_chunk + c) * p.hv_count + slot) * p.chunk_floats;
        const float *khat = base + efla_cuda_scratch_khat(p.dk, p.dv);
        const float *qhat = base + efla_cuda_scratch_qhat(p.dk, p.dv);
        const float *w = base + efla_cuda_scratch_w(p.dk, p.dv);
        const float *u = base + efla_cuda_scratch_u(p.dk, p.dv);
        const float *aqk = base + efla_cuda_scratch_aqk(p.dk, p.dv);

        /* V' = U - W S and Q^ S for rows t = warp + 8m of column j. */
        float acc_v[8], acc_o[8];
#pragma unroll
        for (int m = 0; m < 8; ++m) {
            acc_v[m] = column ? u[(warp + kWarps * m) * p.dv + j] : 0.0f;
            acc_o[m] = 0.0f;
        }
        for (int64_t i0 = 0; i0 < p.dk; i0 += C) {
            const int width = (int)efla_min64(C, p.dk - i0);
            efla_sync(); /* the state is up to date; the stages are free */
            for (int e = tid; e < C * C; e += kScanThreads) {
                const int r = e / C, cc = e % C;
                stage_a[r * P + cc] = cc < width ? w[r * p.dk + i0 + cc] : 0.0f;
                stage_b[r * P + cc] = cc < width ? qhat[r * p.dk + i0 + cc] : 0.0f;
            }
            efla_sync();
            for (int cc = 0; cc < width; ++cc) {
                const float s = state[(i0 + cc) * EFLA_CUDA_TILE_V + lane];
#pragma unroll
                for (int m = 0; m < 8; ++m) {
                    acc_v[m] -= stage_a[(warp + kWarps * m) * P + cc] * s;
                    acc_o[m] += stage_b[(warp + kWarps * m) * P + cc] * s;
                }
            }
        }
#pragma unroll
        for (int m = 0; m < 8; ++m)
            vnew[(warp + kWarps * m) * EFLA_CUDA_TILE_V + lane] = acc_v[m];
        efla_sync(); /* V' complete; stage_a free */
        for (int e = tid; e < C * C; e += kScanThreads)
            stage_a[(e / C) * P + e % C] = aqk[e];
        efla_sync();

        /* O = scale (Q^ S + (QK^T masked) V'). */
        const int64_t t0 = seq.first + c * C;
        const int64_t rows = efla_min64(C, seq.length - c * C);
#pragma unroll
        for (int m = 0; m < 8; ++m) {
            const int t = warp + kWarps * m;
            float o = acc_o[m];
            for (int s = 0; s <= t; ++s)
                o += stage_a[t * P + s] * vnew[s * EFLA_CUDA_TILE_V + lane];
            if (t < rows && column)
                efla_store<DT>(p.out.address, efla_offset(p.out, seq.batch_row, t0 + t, hv, j),
                               p.scale * o);
        }

        /* S += K^T V', slice by slice of Dk; each thread owns rows warp + 8r. */
        for (int64_t i0 = 0; i0 < p.dk; i0 += C) {
            const int width = (int)efla_min64(C, p.dk - i0);
            efla_sync(); /* stage_b free */
            for (int e = tid; e < C * C; e += kScanThreads) {
                const int r = e / C, cc = e % C;
                stage_b[r * P + cc] = cc < width ? khat[r * p.dk + i0 + cc] : 0.0f;
            }
            efla_sync();
            for (int r = warp; r < width; r += kWarps) {
                float s = state[(i0 + r) * EFLA_CUDA_TILE_V + lane];
                for (int t = 0; t < C; ++t)
                    s += stage_b[t * P + r] * vnew[t * EFLA_CUDA_TILE_V + lane];
                state[(i0 + r) * EFLA_CUDA_TILE_V + lane] = s;
            }
        }
    }

    efla_sync();
    if (!p.state_out.address || !column) return;
    for (int64_t i = warp; i < p.dk; i += kWarps)
        efla_state_store(p.state_out, n, hv, i, j, state[i * EFLA_CUDA_TILE_V + lane]);
}

} // namespace

EFLA_KERNEL(efla_prepare_simt_f32, EFLA_CUDA_PREPARE_THREADS) { prepare<EFLA_CUDA_F32>(p); }
EFLA_KERNEL(efla_prepare_simt_f16, EFLA_CUDA_PREPARE_THREADS) { prepare<EFLA_CUDA_F16>(p); }
EFLA_KERNEL(efla_prepare_simt_bf16, EFLA_CUDA_PREPARE_THREADS) { prepare<EFLA_CUDA_BF16>(p); }
EFLA_KERNEL(efla_scan_simt_f32, EFLA_CUDA_SCAN_THREADS) { scan<EFLA_CUDA_F32>(p); }
EFLA_KERNEL(efla_scan_simt_f16, EFLA_CUDA_SCAN_THREADS) { scan<EFLA_CUDA_F16>(p); }
EFLA_KERNEL(efla_scan_simt_bf16, EFLA_CUDA_SCAN_THREADS) { scan<EFLA_CUDA_BF16>(p); }
