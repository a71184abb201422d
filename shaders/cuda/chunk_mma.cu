/*
 * The chunked forward on tensor cores (the "mma" path) for f16 and bf16
 * storage: the same two kernels as chunk_simt.cu, with every product an
 * mma.sync m16n8k16 (16-bit operands, f32 accumulation) and a 16-bit
 * scratch. Only bounded operands are 16-bit (ALGORITHM.md §2.6, DESIGN.md
 * "Precision contract"): unit keys K^, q, e.K^, g.V, A^-1, W, U, QK^T, and
 * the state S and V' as operands; S itself stays f32 in registers, and
 * L and the solve stay f32.
 *
 * prepare: one block of 4 warps per (chunk, value head); warp w owns rows
 *   16w..16w+15 of every 64-row product.
 * scan: one block of 8 warps per (sequence, value head, 16 columns of the
 *   state). Per chunk: V' = U - W S (warps 0-3) and Q^S (warps 4-7) on
 *   rows 16 (w % 4).., then O += QK^T V' (warps 4-7), then S += K^T V'
 *   (warp w: 16-row tiles w, w+8 of S). The 4-warp form (every warp both
 *   products, tiles w, w+4, ...) stays selectable as EFLA_PATH=cuda:mma4.
 *   The next chunk's operands stream in with cp.async while this one runs
 *   (when two stages fit the shared memory).
 */
#include "chunk_common.cuh"
#include "mma_common.cuh"

namespace {

constexpr int C = EFLA_CUDA_CHUNK;
constexpr int PC = EFLA_CUDA_MMA_PITCH_C;
constexpr int kThreads = EFLA_CUDA_MMA_THREADS;

struct MmaScratch {
    uint16_t *kt, *q, *w, *u, *aqk;
};

EFLA_DEV MmaScratch mma_scratch(const efla_cuda_params &p, int64_t chunk, int64_t slot) {
    const int64_t dkp = efla_cuda_pad16(p.dk), dvp = efla_cuda_pad16(p.dv);
    uint16_t *base = reinterpret_cast<uint16_t *>(p.scratch) + (chunk * p.hv_count + slot) * p.chunk_floats;
    MmaScratch s;
    s.kt = base;
    s.q = s.kt + dkp * C;
    s.w = s.q + C * dkp;
    s.u = s.w + C * dkp;
    s.aqk = s.u + C * dvp;
    return s;
}

/* D[16w.., n-tiles] = A[16w.., 0..k) B, for the warp's 16 rows; A row-major
 * (pitch pa), B given as Bt[n][k] (pitch pb); k a multiple of 16. The
 * results are stored by `store(row, col, value)`. */
template <int DT, typename Store>
EFLA_DEV void warp_product(const uint16_t *a, int pa, const uint16_t *bt, int pb, int k, int n,
                           Store store) {
    const int row0 = 16 * (efla_tid() >> 5);
    for (int n0 = 0; n0 < n; n0 += 8) {
        float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int k0 = 0; k0 < k; k0 += 16) {
            uint32_t fa[4], fb[2];
            efla_load_a(fa, a, pa, row0, k0);
            efla_load_b(fb, bt, pb, n0, k0);
            efla_mma<DT>(acc, fa, fb);
        }
        for (int r = 0; r < 4; ++r) store(row0 + efla_acc_row(r), n0 + efla_acc_col(r), acc[r]);
    }
}

template <int DT> EFLA_DEV void prepare_mma(const efla_cuda_params &p) {
    const int tid = efla_tid();
    const int64_t g = efla_block_x(), slot = efla_block_y();
    const int64_t hv = p.hv_begin + slot, h = hv / (p.value_heads / p.heads);
    const efla_cuda_sequence seq = efla_sequence(p, efla_chunk_owner(p, g));
    const int64_t t0 = seq.first + (g - seq.first_chunk) * C;
    const int rows = (int)efla_min64(C, seq.first + seq.length - t0);
    const int dkp = (int)efla_cuda_pad16(p.dk), dvp = (int)efla_cuda_pad16(p.dv);
    const int kp = (int)efla_cuda_mma_pitch_k(p.dk);
    const MmaScratch out = mma_scratch(p, g, slot);

    const int64_t r1 = efla_cuda_max64((int64_t)C * kp, (int64_t)dvp * PC);
    const int64_t r2 = efla_cuda_max64((int64_t)C * kp, (int64_t)dkp * PC);
    uint16_t *khat = reinterpret_cast<uint16_t *>(efla_smem()); /* raw K [C][kp], then g.V^T [dvp][PC] */
    uint16_t *qhat = khat + r1;                                 /* raw Q [C][kp], then e.K^T [dkp][PC] */
    float *lower = reinterpret_cast<float *>(qhat + r2);        /* [C][65] f32, then A^-1 16-bit */
    uint16_t *inverse = reinterpret_cast<uint16_t *>(lower);    /* [C][PC] */
    float *ck = lower + C * EFLA_CUDA_STAGE_PITCH, *rq = ck + C, *erase = rq + C, *write = erase + C;

    efla_row_coefficients<DT, kThreads>(p, seq, t0, rows, h, hv, ck, rq, erase, write);
    efla_sync();
    /* Raw k and q rows (exact: they are storage values), zero-padded, for
     * the products below, which apply the row factors in f32 afterwards
     * (rounding k ck and q rq to 16 bits first cost up to 2e-2 on a
     * cancelling q.k at T = 1, bf16). The unit keys and normalised queries
     * go to the scratch in 16 bits, K^T and Q^ as the scan reads them. */
    for (int e = tid; e < C * dkp; e += kThreads) {
        const int r = e / dkp, i = e % dkp;
        float kv = 0.0f, qv = 0.0f;
        if (r < rows && i < p.dk) {
            kv = efla_load<DT>(p.k.address, efla_offset(p.k, seq.batch_row, t0 + r, h, i));
            qv = efla_load<DT>(p.q.address, efla_offset(p.q, seq.batch_row, t0 + r, h, i));
        }
        khat[r * kp + i] = efla_f32_to_half<DT>(kv);
        qhat[r * kp + i] = efla_f32_to_half<DT>(qv);
        out.kt[(int64_t)i * C + r] = efla_f32_to_half<DT>(ck[r] * kv);
        out.q[(int64_t)r * dkp + i] = efla_f32_to_half<DT>(rq[r] * qv);
    }
    efla_sync();
    /* L = StrictLower(diag(e) K^K^T) in f32; QK^T masked to s <= t. */
    warp_product<DT>(khat, kp, khat, kp, dkp, C, [&](int t, int s, float x) {
        lower[t * EFLA_CUDA_STAGE_PITCH + s] = s < t ? erase[t] * ck[t] * ck[s] * x : 0.0f;
    });
    warp_product<DT>(qhat, kp, khat, kp, dkp, C, [&](int t, int s, float x) {
        out.aqk[t * C + s] = efla_f32_to_half<DT>(s <= t ? rq[t] * ck[s] * x : 0.0f);
    });
    efla_sync();
    float x[C];
    if (tid < C) efla_solve_column_x(lower, x, tid);
    efla_sync(); /* every read of L is done: its space becomes A^-1 */
    if (tid < C)
        for (int i = 0; i < C; ++i) inverse[i * PC + tid] = efla_f32_to_half<DT>(x[i]);
    /* e.K^T over Q^'s space (Q^ is no longer needed). */
    for (int e = tid; e < dkp * C; e += kThreads) {
        const int i = e / C, s = e % C;
        qhat[i * PC + s] =
            efla_f32_to_half<DT>(erase[s] * ck[s] * efla_half_to_f32<DT>(khat[s * kp + i]));
    }
    efla_sync();
    /* W = A^-1 (e.K^) */
    warp_product<DT>(inverse, PC, qhat, PC, C, dkp, [&](int t, int i, float v) {
        out.w[(int64_t)t * dkp + i] = efla_f32_to_half<DT>(v);
    });
    efla_sync(); /* K^ is no longer needed: g.V^T goes there */
    for (int e = tid; e < dvp * C; e += kThreads) {
        const int j = e / C, s = e % C;
        float v = 0.0f;
        if (s < rows && j < p.dv)
            v = write[s] * efla_load<DT>(p.v.address, efla_offset(p.v, seq.batch_row, t0 + s, hv, j));
        khat[j * PC + s] = efla_f32_to_half<DT>(v);
    }
    efla_sync();
    /* U = A^-1 (g.V) */
    warp_product<DT>(inverse, PC, khat, PC, C, dvp, [&](int t, int j, float v) {
        out.u[(int64_t)t * dvp + j] = efla_f32_to_half<DT>(v);
    });
}

/* Shared-memory operands of one chunk in the scan. */
struct ScanStage {
    uint16_t *w, *q, *kt, *u, *aqk;
};

template <int TILE_MAX> EFLA_DEV ScanStage scan_stage(uint16_t *base, int dkp, int kp) {
    ScanStage s;
    s.w = base;
    s.q = s.w + C * kp;
    s.kt = s.q + C * kp;
    s.u = s.kt + dkp * PC;
    s.aqk = s.u + C * (TILE_MAX + 8);
    return s;
}

/* Issues the 16-byte copies of chunk `chunk`'s operands into `stage`. */
template <int THREADS, int TILE_MAX>
EFLA_DEV void load_stage(const efla_cuda_params &p, int64_t chunk, int64_t slot, int64_t j0,
                         const ScanStage &stage, int dkp, int kp) {
    const MmaScratch src = mma_scratch(p, chunk, slot);
    const int dvp = (int)efla_cuda_pad16(p.dv), row_pieces = dkp / 8;
    for (int e = efla_tid(); e < C * row_pieces; e += THREADS) {
        const int r = e / row_pieces, piece = 8 * (e % row_pieces);
        efla_cp_async16(stage.w + r * kp + piece, src.w + (int64_t)r * dkp + piece);
        efla_cp_async16(stage.q + r * kp + piece, src.q + (int64_t)r * dkp + piece);
    }
    for (int e = efla_tid(); e < dkp * (C / 8); e += THREADS) {
        const int i = e / (C / 8), piece = 8 * (e % (C / 8));
        efla_cp_async16(stage.kt + i * PC + piece, src.kt + (int64_t)i * C + piece);
    }
    for (int e = efla_tid(); e < C * (C / 8); e += THREADS) {
        const int r = e / (C / 8), piece = 8 * (e % (C / 8));
        efla_cp_async16(stage.aqk + r * PC + piece, src.aqk + (int64_t)r * C + piece);
    }
    for (int e = efla_tid(); e < C * p.tile_halves; e += THREADS) {
        const int r = e / p.tile_halves, piece = 8 * (e % p.tile_halves);
        efla_cp_async16(stage.u + r * (TILE_MAX + 8) + piece, src.u + (int64_t)r * dvp + j0 + piece);
    }
    efla_cp_async_commit();
}

/* WARPS = 4: every warp computes W S and Q^S for its 16 chunk rows.
 * WARPS = 8: warps 0-3 compute W S (and publish V'), warps 4-7 Q^S (and
 * then O) for rows 16 (warp % 4): half the serial work per warp per chunk
 * and two warps per scheduler to hide the latencies of the next. */
template <int DT, int WARPS> EFLA_DEV void scan_mma(const efla_cuda_params &p) {
    constexpr int kScanThreads = 32 * WARPS;
    constexpr int kMaxTiles = 256 / 16 / WARPS; /* S row tiles per warp */
    constexpr int kMaxHalves = WARPS == 8 ? EFLA_CUDA_MMA_TILE_MAX / 8 : EFLA_CUDA_MMA4_TILE_V / 8;
    constexpr int kTileMax = 8 * kMaxHalves, kUPitch = kTileMax + 8;
    const int tid = efla_tid(), warp = tid >> 5;
    const int row0 = 16 * (warp % 4); /* this warp's chunk rows */
    const bool does_w = WARPS == 4 || warp < 4, does_q = WARPS == 4 || warp >= 4;
    const int64_t block = efla_block_x();
    const int64_t tile = block % p.dv_tiles;
    const int64_t slot = (block / p.dv_tiles) % p.hv_count;
    const int64_t n = block / ((int64_t)p.dv_tiles * p.hv_count);
    const int64_t hv = p.hv_begin + slot;
    const efla_cuda_sequence seq = efla_sequence(p, n);
    if (seq.length <= p.recurrent_max_len) return;
    /* 8-column halves of this block's tile; the loops over halves run to 2
     * with a test, so that they unroll and the arrays stay in registers. */
    const int halves = p.tile_halves;
    const int64_t j0 = tile * 8 * halves;
    const int dkp = (int)efla_cuda_pad16(p.dk), kp = (int)efla_cuda_mma_pitch_k(p.dk);
    const int row_tiles = dkp / 16;

    uint16_t *smem = reinterpret_cast<uint16_t *>(efla_smem());
    const int stage_elems = (int)(efla_cuda_scan_mma_stage_bytes(p.dk, kTileMax) / 2);
    uint16_t *st = smem + p.stages * stage_elems; /* S^T [kTileMax][kp] */
    uint16_t *vt = st + kTileMax * kp;            /* V'^T [kTileMax][PC] */

    /* The state tile, f32, as accumulators: tile r of this warp is rows
     * 16 (warp + WARPS r) .., one or two 8-column halves. */
    float state[kMaxTiles][kMaxHalves][4];
    for (int r = 0; r < kMaxTiles; ++r)
        for (int half = 0; half < kMaxHalves; ++half) if (half < halves)
            for (int e = 0; e < 4; ++e) {
                const int64_t i = 16 * (warp + WARPS * r) + efla_acc_row(e);
                const int64_t j = j0 + 8 * half + efla_acc_col(e);
                state[r][half][e] = p.state_in.address && i < p.dk && j < p.dv
                                        ? efla_state_load(p.state_in, n, hv, i, j)
                                        : 0.0f;
            }
    /* S^T as a 16-bit operand; every warp writes its own rows. */
    auto publish_state = [&]() {
        for (int r = 0; r < kMaxTiles; ++r) {
            if (warp + WARPS * r >= row_tiles) break;
            for (int half = 0; half < kMaxHalves; ++half) if (half < halves)
                for (int e = 0; e < 4; ++e) {
                    const int i = 16 * (warp + WARPS * r) + efla_acc_row(e);
                    const int jl = 8 * half + efla_acc_col(e);
                    st[jl * kp + i] = efla_f32_to_half<DT>(state[r][half][e]);
                }
        }
    };
    publish_state();

    const int64_t chunks = (seq.length + C - 1) / C;
    if (chunks > 0) load_stage<kScanThreads, kTileMax>(p, seq.first_chunk, slot, j0, scan_stage<kTileMax>(smem, dkp, kp), dkp, kp);
    for (int64_t c = 0; c < chunks; ++c) {
        const ScanStage stage = scan_stage<kTileMax>(smem + (c % p.stages) * stage_elems, dkp, kp);
        const bool prefetch = p.stages == 2 && c + 1 < chunks;
        if (p.stages == 1 && c > 0) /* the previous chunk is done with the only stage */
            load_stage<kScanThreads, kTileMax>(p, seq.first_chunk + c, slot, j0, stage, dkp, kp);
        if (prefetch)
            load_stage<kScanThreads, kTileMax>(p, seq.first_chunk + c + 1, slot, j0,
                       scan_stage<kTileMax>(smem + ((c + 1) % 2) * stage_elems, dkp, kp), dkp, kp);
        if (prefetch) efla_cp_async_wait_one();
        else efla_cp_async_wait_all();
        efla_sync(); /* chunk c's operands and S^T are visible to all */

        /* W S and Q^ S for rows row0.., two 8-column halves (warp-uniform
         * branches: the mma is a warp collective). */
        float ws[kMaxHalves][4] = {}, o[kMaxHalves][4] = {};
        for (int k0 = 0; k0 < dkp; k0 += 16) {
            uint32_t fw[4], fq[4];
            if (does_w) efla_load_a(fw, stage.w, kp, row0, k0);
            if (does_q) efla_load_a(fq, stage.q, kp, row0, k0);
            for (int half = 0; half < kMaxHalves; ++half) if (half < halves) {
                uint32_t fs[2];
                efla_load_b(fs, st, kp, 8 * half, k0);
                if (does_w) efla_mma<DT>(ws[half], fw, fs);
                if (does_q) efla_mma<DT>(o[half], fq, fs);
            }
        }
        /* V' = U - W S, published transposed as a 16-bit operand. */
        for (int half = 0; half < kMaxHalves; ++half) if (half < halves && does_w)
            for (int e = 0; e < 4; ++e) {
                const int t = row0 + efla_acc_row(e), jl = 8 * half + efla_acc_col(e);
                const float v = efla_half_to_f32<DT>(stage.u[t * kUPitch + jl]) - ws[half][e];
                vt[jl * PC + t] = efla_f32_to_half<DT>(v);
            }
        efla_sync(); /* V' complete; S^T no longer read */

        /* O = scale (Q^ S + QK^T V') */
        for (int k0 = 0; k0 < C && does_q; k0 += 16) {
            uint32_t fa[4];
            efla_load_a(fa, stage.aqk, PC, row0, k0);
            for (int half = 0; half < kMaxHalves; ++half) if (half < halves) {
                uint32_t fv[2];
                efla_load_b(fv, vt, PC, 8 * half, k0);
                efla_mma<DT>(o[half], fa, fv);
            }
        }
        const int64_t rows = efla_min64(C, seq.length - c * C);
        for (int half = 0; half < kMaxHalves; ++half) if (half < halves && does_q)
            for (int e = 0; e < 4; ++e) {
                const int t = row0 + efla_acc_row(e);
                const int64_t j = j0 + 8 * half + efla_acc_col(e);
                if (t < rows && j < p.dv)
                    efla_store<DT>(p.out.address,
                                   efla_offset(p.out, seq.batch_row, seq.first + c * C + t, hv, j),
                                   p.scale * o[half][e]);
            }

        /* S += K^T V' on this warp's row tiles, then publish S^T. */
        for (int r = 0; r < kMaxTiles; ++r) {
            const int tile_row = warp + WARPS * r;
            if (tile_row >= row_tiles) break;
            for (int k0 = 0; k0 < C; k0 += 16) {
                uint32_t fk[4];
                efla_load_a(fk, stage.kt, PC, 16 * tile_row, k0);
                for (int half = 0; half < kMaxHalves; ++half) if (half < halves) {
                    uint32_t fv[2];
                    efla_load_b(fv, vt, PC, 8 * half, k0);
                    efla_mma<DT>(state[r][half], fk, fv);
                }
            }
        }
        publish_state();
        efla_sync(); /* this stage and V'^T are free for the next chunk */
    }

    if (!p.state_out.address) return;
    for (int r = 0; r < kMaxTiles; ++r)
        for (int half = 0; half < kMaxHalves; ++half) if (half < halves)
            for (int e = 0; e < 4; ++e) {
                const int64_t i = 16 * (warp + WARPS * r) + efla_acc_row(e);
                const int64_t j = j0 + 8 * half + efla_acc_col(e);
                if (i < p.dk && j < p.dv) efla_state_store(p.state_out, n, hv, i, j, state[r][half][e]);
            }
}

} // namespace

EFLA_KERNEL(efla_prepare_mma_f16, EFLA_CUDA_MMA_THREADS) { prepare_mma<EFLA_CUDA_F16>(p); }
EFLA_KERNEL(efla_prepare_mma_bf16, EFLA_CUDA_MMA_THREADS) { prepare_mma<EFLA_CUDA_BF16>(p); }
EFLA_KERNEL(efla_scan_mma_f16, EFLA_CUDA_MMA_SCAN_THREADS) { scan_mma<EFLA_CUDA_F16, 8>(p); }
EFLA_KERNEL(efla_scan_mma_bf16, EFLA_CUDA_MMA_SCAN_THREADS) { scan_mma<EFLA_CUDA_BF16, 8>(p); }
/* The 4-warp scan, kept for comparison (EFLA_PATH=cuda:mma4). */
EFLA_KERNEL(efla_scan_mma4_f16, EFLA_CUDA_MMA_THREADS) { scan_mma<EFLA_CUDA_F16, 4>(p); }
EFLA_KERNEL(efla_scan_mma4_bf16, EFLA_CUDA_MMA_THREADS) { scan_mma<EFLA_CUDA_BF16, 4>(p); }
