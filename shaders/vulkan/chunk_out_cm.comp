#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_EXT_control_flow_attributes : require
// The output kernel of the split chunked forward on cooperative matrices
// (see chunk_out.comp for the portable one). One workgroup per (chunk, value
// head); the state-free product is formed once per chunk and every Dv tile
// of BV columns reuses it:
//   G = mask_{s<=t}(Q^ K^^T)         (unit rows q/|q| and k/|k|)
//   O = diag(qfac |q|) (Q^ H + G V')
// with H (the state before the chunk) and V' as chunk_scan_cm stored them:
// f16 16 x 16 tiles, each scaled by a power of two whose inverse is in F.
// Their tiles are read straight from the scratch as B operands, and each
// product takes its tile's scale in f32. After chunk_scan_slab_cm (SCAN_Y)
// the scratch holds Y = Q^ H (f32) instead, which starts the accumulators. G is formed from the stored rows,
// each scaled by a power of two into f16 range (exact: 16-bit storage has
// no more significant bits than f16), and takes the factors 1/|q| and
// 1/|k| in f32 before its one rounding to f16; unit rows rounded first
// would err by ~2^-12 / |cos(q, k)| where q and k are nearly orthogonal.
// The row factors of O are applied in f32 after the products. Requires
// DKC, CH and BV multiples of 16, and WG a multiple of CH and of 16, at
// most 16 CH (the shared memory does not grow with WG). Shared
// rows are padded by 16 bytes (QP, KW, OP, GP) so that the eight rows a
// cooperative-matrix load reads together fall on different bank groups.
#include "efla_common.glsl"
#include "efla_entry.glsl"
#include "efla_coopmat.glsl"

// V' and H (f16, eight to a uvec4: offsets and strides count uvec4s).
layout(std430, set = 0, binding = 11) readonly buffer VTileBuf { uvec4 v4[]; };
layout(std430, set = 0, binding = 12) readonly buffer FBuf { float f_s[]; };
layout(std430, set = 0, binding = 13) readonly buffer HBuf { uvec4 h4[]; };
layout(std430, set = 0, binding = 13) readonly buffer YBuf { float y_s[]; }; // Y = Q^ S_c (SCAN_Y)

const uint RPT = WG / CH;                 // invocations per row for the q norms
const uint RT = DKC / TM;                 // row tiles of H
const uint ROW_PAIRS = (DKC / 2u + RPT - 1u) / RPT; // pairs of a Q or K row per invocation
const uint QP = DKC + 8u;                 // q16 row pitch (f16)
const uint KW = DKC / 2u + 4u;            // K row pitch in xk (f16 pairs)
const uint OP = BV + 4u;                  // output tile row pitch in xk (f32)
const uint GP = CH + 8u;                  // g16 row pitch (f16)
const uint XK = CH * KW > CH * OP ? CH * KW : CH * OP;
const uint SCORERS = 4u;                  // subgroups that form G (one f32 tile each)
const uint SCRATCH = SCORERS * TM * TM;   // G's f32 tiles

shared float16_t q16[CH * QP]; // Q scaled per row, then Q^ [CH][QP]
// K scaled per row (f16 pairs) [CH][KW], then the output tile [CH][OP] (f32 bits).
shared uint xk[XK];
shared float16_t g16[CH * GP];    // masked Q^ K^^T [CH][GP]
shared float scratch_sh[SCRATCH]; // masked_scores' tiles
shared float rq_sh[CH]; // qfac |q|
shared float rf_sh[CH]; // 1 / (|q| qs): G's row factor, and Q^ from q16
shared float cf_sh[CH]; // kfac / ks: G's column factor

#define O_STAGE(i) uintBitsToFloat(xk[(i) / BV * OP + (i) % BV])
#include "efla_out_store.glsl"

// Q and K into q16 and xk, each row scaled by a power of two that puts its
// largest element in [2^13, 2^14) (exact); the row factors. Rows past the
// end are zero. RPT invocations share a row and read it once: pairs
// part, part + RPT, ... of it stay in registers while the row's norm and
// largest elements are reduced over those invocations.
void stage_rows(uint b, uint tok0, uint h, uint rows, uint fbase) {
    uint t = gl_LocalInvocationIndex, row = t / RPT, part = t % RPT;
    // Unconditional loads of clamped indices, zeroed afterwards by selects
    // (no load waits behind a branch; no NaN from a clamped copy).
    uint qrow = vidx(P.q, b, tok0 + min(row, rows - 1u), h, 0u);
    uint krow = vidx(P.k, b, tok0 + min(row, rows - 1u), h, 0u);
    vec4 qk[ROW_PAIRS]; // q(i), q(i + 1), k(i), k(i + 1) for i = 2 (part + RPT m)
    float qq = 0.0, qmax = 0.0, kmax = 0.0;
    for (uint m = 0u; m < ROW_PAIRS; ++m) {
        uint i = 2u * (part + RPT * m), i0 = min(i, P.dk - 1u), i1 = min(i + 1u, P.dk - 1u);
        vec4 x = vec4(load_q(qrow + i0 * P.q.s3), load_q(qrow + i1 * P.q.s3),
                      load_k(krow + i0 * P.k.s3), load_k(krow + i1 * P.k.s3));
        bool in0 = row < rows && i < P.dk, in1 = in0 && i + 1u < P.dk;
        qk[m] = mix(vec4(0.0), x, bvec4(in0, in1, in0, in1));
        qq += qk[m].x * qk[m].x + qk[m].y * qk[m].y;
        qmax = max(qmax, max(abs(qk[m].x), abs(qk[m].y)));
        kmax = max(kmax, max(abs(qk[m].z), abs(qk[m].w)));
    }
    for (uint lanes = RPT / 2u; lanes > 0u; lanes /= 2u) { // the row's RPT lanes, in its subgroup
        qq += subgroupShuffleXor(qq, lanes);
        qmax = max(qmax, subgroupShuffleXor(qmax, lanes));
        kmax = max(kmax, subgroupShuffleXor(kmax, lanes));
    }
    float norm = sqrt(qq), qs = pow2_scale(qmax), ks = pow2_scale(kmax);
    if (part == 0u) {
        rq_sh[row] = f_s[fbase + row]; // qfac |q|, from the prepare
        rf_sh[row] = norm > 0.0 ? 1.0 / (norm * qs) : 0.0;
        cf_sh[row] = f_s[fbase + CH + row] / ks;
    }
    for (uint m = 0u; m < ROW_PAIRS; ++m) {
        uint i = 2u * (part + RPT * m);
        if (i >= DKC) continue; // the last pairs of wide rows (DKC / 2 not a multiple of RPT)
        q16[row * QP + i] = float16_t(qk[m].x * qs);
        q16[row * QP + i + 1u] = float16_t(qk[m].y * qs);
        xk[row * KW + i / 2u] = packFloat2x16(f16vec2(qk[m].zw * ks));
    }
}

// g16 = mask(Q^ K^^T): the product of the scaled rows on and below the
// diagonal tiles, through the subgroup's f32 tile in scratch_sh (the first
// SCORERS subgroups), where each element takes its row and column factors
// and the causal mask; then q16 becomes Q^ (the scaled rows times their
// factor, one rounding).
void masked_scores() {
    const uint tiles = CH / TM;
    uint bounce = gl_SubgroupID * TM * TM, scorers = min(gl_NumSubgroups, SCORERS);
    for (uint tile = gl_SubgroupID; tile < tiles * tiles && gl_SubgroupID < scorers; tile += scorers) {
        uint r0 = (tile / tiles) * TM, c0 = (tile % tiles) * TM;
        if (c0 > r0) {
            coopMatStore(CM_ACC16(0.0), g16, r0 * GP + c0, GP, ROW_MAJOR);
            continue;
        }
        CM_ACC acc = CM_ACC(0.0);
        for (uint k0 = 0u; k0 < DKC; k0 += TM) {
            CM_A a;
            CM_B bm;
            coopMatLoad(a, q16, r0 * QP + k0, QP, ROW_MAJOR);
            coopMatLoad(bm, xk, c0 * KW + k0 / 2u, KW, COL_MAJOR);
            acc = coopMatMulAdd(a, bm, acc);
        }
        coopMatStore(acc, scratch_sh, bounce, TM, ROW_MAJOR);
        subgroup_sync();
        for (uint e = gl_SubgroupInvocationID; e < TM * TM; e += gl_SubgroupSize) {
            uint r = r0 + e / TM, c = c0 + e % TM;
            float g = c <= r ? scratch_sh[bounce + e] * rf_sh[r] * cf_sh[c] : 0.0;
            g16[r * GP + c] = float16_t(g);
        }
        subgroup_sync();
    }
    barrier();
    if (SCAN_Y == 1u) return; // Y already holds Q^ S_c
    for (uint e = gl_LocalInvocationIndex; e < CH * DKC; e += WG) {
        uint at = (e / DKC) * QP + e % DKC;
        q16[at] = float16_t(float(q16[at]) * rf_sh[e / DKC]);
    }
}

// The output tile [CH][BV] (xk, f32) of columns col0..: Q^ H + G V', each
// 16 x 16 product of an H or V' tile times that tile's inverse scale.
void tile_products(uint block, uint fbase, uint col0) {
    const uint tiles_c = BV / TM;
    uint ctg = P.dvs / TM; // column tiles of H and V' in the scratch
    uint hbase = block * DKC * P.dvs, vbase = block * CH * P.dvs;
    for (uint tile = gl_SubgroupID; tile < (CH / TM) * tiles_c; tile += gl_NumSubgroups) {
        uint r0 = (tile / tiles_c) * TM, c0 = (tile % tiles_c) * TM;
        uint col = col0 + c0, ct = col / TM;
        CM_ACC o = CM_ACC(0.0);
        if (col < P.dvs && SCAN_Y == 1u) {
            coopMatLoad(o, y_s, P.h_base + block * CH * P.dvs + r0 * P.dvs + col, P.dvs, ROW_MAJOR);
        } else if (col < P.dvs) {
            [[unroll]] for (uint r = 0u; r < RT; ++r) {
                CM_A a;
                CM_B bm;
                coopMatLoad(a, q16, r0 * QP + r * TM, QP, ROW_MAJOR);
                coopMatLoad(bm, h4, (hbase + r * TM * P.dvs + col) / 8u, P.dvs / 8u, ROW_MAJOR);
                o = o + coopMatMulAdd(a, bm, CM_ACC(0.0)) * f_s[fbase + 2u * CH + r * ctg + ct];
            }
        }
        if (col < P.dvs) {
            [[unroll]] for (uint k0 = 0u; k0 < CH; k0 += TM) {
                if (k0 > r0) break;
                CM_A a;
                CM_B bm;
                coopMatLoad(a, g16, r0 * GP + k0, GP, ROW_MAJOR);
                coopMatLoad(bm, v4, (vbase + k0 * P.dvs + col) / 8u, P.dvs / 8u, ROW_MAJOR);
                o = o + coopMatMulAdd(a, bm, CM_ACC(0.0)) *
                            f_s[fbase + 2u * CH + (RT + k0 / TM) * ctg + ct];
            }
        }
        coopMatStore(o, xk, r0 * OP + c0, OP, ROW_MAJOR);
    }
}

void main() {
    uint chunk = pc.chunk_base + gl_WorkGroupID.x;
    uint hvl = gl_WorkGroupID.y;
    uint hv = P.hv_base + hvl;
    uint h = hv / P.group;
    Entry en = entries[find_entry(chunk)];
    uint local_chunk = chunk - en.chunk_base;
    uint tok0 = en.first + local_chunk * CH;
    uint rows = min(CH, en.count - local_chunk * CH);
    uint b = en.batch_row;
    uint block = chunk * P.hv_count + hvl;

    uint fbase = P.f_base + block * f_stride();
    stage_rows(b, tok0, h, rows, fbase);
    barrier();
    masked_scores();
    barrier();
    for (uint col0 = 0u; col0 < P.dv; col0 += BV) {
        uint ncol = min(BV, P.dv - col0);
        tile_products(block, fbase, col0);
        barrier();
        for (uint e = gl_LocalInvocationIndex; e < CH * BV; e += WG) {
            uint at = (e / BV) * OP + e % BV;
            xk[at] = floatBitsToUint(uintBitsToFloat(xk[at]) * rq_sh[e / BV]);
        }
        barrier();
        store_output_rows(b, tok0, hv, col0, rows, ncol);
        barrier();
    }
}
