#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#ifdef EFLA_CM2
#extension GL_NV_cooperative_matrix2 : require
#endif
// The state scan by value-column slabs, for devices that the scan's
// sequences and heads already fill (chunk_scan_cm.comp spreads one slab's
// products over a whole workgroup instead, for when they do not). One
// workgroup per (entry, value head, BV value columns), serial over the
// entry's chunks. Its first BV / 16 subgroups compute: each owns the slab of
// its 16 columns, S [DKC x 16], in f32 accumulators, and no slab needs
// another's. The RG invocations after them produce: they load the next
// chunk's W, K^ and Q^ (f16, from chunk_prep_cm) into their registers while
// this one is computed, and stage them in shared memory between two
// workgroup barriers, so the computing subgroups hold no prefetch registers.
// Above Dk 128 Q^ is not staged (three matrices would not fit): its
// operands come straight from the scratch. Per chunk c, for each slab:
//   V'  = U - W S_c                 (V' published as f16, scaled)
//   Y   = Q^ S_c                    (f32, for chunk_out_cm in place of H)
//   S  += K^^T V'
// S_c and V' become B operands through the subgroup's own rows of shared
// memory (one power of two scales each, so the products accumulate
// unscaled). V' leaves in 16-byte pieces as f16 tiles with each tile's
// inverse scale in F (f_stride()); Y leaves in f32, a chunk's Q^ S_c being
// CH x Dv where H would be DKC x Dv. The next chunk's U loads into the
// computing subgroups' accumulators meanwhile. Requires DKC, BV and CH
// multiples of 16, RG a multiple of the subgroup size and WG = (BV / 16) x
// the subgroup size + RG (what a SPIR-V 1.3 module gets); the plan sizes
// them so.
//
// Built with EFLA_CM2 (GL_NV_cooperative_matrix2's conversions, through
// backends/vulkan/coopmat2.cmake), a subgroup holds its slab transposed,
// S^T [16 x DKC], and the products are transposed too:
//   V'^T = U^T - S_c^T W^T          A = S_c^T
//   Y^T  = S_c^T Q^^T               A = S_c^T
//   S^T += V'^T K^                  A = V'^T
// Their A operands are the accumulators themselves, converted (on NVIDIA's
// mma fragments, an accumulator tile is already an A tile), so neither S_c
// nor V' goes through shared memory on its way to a product; the rows hold
// only V' on its way to the scratch.
#include "efla_common.glsl"
#include "efla_coopmat.glsl"

layout(std430, set = 0, binding = 9) readonly buffer WBuf { uvec4 w4[]; }; // W, K^, Q^ (f16)
layout(std430, set = 0, binding = 10) readonly buffer UBuf { float u_s[]; };
// V' as f16 tiles (eight to a uvec4: offsets and strides count uvec4s).
layout(std430, set = 0, binding = 11) writeonly buffer VTileBuf { uvec4 v4[]; };
layout(std430, set = 0, binding = 12) writeonly buffer FBuf { float f_s[]; };
layout(std430, set = 0, binding = 13) writeonly buffer YBuf { float y_s[]; }; // Y [CH][dvs]

const uint RT = DKC / TM;                  // state row tiles of a slab
const uint VT = CH / TM;                   // V' (and Y) row tiles of a slab
const uint CT = BV / TM;                   // slabs (computing subgroups) per workgroup
const uint PIECES = CH * DKC / 8u;         // uvec4 of a chunk's W (and of its K^, Q^)
const uint PRODUCERS = RG;                // invocations of the producing subgroups (the plan's)
const uint PV = (PIECES + PRODUCERS - 1u) / PRODUCERS; // pieces of each per producer
const uint KQ = DKC / 8u + 1u;             // W, K^, Q^ row pitch in shared (uvec4)
const uint RQ = 3u;                        // slab row pitch in shared (uvec4: 16 f16 + 8 pad)
#ifdef EFLA_CM2
const uint ROWS = CH;
#define ACC_LAYOUT COL_MAJOR // the accumulators hold S^T, U^T, V'^T, Y^T
#else
const uint RH = (RT + 1u) / 2u;            // state row tiles in the rows at a time
const uint ROWS = RH * TM > CH ? RH * TM : CH;
#define ACC_LAYOUT ROW_MAJOR
#endif
// uvec4 of one subgroup's rows: at least an f32 state tile's 64
const uint SLAB4 = ROWS * RQ > TM * TM / 4u ? ROWS * RQ : TM * TM / 4u;

shared uvec4 w16[CH * KQ];
shared uvec4 k16[CH * KQ];
// Q^ is staged up to Dk 128; above, three matrices would not fit in 48 KB,
// and the products read Q^ straight from the scratch (off the chain).
const bool Q_STAGED = DKC <= 128u;
shared uvec4 q16[DKC <= 128u ? CH * KQ : 1u];
// Each computing subgroup's rows: half of S_c [RH x 16] (not with EFLA_CM2),
// later V' [CH] (f16, 16 to a row); before and after the chunks, one f32
// state tile on its way in or out.
shared uvec4 rows[CT * SLAB4];

// State tile rows r0.. of the slab (tensor columns col..) through the
// subgroup's rows as f32.
void state_tile_in(inout CM_ACC m, Entry en, uint hv, uint base, uint r0, uint col) {
    bool read_state = (en.flags & ENTRY_READ_STATE) != 0u;
    for (uint e = gl_SubgroupInvocationID; e < TM * TM; e += gl_SubgroupSize) {
        uint i = r0 + e / TM, j = col + e % TM;
        float x = 0.0;
        if (read_state && i < P.dk && j < P.dv) x = sin_w[vidx(P.sin_, en.state_row, hv, i, j)];
        rows[base + e / 4u][e % 4u] = floatBitsToUint(x);
    }
    subgroup_sync();
    coopMatLoad(m, rows, base, TM / 4u, ACC_LAYOUT);
    subgroup_sync();
}

void state_tile_out(CM_ACC m, Entry en, uint hv, uint base, uint r0, uint col) {
    coopMatStore(m, rows, base, TM / 4u, ACC_LAYOUT);
    subgroup_sync();
    for (uint e = gl_SubgroupInvocationID; e < TM * TM; e += gl_SubgroupSize) {
        uint i = r0 + e / TM, j = col + e % TM;
        if (i < P.dk && j < P.dv)
            sout_w[vidx(P.sout, en.state_row, hv, i, j)] = uintBitsToFloat(rows[base + e / 4u][e % 4u]);
    }
    subgroup_sync();
}

// The subgroup's V' rows to the scratch (rows of dvs f16 from uvec4 `to`,
// the slab's first column), 16 bytes a piece.
void copy_v(uint base, uint to) {
    for (uint e = gl_SubgroupInvocationID; e < 2u * CH; e += gl_SubgroupSize)
        v4[to + (e / 2u) * (P.dvs / 8u) + e % 2u] = rows[base + (e / 2u) * RQ + e % 2u];
}

// Where uvec4 number `idx` of a chunk's W, K^ or Q^ rows goes in shared.
uint padded(uint idx) { return (idx / (DKC / 8u)) * KQ + idx % (DKC / 8u); }

// Where block `block`'s Q^ rows are in the scratch (uvec4).
uint q_scratch(uint block) { return block * w_block_pieces() + 2u * PIECES; }

// The producers' registers: one chunk's W, K^ and Q^, loaded from block
// `block`'s pieces and later staged.
uvec4 wpf[PV], kpf[PV], qpf[PV];

void load_chunk(uint block, uint p) {
    uint base4 = block * w_block_pieces(); // the plan sets SCAN_Y for this scan
    [[unroll]] for (uint m = 0u; m < PV; ++m) {
        uint idx = min(p + PRODUCERS * m, PIECES - 1u);
        wpf[m] = w4[base4 + idx];
        kpf[m] = w4[base4 + PIECES + idx];
        if (Q_STAGED) qpf[m] = w4[base4 + 2u * PIECES + idx];
    }
}

void stage_chunk(uint p) {
    [[unroll]] for (uint m = 0u; m < PV; ++m) {
        uint idx = p + PRODUCERS * m;
        if (idx < PIECES) {
            w16[padded(idx)] = wpf[m];
            k16[padded(idx)] = kpf[m];
            if (Q_STAGED) q16[padded(idx)] = qpf[m];
        }
    }
}

// One chunk of one slab (block: the chunk's scratch block; next: whether
// another chunk follows, whose U then loads into u).
#ifdef EFLA_CM2
void slab_chunk(inout CM_ACC st[RT], inout CM_ACC u[VT], uint block, bool next, uint base,
                uint col) {
    uint fbase = P.f_base + block * f_stride() + 2u * CH;
    uint lane = gl_SubgroupInvocationID, ctg = P.dvs / TM;

    // S_c^T as f16 A operands, one scale for the slab; V'^T and Y^T
    // accumulate unscaled (W^T and Q^^T read column-major from their rows).
    float m = 0.0;
    [[unroll]] for (uint r = 0u; r < RT; ++r) m = max(m, tile_max(st[r]));
    float sc = pow2_scale(subgroupMax(m));
    CM_ACC p[VT];
    CM_ACC y[VT];
    [[unroll]] for (uint i = 0u; i < VT; ++i) {
        p[i] = CM_ACC(0.0);
        y[i] = CM_ACC(0.0);
    }
    [[unroll]] for (uint r = 0u; r < RT; ++r) {
        CM_A a = CM_A(st[r] * sc);
        [[unroll]] for (uint i = 0u; i < VT; ++i) {
            CM_B b;
            CM_B q;
            coopMatLoad(b, w16, i * TM * KQ + r * TM / 8u, KQ, COL_MAJOR);
            p[i] = coopMatMulAdd(a, b, p[i]);
            if (Q_STAGED)
                coopMatLoad(q, q16, i * TM * KQ + r * TM / 8u, KQ, COL_MAJOR);
            else
                coopMatLoad(q, w4, q_scratch(block) + (i * TM * DKC + r * TM) / 8u, DKC / 8u,
                            COL_MAJOR);
            y[i] = coopMatMulAdd(a, q, y[i]);
        }
    }
    float inv = 1.0 / sc;
    m = 0.0;
    [[unroll]] for (uint i = 0u; i < VT; ++i) {
        p[i] = u[i] - p[i] * inv;
        m = max(m, tile_max(p[i]));
    }
    if (next)
        [[unroll]] for (uint i = 0u; i < VT; ++i)
            coopMatLoad(u[i], u_s, P.u_base + (block + P.hv_count) * CH * P.dvs + i * TM * P.dvs + col,
                        P.dvs, ACC_LAYOUT);
    float scv = pow2_scale(subgroupMax(m));

    // S^T += V'^T K^, V'^T's tiles the A operands; V' to the rows meanwhile.
    CM_A va[VT];
    [[unroll]] for (uint i = 0u; i < VT; ++i) {
        va[i] = CM_A(p[i] * scv);
        coopMatStore(CM_ACC16(p[i] * scv), rows, base + i * TM * RQ, RQ, ACC_LAYOUT);
    }
    float vinv = 1.0 / scv;
    [[unroll]] for (uint r = 0u; r < RT; ++r) {
        CM_ACC d = CM_ACC(0.0);
        [[unroll]] for (uint i = 0u; i < VT; ++i) {
            CM_B b;
            coopMatLoad(b, k16, i * TM * KQ + r * TM / 8u, KQ, ROW_MAJOR);
            d = coopMatMulAdd(va[i], b, d);
        }
        st[r] = st[r] + d * vinv;
    }
    if (lane < VT) f_s[fbase + (RT + lane) * ctg + col / TM] = 1.0 / scv;
    subgroup_sync();
    copy_v(base, (block * CH * P.dvs + col) / 8u);
    [[unroll]] for (uint i = 0u; i < VT; ++i)
        coopMatStore(y[i] * inv, y_s, P.h_base + block * CH * P.dvs + i * TM * P.dvs + col, P.dvs,
                     ACC_LAYOUT);
    subgroup_sync(); // V''s reads are done before the next chunk's V'
}
#else
void slab_chunk(inout CM_ACC st[RT], inout CM_ACC u[VT], uint block, bool next, uint base,
                uint col) {
    uint fbase = P.f_base + block * f_stride() + 2u * CH;
    uint lane = gl_SubgroupInvocationID, ctg = P.dvs / TM;

    // S_c as f16, one scale for the slab, to the rows half a slab at a time
    // (so that the rows of four slabs and three chunk matrices fit in 48 KB
    // at Dk 128); W S_c and Q^ S_c on the same B operands, unscaled.
    float m = 0.0;
    [[unroll]] for (uint r = 0u; r < RT; ++r) m = max(m, tile_max(st[r]));
    float sc = pow2_scale(subgroupMax(m));
    CM_ACC p[VT];
    CM_ACC y[VT];
    [[unroll]] for (uint i = 0u; i < VT; ++i) {
        p[i] = CM_ACC(0.0);
        y[i] = CM_ACC(0.0);
    }
    [[unroll]] for (uint part = 0u; part < 2u; ++part) {
        [[unroll]] for (uint rr = 0u; rr < RH; ++rr) {
            uint r = part * RH + rr;
            if (r < RT) coopMatStore(CM_ACC16(st[r] * sc), rows, base + rr * TM * RQ, RQ, ROW_MAJOR);
        }
        subgroup_sync();
        [[unroll]] for (uint rr = 0u; rr < RH; ++rr) {
            uint r = part * RH + rr;
            if (r >= RT) continue;
            CM_B b;
            coopMatLoad(b, rows, base + rr * TM * RQ, RQ, ROW_MAJOR);
            [[unroll]] for (uint i = 0u; i < VT; ++i) {
                CM_A a;
                CM_A q;
                coopMatLoad(a, w16, i * TM * KQ + r * TM / 8u, KQ, ROW_MAJOR);
                p[i] = coopMatMulAdd(a, b, p[i]);
                if (Q_STAGED)
                    coopMatLoad(q, q16, i * TM * KQ + r * TM / 8u, KQ, ROW_MAJOR);
                else
                    coopMatLoad(q, w4, q_scratch(block) + (i * TM * DKC + r * TM) / 8u, DKC / 8u,
                                ROW_MAJOR);
                y[i] = coopMatMulAdd(q, b, y[i]);
            }
        }
        subgroup_sync(); // this half's reads are done before the rows are reused
    }
    float inv = 1.0 / sc;
    m = 0.0;
    [[unroll]] for (uint i = 0u; i < VT; ++i) {
        p[i] = u[i] - p[i] * inv;
        m = max(m, tile_max(p[i]));
    }
    if (next)
        [[unroll]] for (uint i = 0u; i < VT; ++i)
            coopMatLoad(u[i], u_s, P.u_base + (block + P.hv_count) * CH * P.dvs + i * TM * P.dvs + col,
                        P.dvs, ROW_MAJOR);
    float scv = pow2_scale(subgroupMax(m));
    [[unroll]] for (uint i = 0u; i < VT; ++i)
        coopMatStore(CM_ACC16(p[i] * scv), rows, base + i * TM * RQ, RQ, ROW_MAJOR);
    if (lane < VT) f_s[fbase + (RT + lane) * ctg + col / TM] = 1.0 / scv;
    subgroup_sync();
    copy_v(base, (block * CH * P.dvs + col) / 8u);

    // S += K^^T V' (K^^T read column-major from the rows of K^).
    CM_B vb[VT];
    [[unroll]] for (uint i = 0u; i < VT; ++i)
        coopMatLoad(vb[i], rows, base + i * TM * RQ, RQ, ROW_MAJOR);
    float vinv = 1.0 / scv;
    [[unroll]] for (uint r = 0u; r < RT; ++r) {
        CM_ACC d = CM_ACC(0.0);
        [[unroll]] for (uint i = 0u; i < VT; ++i) {
            CM_A a;
            coopMatLoad(a, k16, i * TM * KQ + r * TM / 8u, KQ, COL_MAJOR);
            d = coopMatMulAdd(a, vb[i], d);
        }
        st[r] = st[r] + d * vinv;
    }
    // Y leaves last: nothing of this chunk waits on its stores.
    [[unroll]] for (uint i = 0u; i < VT; ++i)
        coopMatStore(y[i] * inv, y_s, P.h_base + block * CH * P.dvs + i * TM * P.dvs + col, P.dvs,
                     ROW_MAJOR);
    subgroup_sync(); // V''s reads are done before the next S_c
}
#endif

void main() {
    uint hvl = gl_WorkGroupID.y;
    uint hv = P.hv_base + hvl;
    Entry en = entries[pc.entry_base + gl_WorkGroupID.z];
    uint chunks = (en.count + CH - 1u) / CH;
    bool producer = gl_SubgroupID >= CT;
    uint p = (gl_SubgroupID - CT) * gl_SubgroupSize + gl_SubgroupInvocationID; // producers only
    uint col = gl_WorkGroupID.x * BV + gl_SubgroupID * TM; // computing: the slab's first column
    bool owns_slab = !producer && col < P.dvs; // past Dv a subgroup idles
    uint base = gl_SubgroupID * SLAB4;

    CM_ACC st[RT];
    CM_ACC u[VT];
    [[unroll]] for (uint r = 0u; r < RT; ++r) {
        st[r] = CM_ACC(0.0);
        if (owns_slab) state_tile_in(st[r], en, hv, base, r * TM, col);
    }
    [[unroll]] for (uint i = 0u; i < VT; ++i) u[i] = CM_ACC(0.0);
    if (chunks > 0u) {
        uint block = en.chunk_base * P.hv_count + hvl;
        if (producer) load_chunk(block, p);
        if (owns_slab)
            [[unroll]] for (uint i = 0u; i < VT; ++i)
                coopMatLoad(u[i], u_s, P.u_base + block * CH * P.dvs + i * TM * P.dvs + col, P.dvs,
                            ACC_LAYOUT);
    }
    for (uint ck = 0u; ck < chunks; ++ck) {
        uint block = (en.chunk_base + ck) * P.hv_count + hvl;
        bool next = ck + 1u < chunks;
        barrier(); // every subgroup is done with the last chunk's W, K^ and Q^
        if (producer) stage_chunk(p);
        barrier();
        if (producer && next) load_chunk(block + P.hv_count, p);
        if (owns_slab) slab_chunk(st, u, block, next, base, col);
    }
    if (owns_slab && (en.flags & ENTRY_WRITE_STATE) != 0u)
        [[unroll]] for (uint r = 0u; r < RT; ++r) state_tile_out(st[r], en, hv, base, r * TM, col);
}
