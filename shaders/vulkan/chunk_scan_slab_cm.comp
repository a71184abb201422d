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
// chunk's W, K^, Q^ (f16, from chunk_prep_cm) and the workgroup's columns
// of U (f32) into their registers while this one is computed, and stage
// them in shared memory between two workgroup barriers, so the computing
// subgroups hold no prefetch registers and wait on no global loads. Above
// 32 x 128 elements a matrix (Dk 256, or chunk 64 at Dk 128) three
// matrices do not fit in 48 KB: the NV cooperative-matrix-2 build stages
// Q^ where W was once the W products are done (two more barriers; Q^ S_c
// is off the chain), the KHR one reads Q^ straight from the scratch. Per
// chunk c, for each slab:
//   V'  = U - W S_c                 (V' published as f16, scaled)
//   Y   = Q^ S_c                    (f32, for chunk_out_cm in place of H)
//   S  += K^^T V'
// S_c and V' become B operands through the subgroup's own rows of shared
// memory (one power of two scales each, so the products accumulate
// unscaled). V' leaves in 16-byte pieces as f16 tiles with each tile's
// inverse scale in F (f_stride()); Y leaves in f32, a chunk's Q^ S_c being
// CH x Dv where H would be DKC x Dv. With LEG_PRODUCTS (efla_common.glsl)
// the slabs past dvs take W's columns in the place of U's, Y is not
// formed, and nothing but the end state leaves. Requires DKC, BV and CH
// multiples of
// 16, RG a multiple of the subgroup size and WG = (BV / 16) x PARTS x the
// subgroup size + RG (what a SPIR-V 1.3 module gets); the plan sizes them
// so.
//
// Built with EFLA_CM2 (GL_NV_cooperative_matrix2's conversions, through
// backends/vulkan/coopmat2.cmake), a subgroup holds its slab transposed,
// S^T [16 x DKC], and the products are transposed too:
//   V'^T = U^T - S_c^T W^T          A = S_c^T
//   Y^T  = S_c^T Q^^T               A = S_c^T
//   S^T += V'^T K^                  A = V'^T
// Their A operands are the accumulators themselves, converted (on NVIDIA's
// mma fragments, an accumulator tile is already an A tile), so neither S_c
// nor V' goes through shared memory on its way to a product, and V' goes
// to the scratch straight from the accumulators. That build also splits a
// slab's rows over PARTS subgroups (EFLA_VULKAN_SCAN_PARTS), each holding
// 1 / PARTS of Dk, for a shorter chain per chunk where the sequences and
// heads leave the device idle (on the H200 it was slower wherever it fit,
// so the plan keeps 1): each part's V'^T and Y^T over its rows are summed
// through shared memory (every part in the same order, so each gets the
// same V'^T), and each part adds V'^T K^ to its own rows; part 0 writes V'
// and Y.
//
// With FUSED_OUT (that build, one part) the scan forms the output itself
// and hands the scratch nothing: the producers form the chunk's
//   G^T = mask_{s<=t}(K^ Q^^T)      (f16, from the staged unit rows)
// once per chunk into shared memory while the slabs compute, and after one
// more workgroup barrier each slab adds
//   O^T = diag(qfac |q|) (Y^T + V'^T G^T)
// off its chain and writes its columns of O as 16-bit pairs.
#include "efla_common.glsl"
#include "efla_coopmat.glsl"

layout(std430, set = 0, binding = 9) readonly buffer WBuf { uvec4 w4[]; }; // W, K^, Q^ (f16)
layout(std430, set = 0, binding = 10) readonly buffer UBuf { uvec4 u4[]; }; // U (f32)
// V' as f16 tiles (eight to a uvec4: offsets and strides count uvec4s).
layout(std430, set = 0, binding = 11) writeonly buffer VTileBuf { uvec4 v4[]; };
layout(std430, set = 0, binding = 12) buffer FBuf { float f_s[]; }; // FUSED reads rows of it
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
// Subgroups per slab, each with RTP of its state row tiles (the plan keeps
// RT a multiple; the KHR build has 1).
layout(constant_id = 7) const uint PARTS = 1u;
const uint RTP = RT / PARTS;
#define ACC_LAYOUT COL_MAJOR // the accumulators hold S^T, U^T, V'^T, Y^T
// uvec4 of one computing subgroup's rows: its part of V'^T (f32, VT tiles)
// where the parts sum them, else an f32 state tile's 64; then, for parts
// 1.., their parts of Y^T.
const uint SLAB4 = PARTS > 1u ? VT * TM * TM / 4u : TM * TM / 4u;
const uint ROWS4 = CT * PARTS * SLAB4 + CT * (PARTS - 1u) * VT * TM * TM / 4u;
#else
const uint PARTS = 1u;
// A macro, not a constant: glslang passes an array whose size is another
// specialization constant (even an equal one) to an inout parameter
// through a temporary that it never copies in or back.
#define RTP RT
const uint RH = (RT + 1u) / 2u;            // state row tiles in the rows at a time
const uint ROWS = RH * TM > CH ? RH * TM : CH;
#define ACC_LAYOUT ROW_MAJOR
// uvec4 of one subgroup's rows: at least an f32 state tile's 64
const uint SLAB4 = ROWS * RQ > TM * TM / 4u ? ROWS * RQ : TM * TM / 4u;
const uint ROWS4 = CT * SLAB4;
#endif

shared uvec4 w16[CH * KQ];
shared uvec4 k16[CH * KQ];
// Q^ is staged up to 32 x 128 elements; above, three matrices would not fit
// in 48 KB, and the products read Q^ straight from the scratch (off the
// chain).
const bool Q_STAGED = CH * DKC <= 32u * 128u;
const bool WITH_Y = LEG_PRODUCTS == 0u; // the leg products form no Y
#ifdef EFLA_CM2
layout(constant_id = 9) const uint FUSED_OUT = 0u;
#else
const uint FUSED_OUT = 0u;
#endif
const bool FUSED = FUSED_OUT != 0u && WITH_Y;
const bool HAND_OUT = WITH_Y && !FUSED; // V', its scales and Y to the scratch
#ifdef EFLA_CM2
const bool STAGE_Q_OVER_W = !Q_STAGED && WITH_Y;
#else
const bool STAGE_Q_OVER_W = false;
#endif
shared uvec4 q16[CH * DKC <= 32u * 128u ? CH * KQ : 1u];
// The chunk's U for the workgroup's columns [CH][BV] (f32).
shared uvec4 u16[CH * BV / 4u];
// FUSED: the chunk's G^T [CH][GP] (f16), its rows' factors qfac |q| and
// its diagonal q^ . k^ (f32, from the prepare's exact rows).
const uint GP = CH + 8u;
shared float16_t g16h[FUSED ? CH * GP : 1u];
shared float rq_sh[FUSED ? CH : 1u];
shared float dg_sh[FUSED ? CH : 1u];
// Each computing subgroup's rows: half of S_c [RH x 16], later V' [CH]
// (f16, 16 to a row); with EFLA_CM2, its part of V'^T and Y^T (above);
// before and after the chunks, one f32 state tile on its way in or out.
shared uvec4 rows[ROWS4];

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
    uint width = LEG_PRODUCTS != 0u ? P.dvs + DKC : P.dv;
    for (uint e = gl_SubgroupInvocationID; e < TM * TM; e += gl_SubgroupSize) {
        uint i = r0 + e / TM, j = col + e % TM;
        if (i < P.dk && j < width)
            sout_w[vidx(P.sout, en.state_out_row, hv, i, j)] = uintBitsToFloat(rows[base + e / 4u][e % 4u]);
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

// W's columns w.. of one row, as the f32 U columns they replace in the
// leg products (four f16 values, half a 16-byte piece).
uvec4 w_columns(uint base4, uint row, uint w) {
    uvec4 piece = w4[base4 + (row * DKC + w) / 8u];
    uvec2 pair = (w % 8u) == 0u ? piece.xy : piece.zw;
    return uvec4(floatBitsToUint(unpackHalf2x16(pair.x)), floatBitsToUint(unpackHalf2x16(pair.y)));
}

// The producers' registers: one chunk's W, K^, Q^ and U, loaded from block
// `block`'s pieces and later staged.
const uint U_PIECES = CH * BV / 4u;                        // uvec4 of the columns' U
const uint PU = (U_PIECES + PRODUCERS - 1u) / PRODUCERS;    // of them per producer
const uint PR = (CH + PRODUCERS - 1u) / PRODUCERS;        // rows' factors per producer
uvec4 wpf[PV], kpf[PV], qpf[PV], upf[PU];
float rqf[PR], dgf[PR];

void load_q(uint block, uint p) {
    [[unroll]] for (uint m = 0u; m < PV; ++m)
        qpf[m] = w4[q_scratch(block) + min(p + PRODUCERS * m, PIECES - 1u)];
}

void load_chunk(uint block, uint p) {
    uint base4 = block * w_block_pieces(); // the plan sets SCAN_Y for this scan
    [[unroll]] for (uint m = 0u; m < PV; ++m) {
        uint idx = min(p + PRODUCERS * m, PIECES - 1u);
        wpf[m] = w4[base4 + idx];
        kpf[m] = w4[base4 + PIECES + idx];
        if (Q_STAGED && WITH_Y) qpf[m] = w4[base4 + 2u * PIECES + idx];
    }
    [[unroll]] for (uint m = 0u; m < PU; ++m) { // columns past Dv read as zeros
        uint idx = min(p + PRODUCERS * m, U_PIECES - 1u);
        uint row = idx / (BV / 4u), c = gl_WorkGroupID.x * BV + idx % (BV / 4u) * 4u;
        if (c < P.dvs)
            upf[m] = u4[(P.u_base + (block * CH + row) * P.dvs + c) / 4u];
        else if (LEG_PRODUCTS != 0u && c < P.dvs + DKC)
            upf[m] = w_columns(base4, row, c - P.dvs);
        else
            upf[m] = uvec4(0u);
    }
    [[unroll]] for (uint m = 0u; m < PR && FUSED; ++m) {
        uint fbase = P.f_base + block * f_stride(), r = min(p + PRODUCERS * m, CH - 1u);
        rqf[m] = f_s[fbase + r];
        dgf[m] = f_s[fbase + f_diagonal() + r];
    }
}

void stage_chunk(uint p) {
    [[unroll]] for (uint m = 0u; m < PV; ++m) {
        uint idx = p + PRODUCERS * m;
        if (idx < PIECES) {
            w16[padded(idx)] = wpf[m];
            k16[padded(idx)] = kpf[m];
            if (Q_STAGED && WITH_Y) q16[padded(idx)] = qpf[m];
        }
    }
    [[unroll]] for (uint m = 0u; m < PU; ++m)
        if (p + PRODUCERS * m < U_PIECES) u16[p + PRODUCERS * m] = upf[m];
    [[unroll]] for (uint m = 0u; m < PR && FUSED; ++m) {
        if (p + PRODUCERS * m < CH) {
            rq_sh[p + PRODUCERS * m] = rqf[m];
            dg_sh[p + PRODUCERS * m] = dgf[m];
        }
    }
}

// Q^ where W was (EFLA_CM2, where Q^ is not staged with W and K^).
void stage_q_over_w(uint p) {
    [[unroll]] for (uint m = 0u; m < PV; ++m)
        if (p + PRODUCERS * m < PIECES) w16[padded(p + PRODUCERS * m)] = qpf[m];
}

// Slab s's U tile i (rows i*16.. of the chunk) from the staged U.
void load_u(out CM_ACC u, uint s, uint i) {
    coopMatLoad(u, u16, (i * TM * BV + s * TM) / 4u, BV / 4u, ACC_LAYOUT);
}

#ifdef EFLA_CM2
// The products of operands scaled by sc, unscaled (exactly: a power of two).
void slab_unscale(inout CM_ACC p[VT], inout CM_ACC y[VT], float sc) {
    float inv = 1.0 / sc;
    [[unroll]] for (uint i = 0u; i < VT; ++i) {
        p[i] = p[i] * inv;
        y[i] = y[i] * inv;
    }
}

// One power-of-two scale for the S_c^T tiles of part q's rows.
float slab_scale(CM_ACC st[RTP]) {
    float m = 0.0;
    [[unroll]] for (uint j = 0u; j < RTP; ++j) m = max(m, tile_max(st[j]));
    return pow2_scale(subgroupMax(m));
}

// Part q's sums over its rows of one chunk, scaled by sc: p += (W S_c)^T
// where with_w, y += (Q^ S_c)^T where with_q. S_c^T's tiles are the A
// operands; W^T and Q^^T are read column-major from their rows (Q^ from
// q16 where it is staged beside W, else from w16, staged over W).
void slab_products(CM_ACC st[RTP], inout CM_ACC p[VT], inout CM_ACC y[VT], float sc, uint q,
                   bool with_w, bool with_q) {
    [[unroll]] for (uint j = 0u; j < RTP; ++j) {
        uint r = q * RTP + j;
        CM_A a = CM_A(st[j] * sc);
        [[unroll]] for (uint i = 0u; i < VT; ++i) {
            CM_B b;
            CM_B qb;
            if (with_w) {
                coopMatLoad(b, w16, i * TM * KQ + r * TM / 8u, KQ, COL_MAJOR);
                p[i] = coopMatMulAdd(a, b, p[i]);
            }
            if (with_q) {
                if (Q_STAGED)
                    coopMatLoad(qb, q16, i * TM * KQ + r * TM / 8u, KQ, COL_MAJOR);
                else
                    coopMatLoad(qb, w16, i * TM * KQ + r * TM / 8u, KQ, COL_MAJOR);
                y[i] = coopMatMulAdd(a, qb, y[i]);
            }
        }
    }
}

// Both products' sums over part q's rows, unscaled: (W S_c)^T into p, and
// (Q^ S_c)^T into y where Q^ is staged beside W (else slab_partials_q adds
// them once Q^ is staged over W); sc is the scale of the S_c^T operands.
void slab_partials(CM_ACC st[RTP], out CM_ACC p[VT], out CM_ACC y[VT], out float sc, uint q) {
    sc = slab_scale(st);
    [[unroll]] for (uint i = 0u; i < VT; ++i) {
        p[i] = CM_ACC(0.0);
        y[i] = CM_ACC(0.0);
    }
    slab_products(st, p, y, sc, q, true, Q_STAGED && WITH_Y);
    if (!STAGE_Q_OVER_W) slab_unscale(p, y, sc);
}

void slab_partials_q(CM_ACC st[RTP], inout CM_ACC p[VT], inout CM_ACC y[VT], float sc, uint q) {
    slab_products(st, p, y, sc, q, false, true);
    slab_unscale(p, y, sc);
}

// Where slab s's part q keeps its part of V'^T, and (q > 0) of Y^T.
uint part_rows(uint s, uint q) { return (s * PARTS + q) * SLAB4; }
uint part_y_rows(uint s, uint q) { return (CT * PARTS + s * (PARTS - 1u) + q - 1u) * SLAB4; }

void slab_publish(CM_ACC p[VT], CM_ACC y[VT], uint s, uint q) {
    [[unroll]] for (uint i = 0u; i < VT; ++i) {
        coopMatStore(p[i], rows, part_rows(s, q) + i * TM * TM / 4u, TM / 4u, ACC_LAYOUT);
        if (q > 0u)
            coopMatStore(y[i], rows, part_y_rows(s, q) + i * TM * TM / 4u, TM / 4u, ACC_LAYOUT);
    }
}

// The parts' sums, in the order of the parts whichever part adds them.
void slab_gather(inout CM_ACC p[VT], inout CM_ACC y[VT], uint s, uint q) {
    [[unroll]] for (uint i = 0u; i < VT; ++i) {
        coopMatLoad(p[i], rows, part_rows(s, 0u) + i * TM * TM / 4u, TM / 4u, ACC_LAYOUT);
        for (uint t = 1u; t < PARTS; ++t) {
            CM_ACC x;
            coopMatLoad(x, rows, part_rows(s, t) + i * TM * TM / 4u, TM / 4u, ACC_LAYOUT);
            p[i] = p[i] + x;
            if (q == 0u) {
                coopMatLoad(x, rows, part_y_rows(s, t) + i * TM * TM / 4u, TM / 4u, ACC_LAYOUT);
                y[i] = y[i] + x;
            }
        }
    }
}

// The rest of the chunk (block: its scratch block), p and y unscaled:
// V'^T = U^T - p, its f16 tiles the A operands of S^T += V'^T K^ over the
// part's rows; part 0 writes V' (f16, with each tile's inverse scale in F)
// and Y.
void slab_finish(inout CM_ACC st[RTP], CM_ACC p[VT], CM_ACC y[VT], uint block, uint s, uint q,
                 uint col, out CM_A va[VT], out float vinv) {
    uint fbase = P.f_base + block * f_stride() + 2u * CH;
    uint lane = gl_SubgroupInvocationID, ctg = P.dvs / TM;
    float m = 0.0;
    [[unroll]] for (uint i = 0u; i < VT; ++i) {
        CM_ACC u;
        load_u(u, s, i);
        p[i] = u - p[i];
        m = max(m, tile_max(p[i]));
    }
    float scv = pow2_scale(subgroupMax(m));
    [[unroll]] for (uint i = 0u; i < VT; ++i) {
        va[i] = CM_A(p[i] * scv);
        if (q == 0u && HAND_OUT)
            coopMatStore(CM_ACC16(p[i] * scv), v4, (block * CH * P.dvs + i * TM * P.dvs + col) / 8u,
                         P.dvs / 8u, ACC_LAYOUT);
    }
    vinv = 1.0 / scv;
    [[unroll]] for (uint j = 0u; j < RTP; ++j) {
        uint r = q * RTP + j;
        CM_ACC d = CM_ACC(0.0);
        [[unroll]] for (uint i = 0u; i < VT; ++i) {
            CM_B b;
            coopMatLoad(b, k16, i * TM * KQ + r * TM / 8u, KQ, ROW_MAJOR);
            d = coopMatMulAdd(va[i], b, d);
        }
        st[j] = st[j] + d * vinv;
    }
    if (q == 0u && HAND_OUT) {
        if (lane < VT) f_s[fbase + (RT + lane) * ctg + col / TM] = vinv;
        [[unroll]] for (uint i = 0u; i < VT; ++i)
            coopMatStore(y[i], y_s, P.h_base + block * CH * P.dvs + i * TM * P.dvs + col, P.dvs,
                         ACC_LAYOUT);
    }
}

// FUSED: G^T = mask_{s<=t}(K^ Q^^T) into g16h [s][t] from the staged unit
// rows (|G| <= 1: f16 as it is). Producer subgroup ps of nps forms tiles
// ps, ps + nps, ... of those on and above the diagonal; the diagonal ones
// lose their lower part through shared memory and take the diagonal the
// prepare formed from the exact rows.
void form_g(uint ps, uint nps) {
    const uint NB = CH / TM;
    for (uint tile = ps; tile < NB * NB; tile += nps) {
        uint si = tile / NB, ti = tile % NB;
        if (si > ti) continue;
        CM_ACC acc = CM_ACC(0.0);
        [[unroll]] for (uint k = 0u; k < RT; ++k) {
            CM_A a;
            CM_B b;
            coopMatLoad(a, k16, si * TM * KQ + k * TM / 8u, KQ, ROW_MAJOR);
            if (Q_STAGED)
                coopMatLoad(b, q16, ti * TM * KQ + k * TM / 8u, KQ, COL_MAJOR);
            else
                coopMatLoad(b, w16, ti * TM * KQ + k * TM / 8u, KQ, COL_MAJOR);
            acc = coopMatMulAdd(a, b, acc);
        }
        coopMatStore(CM_ACC16(acc), g16h, si * TM * GP + ti * TM, GP, ROW_MAJOR);
        if (si < ti) continue;
        subgroup_sync();
        for (uint e = gl_SubgroupInvocationID; e < TM * TM; e += gl_SubgroupSize) {
            uint s = e / TM, t = e % TM;
            if (s >= t)
                g16h[(si * TM + s) * GP + ti * TM + t] =
                    float16_t(s == t ? dg_sh[si * TM + s] : 0.0);
        }
    }
}

// FUSED: O^T = diag(qfac |q|) (Y^T + V'^T G^T) for the slab's columns col..,
// through the subgroup's rows (base) a 16-token tile at a time, to
// out[b, tok0 + t, hv, col + j] as 16-bit pairs (the plan makes sure every
// pair is a whole word of the output).
void slab_output(CM_A va[VT], CM_ACC y[VT], float vinv, Entry en, uint ck, uint hv, uint base,
                 uint col) {
    uint tok0 = en.first + ck * CH, count = min(CH, en.count - ck * CH);
    [[unroll]] for (uint ti = 0u; ti < VT; ++ti) {
        CM_ACC d = CM_ACC(0.0);
        [[unroll]] for (uint si = 0u; si <= ti; ++si) {
            CM_B g;
            coopMatLoad(g, g16h, si * TM * GP + ti * TM, GP, ROW_MAJOR);
            d = coopMatMulAdd(va[si], g, d);
        }
        coopMatStore(y[ti] + d * vinv, rows, base, TM / 4u, ACC_LAYOUT); // [t][j] f32
        subgroup_sync();
        for (uint e = gl_SubgroupInvocationID; e < TM * TM / 2u; e += gl_SubgroupSize) {
            uint t = ti * TM + e / (TM / 2u), j = 2u * (e % (TM / 2u)), f = (e / (TM / 2u)) * TM + j;
            if (t >= count || col + j >= P.dv) continue;
            uvec4 piece = rows[base + f / 4u];
            vec2 x = uintBitsToFloat(f % 4u == 0u ? piece.xy : piece.zw) * rq_sh[t];
            o_w[vidx(P.o, en.batch_row, tok0 + t, hv, col + j) >> 1] =
                encode16(x.x) | (encode16(x.y) << 16);
        }
        subgroup_sync();
    }
}
#else
// One chunk of slab s (block: the chunk's scratch block).
void slab_chunk(inout CM_ACC st[RT], uint block, uint s, uint base, uint col) {
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
                if (!WITH_Y) continue;
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
        CM_ACC u;
        load_u(u, s, i);
        p[i] = u - p[i] * inv;
        m = max(m, tile_max(p[i]));
    }
    float scv = pow2_scale(subgroupMax(m));
    [[unroll]] for (uint i = 0u; i < VT; ++i)
        coopMatStore(CM_ACC16(p[i] * scv), rows, base + i * TM * RQ, RQ, ROW_MAJOR);
    if (lane < VT && HAND_OUT) f_s[fbase + (RT + lane) * ctg + col / TM] = 1.0 / scv;
    subgroup_sync();
    if (HAND_OUT) copy_v(base, (block * CH * P.dvs + col) / 8u);

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
    [[unroll]] for (uint i = 0u; i < VT && HAND_OUT; ++i)
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
    bool producer = gl_SubgroupID >= CT * PARTS;
    uint p = (gl_SubgroupID - CT * PARTS) * gl_SubgroupSize + gl_SubgroupInvocationID; // producers
    uint s = gl_SubgroupID / PARTS, q = gl_SubgroupID % PARTS; // computing: slab and part
    uint col = gl_WorkGroupID.x * BV + s * TM; // computing: the slab's first column
    // past Dv (past W's columns in the leg products) a subgroup idles
    bool owns_slab = !producer && col < P.dvs + (LEG_PRODUCTS != 0u ? DKC : 0u);
    uint base = gl_SubgroupID * SLAB4;

    CM_ACC st[RTP];
    [[unroll]] for (uint j = 0u; j < RTP; ++j) {
        st[j] = CM_ACC(0.0);
        if (owns_slab) state_tile_in(st[j], en, hv, base, (q * RTP + j) * TM, col);
    }
    if (chunks > 0u && producer) {
        uint block = en.chunk_base * P.hv_count + hvl;
        load_chunk(block, p);
        if (STAGE_Q_OVER_W) load_q(block, p);
    }
    for (uint ck = 0u; ck < chunks; ++ck) {
        uint block = (en.chunk_base + ck) * P.hv_count + hvl;
        bool next = ck + 1u < chunks;
        barrier(); // every subgroup is done with the last chunk's W, K^, Q^ (and parts)
        if (producer) stage_chunk(p);
        barrier();
        if (producer && next) load_chunk(block + P.hv_count, p);
#ifdef EFLA_CM2
        CM_ACC vp[VT];
        CM_ACC y[VT];
        float sc;
        if (owns_slab) slab_partials(st, vp, y, sc, q);
        if (STAGE_Q_OVER_W) {
            barrier(); // the W products are done: Q^ goes where W was
            if (producer) stage_q_over_w(p);
            barrier();
            if (producer && next) load_q(block + P.hv_count, p);
            if (owns_slab) slab_partials_q(st, vp, y, sc, q);
        }
        if (PARTS > 1u) {
            if (owns_slab) slab_publish(vp, y, s, q);
            barrier();
            if (owns_slab) slab_gather(vp, y, s, q);
        }
        CM_A va[VT];
        float vinv;
        if (owns_slab) slab_finish(st, vp, y, block, s, q, col, va, vinv);
        if (FUSED) {
            if (producer) form_g(gl_SubgroupID - CT * PARTS, gl_NumSubgroups - CT * PARTS);
            barrier(); // G^T is formed
            if (owns_slab) slab_output(va, y, vinv, en, ck, hv, base, col);
        }
#else
        if (owns_slab) slab_chunk(st, block, s, base, col);
#endif
    }
    if (PARTS > 1u) barrier(); // the parts are done with each other's rows
    if (owns_slab && (en.flags & ENTRY_WRITE_STATE) != 0u)
        [[unroll]] for (uint j = 0u; j < RTP; ++j)
            state_tile_out(st[j], en, hv, base, (q * RTP + j) * TM, col);
}
