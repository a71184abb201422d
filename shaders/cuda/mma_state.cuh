/*
 * mma state scan: one block of PARTS x GROUPS warps per (sequence, value
 * head, 16 GROUPS columns of the state), serial over the sequence's chunks;
 * only what must be serial. The state is held transposed, S^T [Dv][Dk], in
 * f32 accumulators; a group of PARTS warps owns 16 rows (16 value columns),
 * each warp 1 / PARTS of their k16 blocks. Per chunk c:
 *   V'^T = U^T - S^T W^T                          A = S^T
 *   S^T += V'^T K                                 A = V'^T
 * and either (unfused) S_c^T and V'^T to the scratch for the output kernel,
 * or (FUSED) the output itself, O = scale (diag(rq) Q S_c + P V'), with
 * S^T's and V'^T's A fragments as the B fragments of S and V'.
 * The accumulators of two neighbouring n8 tiles are the A fragment of one
 * k16 block (efla_acc_to_a), so S^T and V'^T stay in registers; only the
 * parts' partial sums and V'^T's fragments go through shared memory (the
 * exchange), between barriers. The chunk operands (W, K^T, U^T; fused also
 * Q, P, rq) arrive `stages - 1` chunks ahead (bulk copies on sm_90+, issued
 * by a producer warp where the output is not fused, else cp.async), or,
 * fused at Dk 256, one buffer each refilled as soon as it is read
 * (staggered). DKT is the compiled Dk class in n8 tiles (the
 * accumulators' size), the runtime Dk may be smaller.
 */
#ifndef EFLA_MMA_STATE_CUH
#define EFLA_MMA_STATE_CUH

#include "bulk_store.cuh"
#include "mma_rows.cuh"

namespace {

/* The stages arrive by bulk copies (EFLA_BULK: sm_90+) signalled on an
 * mbarrier per stage; else by 16-byte cp.async pieces of every thread. */

/* Whether the staggered refills (fused, Dk 256) are bulk copies too: on
 * sm_90 and sm_100, not sm_120, whose registers for that kernel would
 * spill with them (8 bytes). */
#if EFLA_BULK && __CUDA_ARCH__ < 1200
#define EFLA_STAGGER_BULK 1
#else
#define EFLA_STAGGER_BULK 0
#endif

struct StateStage {
    uint16_t *w, *kt, *ut; /* [C][kp], [dkp][PC], [BV][PC] */
    uint16_t *q, *pm;      /* fused: Q [C][kp] as stored, P [C][PC] */
    float *rq;             /* fused: [C] */
};

template <int BV, bool FUSED> EFLA_DEV StateStage state_stage(uint16_t *smem, int index, int dkp) {
    StateStage s;
    s.w = smem + index * efla_cuda_state_mma_stage(dkp, BV, FUSED);
    s.kt = s.w + kChunk * (dkp + 8);
    s.ut = s.kt + dkp * kPitchC;
    s.q = s.ut + BV * kPitchC;
    s.pm = s.q + kChunk * (dkp + 8);
    s.rq = reinterpret_cast<float *>(s.pm + kChunk * kPitchC);
    return s;
}

/* Copies W; U^T; K^T, then fused P and rq (the staggered pipeline's three
 * groups, by when each is read). */
constexpr int kCopyW = 0, kCopyU = 1, kCopyK = 2;

/* The stage's copies: contiguous ranges of the chunk's scratch (W, K^T,
 * the block's rows of U^T, and fused P and rq, have the shared-memory
 * pitches there). Fused, Q's rows come from the tensor (load_rows). Each
 * copy is worked out where it is issued, not held in registers. */
template <bool FUSED> constexpr int kCopies = FUSED ? 5 : 3;

struct StateCopy {
    const uint16_t *from;
    uint16_t *to;
    uint32_t bytes;
};

/* Where the state kernel's chunk operands come from: the sequence's first
 * chunk in the scratch and the block's first column. */
struct CopySource {
    const uint16_t *first;
    int64_t chunk_step; /* elements from chunk to chunk */
    efla_cuda_mma_layout layout;
    int64_t j0;
};

template <int BV>
EFLA_DEV StateCopy state_copy(int i, const CopySource &src, int64_t c, const StateStage &to,
                              int dkp) {
    const uint16_t *chunk = src.first + c * src.chunk_step;
    const efla_cuda_mma_layout &l = src.layout;
    switch (i) {
    case kCopyW: return {chunk + l.w, to.w, 2u * kChunk * (dkp + 8)};
    case kCopyU: return {chunk + l.u + src.j0 * kPitchC, to.ut, 2u * BV * kPitchC};
    case kCopyK: return {chunk + l.kt, to.kt, 2u * dkp * kPitchC};
    case kCopyK + 1: return {chunk + l.pm, to.pm, 2u * kChunk * kPitchC};
    default: /* rq, after ck */
        return {chunk + l.factors + 2 * kChunk, reinterpret_cast<uint16_t *>(to.rq), 4u * kChunk};
    }
}

/* Chunk c's stage (c mod stages) and the fills of that stage before it
 * (c / stages) in 32 bits: a 64-bit division (a called routine) sat on
 * every chunk's serial path. A sequence has far fewer than 2^32 chunks. */
EFLA_DEV int stage_index(int64_t c, int stages) {
    const uint32_t u = (uint32_t)c;
    return (int)(u % (uint32_t)stages);
}
EFLA_DEV uint32_t stage_fills(int64_t c, int stages) {
    const uint32_t u = (uint32_t)c;
    return u / (uint32_t)stages;
}

#if EFLA_BULK
/* mbarriers in shared memory and bulk copies completing on them (sm_90+;
 * the emulator's own in its sm_90 build, EFLA_EMU_BULK). */
#ifdef EFLA_CUDA_EMULATION
EFLA_DEV void mbarrier_init(uint64_t *bar, uint32_t arrivals) {
    efla_emu_mbarrier_init(bar, arrivals);
}
EFLA_DEV void mbarrier_wait(uint64_t *bar, uint32_t parity) { efla_emu_mbarrier_wait(bar, parity); }
EFLA_DEV void mbarrier_arrive(uint64_t *bar) { efla_emu_mbarrier_arrive(bar, 0); }
EFLA_DEV void mbarrier_arrive_expect(uint64_t *bar, uint32_t bytes) {
    efla_emu_mbarrier_arrive(bar, bytes);
}
EFLA_DEV void bulk_copy(void *to, const void *from, uint32_t bytes, uint64_t *bar) {
    efla_emu_bulk_copy(to, from, bytes, bar);
}
#else
EFLA_DEV void mbarrier_init(uint64_t *bar, uint32_t arrivals) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(shared_address(bar)),
                 "r"(arrivals));
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}

EFLA_DEV void mbarrier_wait(uint64_t *bar, uint32_t parity) {
    uint32_t done;
    do {
        asm volatile("{\n.reg .pred p;\n"
                     "mbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     "selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(done)
                     : "r"(shared_address(bar)), "r"(parity)
                     : "memory");
    } while (!done);
}

EFLA_DEV void mbarrier_arrive(uint64_t *bar) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(shared_address(bar))
                 : "memory");
}

/* One arrival that also expects `bytes` more of copies on the phase. */
EFLA_DEV void mbarrier_arrive_expect(uint64_t *bar, uint32_t bytes) {
    asm volatile(
        "mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(shared_address(bar)),
        "r"(bytes)
        : "memory");
}

EFLA_DEV void bulk_copy(void *to, const void *from, uint32_t bytes, uint64_t *bar) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], "
                 "[%1], %2, [%3];\n" ::"r"(shared_address(to)),
                 "l"(from), "r"(bytes), "r"(shared_address(bar))
                 : "memory");
}
#endif

/* One thread: the stage's copies first .. last - 1 (all by default) as
 * bulk copies, completing on `bar`. The proxy fence orders the warps'
 * earlier reads of the buffer (generic proxy) before the copies' writes
 * (async proxy). */
template <int BV, bool FUSED>
EFLA_DEV void issue_bulk(const CopySource &src, int64_t c, const StateStage &to, int dkp,
                         uint64_t *bar, int first = 0, int last = kCopies<FUSED>) {
    uint32_t bytes = 0;
    for (int i = first; i < last; ++i)
        bytes += state_copy<BV>(i, src, c, to, dkp).bytes;
    proxy_fence();
    mbarrier_arrive_expect(bar, bytes);
    for (int i = first; i < last; ++i) {
        const StateCopy copy = state_copy<BV>(i, src, c, to, dkp);
        bulk_copy(copy.to, copy.from, copy.bytes, bar);
    }
}

/* The producer warp's one thread: every chunk's bulk copies, each into its
 * stage once the computing warps have released the chunk `stages` before
 * (empty[s] completes its n-th phase when chunk s + n stages is released;
 * full[s] as below). */
template <int BV, bool FUSED>
EFLA_DEV void produce(const CopySource &src, int64_t chunks, int stages, uint16_t *smem, int dkp,
                      uint64_t *full, uint64_t *empty) {
    for (int64_t c = 0; c < chunks; ++c) {
        const int s = stage_index(c, stages);
        const uint32_t fills = stage_fills(c, stages);
        if (fills > 0) mbarrier_wait(empty + s, (fills - 1) & 1u);
        issue_bulk<BV, FUSED>(src, c, state_stage<BV, FUSED>(smem, s, dkp), dkp, full + s);
    }
}
#endif

/* The computing warps' barrier (THREADS threads, named barrier 1), which
 * the producer warp does not take part in. */
template <int THREADS> EFLA_DEV void consumer_sync() {
#ifdef EFLA_CUDA_EMULATION
    efla_emu_named_barrier(1, THREADS);
#else
    asm volatile("bar.sync 1, %0;\n" ::"n"(THREADS) : "memory");
#endif
}

/* Every thread: copies first .. last - 1 of the stage as 16-byte
 * cp.async pieces. */
template <int THREADS, int BV, bool FUSED>
EFLA_DEV void issue_pieces(const CopySource &src, int64_t c, const StateStage &to, int dkp,
                           int first, int last) {
    for (int i = first; i < last && i < kCopies<FUSED>; ++i) {
        const StateCopy copy = state_copy<BV>(i, src, c, to, dkp);
        for (uint32_t e = efla_tid(); e < copy.bytes / 16; e += THREADS)
            efla_cp_async16(copy.to + 8 * e, copy.from + 8 * e);
    }
}

/* A fragment (a0..a3: rows g, g + 8; columns 2c, 2c + 8) into a row-major
 * 16-bit matrix at row `row` (the warp's row g), column `col` (2c of its
 * k block), pitch `pitch`. */
EFLA_DEV void store_a(uint16_t *m, int64_t pitch, int64_t row, int col, const uint32_t a[4]) {
    uint32_t *top = reinterpret_cast<uint32_t *>(m + row * pitch + col);
    uint32_t *bottom = reinterpret_cast<uint32_t *>(m + (row + 8) * pitch + col);
    top[0] = a[0];
    bottom[0] = a[1];
    top[4] = a[2];
    bottom[4] = a[3];
}

/* Part q of a group (PARTS = 2 or 4 warps per 16 value columns) holds the
 * k16 blocks q, q + PARTS, ... of those rows of S^T, and finishes the
 * position blocks BLOCKS q ... BLOCKS (q + 1) - 1 of V'^T (BLOCKS = 4 /
 * PARTS of the chunk's four). Fewer parts: fewer partials through shared
 * memory, more products per warp. */
template <int PARTS> constexpr int kBlocksPerPart = (kChunk / 16) / PARTS;

/* A group's exchange in shared memory, in fragment order so that every
 * access is one 16-byte piece per lane: partial [PARTS][8 tiles][32
 * lanes][4] f32 (a part's own tiles stay in its registers), then va [4
 * position blocks][32 lanes][4] A-fragment registers. Fused, the groups'
 * partial outputs follow all of that, laid out as `partial`. */
struct Exchange {
    float *partial;
    uint32_t *va;
};

template <int PARTS> constexpr int kExchangeFloats = PARTS * 16 * kChunk + 8 * kChunk;

template <int PARTS> EFLA_DEV Exchange exchange_of(void *base, int group) {
    Exchange x;
    x.partial = reinterpret_cast<float *>(base) + group * kExchangeFloats<PARTS>;
    x.va = reinterpret_cast<uint32_t *>(x.partial + PARTS * 16 * kChunk);
    return x;
}

template <int PARTS, int GROUPS> EFLA_DEV Exchange output_exchange_of(void *base, int group) {
    Exchange x;
    x.partial = reinterpret_cast<float *>(base) + GROUPS * kExchangeFloats<PARTS> +
                group * PARTS * 16 * kChunk;
    x.va = nullptr;
    return x;
}

/* o[2 m + h] += (Q S)[position tile m][column half h] for k block kb:
 * the A fragment `a` of S^T is the B fragment of S (registers 0, 2 for the
 * group's first 8 columns, 1, 3 for the next 8); Q's A fragments come from
 * the stage. */
template <int DT>
EFLA_DEV void queries_times_state(float (*o)[4], const uint32_t a[4], const uint16_t *queries,
                                  int kp, int kb) {
    const uint32_t first[2] = {a[0], a[2]}, second[2] = {a[1], a[3]};
#pragma unroll
    for (int m = 0; m < kChunk / 16; ++m) {
        uint32_t fq[4];
        efla_load_a(fq, queries, kp, 16 * m, 16 * kb);
        efla_mma<DT>(o[2 * m], fq, first);
        efla_mma<DT>(o[2 * m + 1], fq, second);
    }
}

/* v[t] = (S^T W^T)[.., tile t] over the part's k blocks; unfused, its
 * blocks of S_c^T go to `ht` on the way, from the same A fragments. With
 * QS, also o = Q S over the same blocks (queries_times_state). The mma
 * statements keep their order, so neighbouring ones go to different
 * accumulators. */
template <int DT, int DKT, int PARTS, bool FUSED, bool QS>
EFLA_DEV void partial_times_w(float (*v)[4], float (*o)[4], const float (*s)[4],
                              const StateStage &stage, int kp, int dkp, uint16_t *ht, int64_t row,
                              int c2, int q) {
#pragma unroll
    for (int i = 0; i < DKT / (2 * PARTS); ++i) {
        const int kb = q + PARTS * i;
        if (16 * kb >= dkp) break;
        uint32_t a[4];
        efla_acc_to_a<DT>(a, s[2 * i], s[2 * i + 1]);
        if (!FUSED) store_a(ht, dkp, row, 16 * kb + c2, a);
#pragma unroll
        for (int t = 0; t < kChunk / 8; t += 2) {
            uint32_t b[2][2];
            efla_load_b_pair(b, stage.w, kp, 8 * t, 16 * kb);
            efla_mma<DT>(v[t], a, b[0]);
            efla_mma<DT>(v[t + 1], a, b[1]);
        }
        if (QS) queries_times_state<DT>(o, a, stage.q, kp, kb);
    }
}

/* o = Q S over the part's k blocks, on its own (after the W product's
 * partials are out of the registers). */
template <int DT, int DKT, int PARTS>
EFLA_DEV void partial_times_q(float (*o)[4], const float (*s)[4], const uint16_t *queries, int kp,
                              int dkp, int q) {
#pragma unroll
    for (int i = 0; i < DKT / (2 * PARTS); ++i) {
        const int kb = q + PARTS * i;
        if (16 * kb >= dkp) break;
        uint32_t a[4];
        efla_acc_to_a<DT>(a, s[2 * i], s[2 * i + 1]);
        queries_times_state<DT>(o, a, queries, kp, kb);
    }
}

/* Whether a part keeps its own position blocks of the partial in
 * registers (two parts) or sends them through the exchange with the rest
 * (four parts: at 16 warps, 128 registers, the selection spills; on the
 * H200, S1 ran 0.436 ms without it and 0.438 ms with it). */
template <int PARTS> constexpr bool kKeepOwn = PARTS == 2;

/* The part's partials (8 tiles, two per position block) to the exchange;
 * with kKeepOwn, but for its own position blocks, own[b] = tiles 2 (BLOCKS
 * q + b), + 1 (a selection by the warp's q, in registers); else own is
 * zero. */
template <int PARTS>
EFLA_DEV void share_partials(const Exchange &x, float (*v)[4], float (*own)[2][4], int q) {
    constexpr int BLOCKS = kBlocksPerPart<PARTS>;
    const int lane = efla_tid() & 31;
    for (int b = 0; b < BLOCKS; ++b)
        for (int h = 0; h < 2; ++h)
            for (int e = 0; e < 4; ++e)
                own[b][h][e] = 0.0f;
#pragma unroll
    for (int t = 0; t < kChunk / 8; ++t) {
        const int block = t / 2;
        if (kKeepOwn<PARTS>)
#pragma unroll
            for (int b = 0; b < BLOCKS; ++b)
                if (block == BLOCKS * q + b)
                    for (int e = 0; e < 4; ++e)
                        own[b][t % 2][e] = v[t][e];
        if (!kKeepOwn<PARTS> || block / BLOCKS != q)
            efla_store4(x.partial + ((q * 8 + t) * 32 + lane) * 4, v[t]);
    }
}

/* own[b] += the other parts' partials of the part's position block BLOCKS
 * q + b (with kKeepOwn; else every part's). */
template <int PARTS> EFLA_DEV void gather_partials(const Exchange &x, float (*own)[2][4], int q) {
    constexpr int BLOCKS = kBlocksPerPart<PARTS>;
    const int lane = efla_tid() & 31;
#pragma unroll
    for (int b = 0; b < BLOCKS; ++b) {
        const int pb = BLOCKS * q + b;
        for (int w = 0; w < PARTS; ++w) {
            if (kKeepOwn<PARTS> && w == q) continue;
            for (int h = 0; h < 2; ++h) {
                float part[4];
                efla_load4(x.partial + ((w * 8 + 2 * pb + h) * 32 + lane) * 4, part);
                for (int e = 0; e < 4; ++e)
                    own[b][h][e] += part[e];
            }
        }
    }
}

/* Part q's share of V'^T = U^T - sum of the partials: its position blocks
 * (tiles 2 pb, 2 pb + 1), as A fragment registers to the exchange and,
 * unfused, to the scratch `vnt`. ut is the stage's U^T at the group's
 * first row. */
template <int DT, int PARTS, bool FUSED>
EFLA_DEV void corrected_blocks(const Exchange &x, float (*own)[2][4], const uint16_t *ut,
                               uint16_t *vnt, int64_t row, int c2, int q) {
    constexpr int BLOCKS = kBlocksPerPart<PARTS>;
    const int lane = efla_tid() & 31;
    gather_partials<PARTS>(x, own, q);
#pragma unroll
    for (int b = 0; b < BLOCKS; ++b) {
        const int pb = BLOCKS * q + b;
        float(*v)[4] = own[b];
        const uint16_t *top = ut + (lane >> 2) * kPitchC + 16 * pb + c2;
        for (int h = 0; h < 2; ++h)
            for (int r = 0; r < 2; ++r) {
                const uint32_t u =
                    *reinterpret_cast<const uint32_t *>(top + 8 * r * kPitchC + 8 * h);
                v[h][2 * r] = efla_half_to_f32<DT>((uint16_t)(u & 0xffffu)) - v[h][2 * r];
                v[h][2 * r + 1] = efla_half_to_f32<DT>((uint16_t)(u >> 16)) - v[h][2 * r + 1];
            }
        uint32_t a[4];
        efla_acc_to_a<DT>(a, v[0], v[1]);
        efla_store16(x.va + (pb * 32 + lane) * 4, a);
        if (!FUSED) store_a(vnt, kChunk, row, 16 * pb + c2, a);
    }
}

/* s += V'^T K for the part's k blocks, K^T [dkp][PC] in the stage;
 * neighbouring mma statements go to different accumulators. Where the
 * part holds few k blocks (Dk 128, four parts: the S1 and S4 kernels),
 * V'^T's four A fragments are loaded first and the k blocks are the outer
 * loop, so that each k block's loads are one straight run ahead of its
 * mma statements (at S4 every position block waited for its own loads
 * behind a branch); elsewhere those registers would spill. */
template <int DT, int DKT, int PARTS>
EFLA_DEV void part_update(float (*s)[4], const Exchange &x, const uint16_t *kt, int dkp, int q) {
    constexpr int BLOCKS = kChunk / 16;
    const int lane = efla_tid() & 31;
    if constexpr (DKT / PARTS <= 4) {
        uint32_t va[BLOCKS][4];
#pragma unroll
        for (int pb = 0; pb < BLOCKS; ++pb)
            efla_load16(x.va + (pb * 32 + lane) * 4, va[pb]);
#pragma unroll
        for (int i = 0; i < DKT / (2 * PARTS); ++i) {
            const int kb = q + PARTS * i;
            if (16 * kb >= dkp) break;
            uint32_t b[BLOCKS][2][2];
#pragma unroll
            for (int pb = 0; pb < BLOCKS; ++pb)
                efla_load_b_pair(b[pb], kt, kPitchC, 16 * kb, 16 * pb);
#pragma unroll
            for (int pb = 0; pb < BLOCKS; ++pb) {
                efla_mma<DT>(s[2 * i], va[pb], b[pb][0]);
                efla_mma<DT>(s[2 * i + 1], va[pb], b[pb][1]);
            }
        }
    } else {
#pragma unroll
        for (int pb = 0; pb < BLOCKS; ++pb) {
            uint32_t a[4];
            efla_load16(x.va + (pb * 32 + lane) * 4, a);
#pragma unroll
            for (int i = 0; i < DKT / (2 * PARTS); ++i) {
                const int kb = q + PARTS * i;
                if (16 * kb >= dkp) break;
                uint32_t b[2][2];
                efla_load_b_pair(b, kt, kPitchC, 16 * kb, 16 * pb);
                efla_mma<DT>(s[2 * i], a, b[0]);
                efla_mma<DT>(s[2 * i + 1], a, b[1]);
            }
        }
    }
}

/* Where a fused block writes one chunk's output: the element (row t0,
 * column 0) of the value head, and whether pairs of columns go out as one
 * 4-byte store. */
struct OutputRows {
    uint16_t *first;
    int64_t row_stride, col_stride;
    int rows;
    bool pairs;
};

EFLA_DEV OutputRows output_rows(const efla_cuda_params &p, const efla_cuda_sequence &seq,
                                int64_t t0, int rows, int64_t hv) {
    OutputRows o;
    o.first =
        reinterpret_cast<uint16_t *>(p.out.address) + efla_offset(p.out, seq.batch_row, t0, hv, 0);
    o.row_stride = p.out.stride[1];
    o.col_stride = p.out.stride[3];
    o.rows = rows;
    o.pairs = p.out.stride[3] == 1 && p.out.stride[0] % 2 == 0 && p.out.stride[1] % 2 == 0 &&
              p.out.stride[2] % 2 == 0 && p.out.address % 4 == 0;
    return o;
}

/* Fused: the part's position blocks of the chunk's output,
 *   O = scale (diag(rq) (Q S_c) + P V'),
 * with own[b] the complete (Q S_c) of position block BLOCKS q + b (16
 * rows) for the group's 16 columns; P V' takes V' as B fragments from the
 * exchange (V'^T's A fragments, as S^T's above) over the blocks at or
 * before the diagonal. col is the group's first column of the state. */
template <int DT, int PARTS>
EFLA_DEV void chunk_output(const efla_cuda_params &p, float (*own)[2][4], const Exchange &x,
                           const StateStage &stage, const OutputRows &out, int64_t col, int q) {
    constexpr int BLOCKS = kBlocksPerPart<PARTS>;
    const int lane = efla_tid() & 31;
#pragma unroll
    for (int b = 0; b < BLOCKS; ++b) {
        const int m = BLOCKS * q + b;
        for (int h = 0; h < 2; ++h)
            for (int e = 0; e < 4; ++e)
                own[b][h][e] *= stage.rq[16 * m + efla_acc_row(e)];
        for (int pb = 0; pb <= m; ++pb) {
            uint32_t fp[4], va[4];
            efla_load_a(fp, stage.pm, kPitchC, 16 * m, 16 * pb);
            efla_load16(x.va + (pb * 32 + lane) * 4, va);
            const uint32_t first[2] = {va[0], va[2]}, second[2] = {va[1], va[3]};
            efla_mma<DT>(own[b][0], fp, first);
            efla_mma<DT>(own[b][1], fp, second);
        }
        for (int h = 0; h < 2; ++h)
            for (int r = 0; r < 2; ++r) {
                const int t = 16 * m + (lane >> 2) + 8 * r;
                const int64_t j = col + 8 * h + 2 * (lane & 3);
                if (t >= out.rows || j >= p.dv) continue;
                const float x0 = p.scale * own[b][h][2 * r], x1 = p.scale * own[b][h][2 * r + 1];
                uint16_t *to = out.first + t * out.row_stride + j * out.col_stride;
                if (out.pairs && j + 1 < p.dv) {
                    *reinterpret_cast<uint32_t *>(to) = efla_pack_half2<DT>(x0, x1);
                    continue;
                }
                to[0] = efla_f32_to_half<DT>(x0);
                if (j + 1 < p.dv) to[out.col_stride] = efla_f32_to_half<DT>(x1);
            }
    }
}

/* The state S[i][j] of the part's accumulator element (tile u, e). */
template <int PARTS> EFLA_DEV int64_t part_col(int u, int e, int q) {
    return 16 * (q + PARTS * (u / 2)) + 8 * (u % 2) + efla_acc_col(e);
}

/* Unfused up to 32 columns, the block has one warp more than its parts
 * (EFLA_CUDA_STATE_PRODUCER): with bulk copies, the producer, which issues
 * every chunk's copies once the computing warps have released the stage it
 * refills (an mbarrier per stage each way). No computing warp then issues
 * copies on the serial chain (at S4 warp 0 spent about a quarter of each
 * chunk there while the others waited at the next barrier), and a chunk
 * needs no block-wide barrier before it starts. Without bulk copies the
 * extra warp leaves at once. */
template <int BV, bool FUSED> constexpr bool kProducerWarp = EFLA_CUDA_STATE_PRODUCER(BV, FUSED);

template <int DT, int DKT, int GROUPS, int PARTS, bool FUSED>
EFLA_DEV void state_mma(const efla_cuda_params &p) {
    static_assert(PARTS == 2 || PARTS == 4, "two or four parts per 16 columns");
    constexpr int THREADS = 32 * PARTS * GROUPS, BV = 16 * GROUPS;
    constexpr bool kProduced = kProducerWarp<BV, FUSED> && EFLA_BULK;
    const int warp = efla_tid() >> 5, c2 = 2 * (efla_tid() & 3);
    const int group = warp / PARTS, q = warp % PARTS;
    const int64_t block = efla_block_x();
    const int64_t tile = block % p.dv_tiles;
    const int64_t slot = (block / p.dv_tiles) % p.hv_count;
    const int64_t n = block / ((int64_t)p.dv_tiles * p.hv_count);
    const int64_t hv = p.hv_begin + slot, j0 = tile * BV;
    const int64_t h = efla_key_head(p, hv);
    const efla_cuda_sequence seq = efla_sequence(p, n);
    if (seq.length <= p.recurrent_max_len) return;
    if (kProducerWarp<BV, FUSED> && !kProduced && efla_tid() >= THREADS) return;
    const int dkp = (int)efla_cuda_pad16(p.dk), kp = dkp + 8;
    uint16_t *smem = reinterpret_cast<uint16_t *>(efla_smem());
    const int stages = p.state_stages;
    /* The group's rows of S^T: value columns j0 + 16 group + g (and + 8). */
    const int64_t row = j0 + 16 * group + ((efla_tid() & 31) >> 2);
    void *exchanges =
        state_stage<BV, FUSED>(smem, stages, dkp).w + EFLA_CUDA_STATE_BARRIER_BYTES / 2;
    const Exchange x = exchange_of<PARTS>(exchanges, group);
    const Exchange xo = output_exchange_of<PARTS, GROUPS>(exchanges, group);

    const int64_t chunks = (seq.length + kChunk - 1) / kChunk;
    /* Chunk c's operands go to stage c % stages, `stages - 1` chunks ahead,
     * into the stage chunk c - 1 used once every warp is past it. */
    const efla_cuda_mma_layout layout = efla_cuda_mma_scratch_layout(p.dk, p.dv);
    const int64_t chunk_step = layout.total * p.hv_count; /* elements from chunk to chunk */
    uint16_t *const first = reinterpret_cast<uint16_t *>(p.scratch) +
                            (seq.first_chunk * p.hv_count + slot) * layout.total;
    auto stage_of = [&](int64_t c) {
        return state_stage<BV, FUSED>(smem, stage_index(c, stages), dkp);
    };
    const CopySource source = {first, chunk_step, layout, j0};
#if EFLA_BULK
    /* Per stage an mbarrier `full` after the stages, then (producer) one
     * `empty`; stage s completes its n-th fill in phase n, so chunk c waits
     * for parity (c / stages) & 1. */
    uint64_t *bars = reinterpret_cast<uint64_t *>(state_stage<BV, FUSED>(smem, stages, dkp).w);
    if (kProduced) {
        if (efla_tid() == 0)
            for (int i = 0; i < stages; ++i) {
                mbarrier_init(bars + i, 1);
                mbarrier_init(bars + stages + i, PARTS * GROUPS);
            }
        efla_sync();
        if (efla_tid() == THREADS)
            produce<BV, FUSED>(source, chunks, stages, smem, dkp, bars, bars + stages);
        if (efla_tid() >= THREADS) return;
    }
#endif

    float s[DKT / PARTS][4];
#pragma unroll
    for (int u = 0; u < DKT / PARTS; ++u)
        for (int e = 0; e < 4; ++e) {
            const int64_t i = part_col<PARTS>(u, e, q), j = row + (e >= 2 ? 8 : 0);
            s[u][e] = p.state_in.address && i < p.dk && j < p.dv
                          ? efla_state_load(p.state_in, n, hv, i, j)
                          : 0.0f;
        }

    auto rows_of = [&](int64_t c) { return (int)efla_min64(kChunk, seq.length - c * kChunk); };
    /* Fused: chunk c's Q rows, as stored, by every thread's cp.async pieces. */
    auto load_queries = [&](int64_t c) {
        if (FUSED && c < chunks)
            load_rows<THREADS>(p.q, row_source(p.q, seq, seq.first + c * kChunk, rows_of(c), h),
                               (int)p.dk, dkp, stage_of(c).q, kp);
    };
    /* Every chunk commits one group (empty past the end), so waiting for all
     * but the newest stages - 2 groups means chunk c has landed. */
    auto wait_pieces = [&]() {
        if (stages == 3)
            efla_cp_async_wait_one();
        else
            efla_cp_async_wait_all();
    };
    auto issue = [&](int64_t c, int begin, int end) {
        if (c < chunks) issue_pieces<THREADS, BV, FUSED>(source, c, stage_of(c), dkp, begin, end);
    };
    (void)issue; /* unused where every copy is a bulk copy */
    /* Staggered (fused at Dk 256, where two stages do not fit): one buffer
     * of each operand, each refilled for the next chunk as soon as the
     * phase that reads it is over: W and Q after phase 1, U^T after phase
     * 2, K^T, P and rq after phase 3 (at the next chunk's first barrier).
     * Each has about two phases to land. */
    constexpr bool kStagger = FUSED && DKT > 16;
#if EFLA_STAGGER_BULK
    /* Staggered with bulk copies: W, U^T and (K^T, P, rq) each complete on
     * an mbarrier of their own (bars 0, 1, 2: once per chunk, so chunk c
     * waits for parity c & 1), issued by the first thread of warps 0, 1
     * and 2 (modulo the block's warps: 16 columns in two parts are two) so
     * that no warp issues all of them; only Q's rows remain cp.async pieces
     * of every thread (one group per chunk). */
    auto stagger_bulk = [&](int64_t c, int issuer, int begin, int end) {
        if (c < chunks && efla_tid() == 32 * (issuer % (PARTS * GROUPS)))
            issue_bulk<BV, FUSED>(source, c, stage_of(c), dkp, bars + issuer, begin, end);
    };
    auto refill_rows = [&](int64_t c) {
        stagger_bulk(c, 0, kCopyW, kCopyW + 1);
        load_queries(c);
        efla_cp_async_commit();
    };
    auto refill_values = [&](int64_t c) { stagger_bulk(c, 1, kCopyU, kCopyU + 1); };
    auto stagger_wait = [&](int64_t c, int which) {
        if (which == 0) efla_cp_async_wait_all();
        mbarrier_wait(bars + which, (uint32_t)c & 1u);
    };
#else
    auto refill_rows = [&](int64_t c) {
        issue(c, kCopyW, kCopyW + 1);
        load_queries(c);
        efla_cp_async_commit();
    };
    auto refill_values = [&](int64_t c) {
        issue(c, kCopyU, kCopyU + 1);
        efla_cp_async_commit();
    };
    /* The three cp.async groups are committed in the order they are waited
     * for, so every wait is "all but the newest group". */
    auto stagger_wait = [&](int64_t c, int which) {
        (void)c;
        (void)which;
        efla_cp_async_wait_one();
    };
#endif
    /* Chunk c's operands (staggered: its K^T, P and rq). */
    auto prefetch = [&](int64_t c) {
        if (kStagger) {
#if EFLA_STAGGER_BULK
            stagger_bulk(c, 2, kCopyK, kCopies<FUSED>);
#else
            issue(c, kCopyK, kCopies<FUSED>);
            efla_cp_async_commit();
#endif
            return;
        }
#if EFLA_BULK
        if (efla_tid() == 0 && c < chunks)
            issue_bulk<BV, FUSED>(source, c, stage_of(c), dkp, bars + stage_index(c, stages));
        if (FUSED) {
            load_queries(c);
            efla_cp_async_commit();
        }
#else
        issue(c, 0, 5);
        load_queries(c);
        efla_cp_async_commit();
#endif
    };
    auto wait = [&](int64_t c) {
        (void)c;
        if (kStagger) {
            stagger_wait(c, 0); /* W, Q */
            return;
        }
#if EFLA_BULK
        if (FUSED) wait_pieces();
        mbarrier_wait(bars + stage_index(c, stages), stage_fills(c, stages) & 1u);
#else
        wait_pieces();
#endif
    };
    /* Produced: each warp hands chunk c's stage back to the producer once
     * its reads of it are over. */
    auto release = [&](int64_t c) {
        (void)c;
#if EFLA_BULK
        efla_syncwarp();
        if ((efla_tid() & 31) == 0) mbarrier_arrive(bars + stages + stage_index(c, stages));
#endif
    };
    if (kStagger) {
#if EFLA_STAGGER_BULK
        if (efla_tid() == 0)
            for (int i = 0; i < 3; ++i)
                mbarrier_init(bars + i, 1);
        consumer_sync<THREADS>();
#endif
        refill_rows(0);
        refill_values(0);
    } else if (!kProduced) {
#if EFLA_BULK
        if (efla_tid() == 0) {
            for (int i = 0; i < stages; ++i)
                mbarrier_init(bars + i, 1);
            for (int64_t c = 0; c < stages - 1 && c < chunks; ++c)
                issue_bulk<BV, FUSED>(source, c, stage_of(c), dkp, bars + stage_index(c, stages));
        }
        if (FUSED)
            for (int64_t c = 0; c < stages - 1; ++c) {
                load_queries(c);
                efla_cp_async_commit(); /* one group per chunk, as below */
            }
        consumer_sync<THREADS>();
#else
        for (int64_t c = 0; c < stages - 1; ++c)
            prefetch(c);
#endif
    }
    for (int64_t c = 0; c < chunks; ++c) {
        wait(c);
        if (!kProduced) {
            consumer_sync<THREADS>(); /* chunk c's operands are visible; c - 1's stage is free */
            prefetch(c + stages - 1);
        }
        const StateStage stage = stage_of(c);
        uint16_t *const chunk = first + c * chunk_step;
        float own[kBlocksPerPart<PARTS>][2][4], out[kBlocksPerPart<PARTS>][2][4];
        /* At Dk 256 Q S follows the W product, not beside it: the
         * registers of both partials at once spill. */
        constexpr bool kTogether = FUSED && DKT <= 16;
        {
            float v[kChunk / 8][4] = {}, o[kChunk / 8][4] = {};
            partial_times_w<DT, DKT, PARTS, FUSED, kTogether>(v, o, s, stage, kp, dkp,
                                                              chunk + layout.ht, row, c2, q);
            share_partials<PARTS>(x, v, own, q);
            if (kTogether) share_partials<PARTS>(xo, o, out, q);
        }
        if (FUSED && !kTogether) {
            float o[kChunk / 8][4] = {};
            partial_times_q<DT, DKT, PARTS>(o, s, stage.q, kp, dkp, q);
            share_partials<PARTS>(xo, o, out, q);
        }
        if (kStagger) stagger_wait(c, 1); /* U^T */
        consumer_sync<THREADS>();         /* the partials are complete */
        if (kStagger) refill_rows(c + 1);
        corrected_blocks<DT, PARTS, FUSED>(x, own, stage.ut + 16 * group * kPitchC,
                                           chunk + layout.vnt, row, c2, q);
        if (FUSED) gather_partials<PARTS>(xo, out, q);
        if (kStagger) stagger_wait(c, 2); /* K^T, P, rq */
        consumer_sync<THREADS>();         /* V'^T is complete */
        if (kStagger) refill_values(c + 1);
        if (FUSED)
            chunk_output<DT, PARTS>(p, out, x, stage,
                                    output_rows(p, seq, seq.first + c * kChunk, rows_of(c), hv),
                                    j0 + 16 * group, q);
        part_update<DT, DKT, PARTS>(s, x, stage.kt, dkp, q);
        if (kProduced) release(c);
    }

    if (!p.state_out.address) return;
#pragma unroll
    for (int u = 0; u < DKT / PARTS; ++u)
        for (int e = 0; e < 4; ++e) {
            const int64_t i = part_col<PARTS>(u, e, q), j = row + (e >= 2 ? 8 : 0);
            if (i < p.dk && j < p.dv) efla_state_store(p.state_out, n, hv, i, j, s[u][e]);
        }
}

} // namespace

#endif
