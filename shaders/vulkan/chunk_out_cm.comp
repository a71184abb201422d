#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
// The output kernel of the split chunked forward on cooperative matrices
// (see chunk_out.comp for the portable one). One workgroup per (chunk, value
// head); the state-free product is formed once per chunk and every Dv tile
// of BV columns reuses it:
//   G = mask_{s<=t}(Q^ K^^T)         (unit rows q/|q| and k/|k|)
//   O = diag(qfac |q|) (Q^ H + G V') (H and V' scaled to f16 per tile)
// with H (the state before the chunk) and V' from chunk_scan_cm. G is
// formed from the stored rows, each scaled by a power of two into f16
// range (exact: 16-bit storage has no more significant bits than f16), and
// takes the factors 1/|q| and 1/|k| in f32 before its one rounding to f16;
// unit rows rounded first would err by ~2^-12 / |cos(q, k)| where q and k
// are nearly orthogonal. The row factors of O are applied in f32 after
// the products. Requires DKC, CH and BV multiples of 16, and WG a multiple
// of CH and of 16.
#include "efla_common.glsl"
#include "efla_entry.glsl"
#include "efla_coopmat.glsl"

layout(std430, set = 0, binding = 10) readonly buffer UBuf { float u_s[]; };
layout(std430, set = 0, binding = 12) readonly buffer FBuf { float f_s[]; };
layout(std430, set = 0, binding = 13) readonly buffer HBuf { float h_s[]; };

const uint RPT = WG / CH;          // invocations per row for the q norms
const uint HPT = DKC * BV / WG;    // H elements per invocation and tile
const uint VPT = (CH * BV + WG - 1u) / WG; // V' elements per invocation and tile
const uint V16 = DKC * BV;         // where V' starts in x16
const uint X16 = CH * DKC > V16 + CH * BV ? CH * DKC : V16 + CH * BV;

const uint BOUNCE = (WG / 32u) * TM * TM; // one f32 tile per subgroup (masked_scores)

shared float16_t q16[CH * DKC]; // Q scaled per row, then Q^
shared float16_t x16[X16];      // K scaled per row, then per tile H (DKC x BV) and V' (CH x BV)
shared float16_t g16[CH * CH];  // masked Q^ K^^T
shared float o_stage[CH * BV > BOUNCE ? CH * BV : BOUNCE]; // also masked_scores' tiles
shared float part_sh[3u * WG];
shared float rq_sh[CH]; // qfac |q|
shared float qs_sh[CH]; // the power of two that scales q's row
shared float ks_sh[CH]; // the power of two that scales k's row
shared float rf_sh[CH]; // 1 / (|q| qs): G's row factor, and Q^ from q16
shared float cf_sh[CH]; // kfac / ks: G's column factor

#include "efla_out_store.glsl"

// Q and K into q16 and x16, each row scaled by a power of two that puts its
// largest element in [2^13, 2^14) (exact); the row factors. Rows past the
// end are zero. The loop bounds are constants, so every group of loads is
// in flight before the first of them is used.
void stage_rows(uint b, uint tok0, uint h, uint rows, uint fbase) {
    uint t = gl_LocalInvocationIndex;
    uint row = t / RPT, part = t % RPT;
    float qq = 0.0, qmax = 0.0, kmax = 0.0;
    // Unconditional loads of clamped indices, zeroed afterwards (no load
    // waits behind a branch for the one before it).
    uint qrow = vidx(P.q, b, tok0 + min(row, rows - 1u), h, 0u);
    uint krow = vidx(P.k, b, tok0 + min(row, rows - 1u), h, 0u);
    for (uint m = 0u; m < DKC / RPT; ++m) {
        uint i = part + RPT * m, ic = min(i, P.dk - 1u);
        float qv = load_q(qrow + ic * P.q.s3), kv = load_k(krow + ic * P.k.s3);
        bool keep = row < rows && i < P.dk; // selects, not products: no NaN from a clamped copy
        qv = keep ? qv : 0.0;
        kv = keep ? kv : 0.0;
        qq += qv * qv;
        qmax = max(qmax, abs(qv));
        kmax = max(kmax, abs(kv));
    }
    part_sh[t] = qq;
    part_sh[WG + t] = qmax;
    part_sh[2u * WG + t] = kmax;
    barrier();
    if (t < CH) {
        qq = 0.0;
        qmax = 0.0;
        kmax = 0.0;
        for (uint r = 0u; r < RPT; ++r) {
            qq += part_sh[t * RPT + r];
            qmax = max(qmax, part_sh[WG + t * RPT + r]);
            kmax = max(kmax, part_sh[2u * WG + t * RPT + r]);
        }
        float norm = sqrt(qq), qs = pow2_scale(qmax), ks = pow2_scale(kmax);
        rq_sh[t] = f_s[fbase + t] * norm;
        qs_sh[t] = qs;
        ks_sh[t] = ks;
        rf_sh[t] = norm > 0.0 ? 1.0 / (norm * qs) : 0.0;
        cf_sh[t] = f_s[fbase + CH + t] / ks;
    }
    barrier();
    const uint PER = CH * DKC / WG, GROUP = PER < 8u ? PER : 8u;
    for (uint m0 = 0u; m0 < PER; m0 += GROUP) {
        vec2 qk[GROUP];
        for (uint m = 0u; m < GROUP; ++m) {
            uint e = t + WG * (m0 + m), c = e / DKC, i = e % DKC;
            uint cc = min(c, rows - 1u), ic = min(i, P.dk - 1u);
            qk[m] = vec2(load_q(vidx(P.q, b, tok0 + cc, h, ic)),
                         load_k(vidx(P.k, b, tok0 + cc, h, ic)));
            // PER need not be a multiple of 8
            qk[m] = c < rows && i < P.dk && m0 + m < PER ? qk[m] : vec2(0.0);
        }
        for (uint m = 0u; m < GROUP && m0 + m < PER; ++m) {
            uint e = t + WG * (m0 + m), c = e / DKC;
            q16[e] = float16_t(qk[m].x * qs_sh[c]);
            x16[e] = float16_t(qk[m].y * ks_sh[c]);
        }
    }
}

// g16 = mask(Q^ K^^T): the product of the scaled rows on and below the
// diagonal tiles, through the subgroup's f32 tile in o_stage, where each
// element takes its row and column factors and the causal mask; then q16
// becomes Q^ (the scaled rows times their factor, one rounding).
void masked_scores() {
    const uint tiles = CH / TM;
    uint bounce = gl_SubgroupID * TM * TM;
    for (uint tile = gl_SubgroupID; tile < tiles * tiles; tile += gl_NumSubgroups) {
        uint r0 = (tile / tiles) * TM, c0 = (tile % tiles) * TM;
        if (c0 > r0) {
            coopMatStore(CM_ACC16(0.0), g16, r0 * CH + c0, CH, ROW_MAJOR);
            continue;
        }
        CM_ACC acc = CM_ACC(0.0);
        for (uint k0 = 0u; k0 < DKC; k0 += TM) {
            CM_A a;
            CM_B bm;
            coopMatLoad(a, q16, r0 * DKC + k0, DKC, ROW_MAJOR);
            coopMatLoad(bm, x16, c0 * DKC + k0, DKC, COL_MAJOR);
            acc = coopMatMulAdd(a, bm, acc);
        }
        coopMatStore(acc, o_stage, bounce, TM, ROW_MAJOR);
        subgroupMemoryBarrierShared();
        subgroupBarrier();
        for (uint e = gl_SubgroupInvocationID; e < TM * TM; e += gl_SubgroupSize) {
            uint r = r0 + e / TM, c = c0 + e % TM;
            float g = c <= r ? o_stage[bounce + e] * rf_sh[r] * cf_sh[c] : 0.0;
            g16[r * CH + c] = float16_t(g);
        }
        subgroupMemoryBarrierShared();
        subgroupBarrier();
    }
    barrier();
    for (uint e = gl_LocalInvocationIndex; e < CH * DKC; e += WG)
        q16[e] = float16_t(float(q16[e]) * rf_sh[e / DKC]);
}

// H and V' of one Dv tile into x16, each scaled to f16; returns the scales.
vec2 stage_tile(uint hbase, uint ubase, uint rows, uint col0, uint ncol) {
    uint t = gl_LocalInvocationIndex;
    float hv[HPT], vv[VPT];
    float hmax = 0.0, vmax = 0.0;
    for (uint m = 0u; m < HPT; ++m) {
        uint e = t + WG * m, i = e / BV, jj = e % BV;
        hv[m] = h_s[hbase + i * P.dvs + col0 + min(jj, ncol - 1u)];
        hv[m] = jj < ncol ? hv[m] : 0.0;
        hmax = max(hmax, abs(hv[m]));
    }
    for (uint m = 0u; m < VPT; ++m) {
        uint e = t + WG * m, c = e / BV, jj = e % BV;
        vv[m] = u_s[ubase + min(c, rows - 1u) * P.dvs + col0 + min(jj, ncol - 1u)];
        vv[m] = e < CH * BV && c < rows && jj < ncol ? vv[m] : 0.0;
        vmax = max(vmax, abs(vv[m]));
    }
    vec2 scale = vec2(workgroup_scale(hmax), workgroup_scale(vmax));
    for (uint m = 0u; m < HPT; ++m) x16[t + WG * m] = float16_t(hv[m] * scale.x);
    for (uint m = 0u; m < VPT; ++m)
        if (t + WG * m < CH * BV) x16[V16 + t + WG * m] = float16_t(vv[m] * scale.y);
    return scale;
}

// o_stage = Q^ H / h_scale + G V' / v_scale for one Dv tile.
void tile_products(vec2 scale) {
    const uint tiles_c = BV / TM;
    vec2 inv = 1.0 / scale;
    for (uint tile = gl_SubgroupID; tile < (CH / TM) * tiles_c; tile += gl_NumSubgroups) {
        uint r0 = (tile / tiles_c) * TM, c0 = (tile % tiles_c) * TM;
        CM_ACC qh = CM_ACC(0.0);
        CM_ACC gv = CM_ACC(0.0);
        for (uint k0 = 0u; k0 < DKC; k0 += TM) {
            CM_A a;
            CM_B bm;
            coopMatLoad(a, q16, r0 * DKC + k0, DKC, ROW_MAJOR);
            coopMatLoad(bm, x16, k0 * BV + c0, BV, ROW_MAJOR);
            qh = coopMatMulAdd(a, bm, qh);
        }
        for (uint k0 = 0u; k0 <= r0; k0 += TM) {
            CM_A a;
            CM_B bm;
            coopMatLoad(a, g16, r0 * CH + k0, CH, ROW_MAJOR);
            coopMatLoad(bm, x16, V16 + k0 * BV + c0, BV, ROW_MAJOR);
            gv = coopMatMulAdd(a, bm, gv);
        }
        CM_ACC o = qh * inv.x + gv * inv.y;
        coopMatStore(o, o_stage, r0 * BV + c0, BV, ROW_MAJOR);
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

    stage_rows(b, tok0, h, rows, P.f_base + block * 2u * CH);
    barrier();
    masked_scores();
    barrier();
    for (uint col0 = 0u; col0 < P.dv; col0 += BV) {
        uint ncol = min(BV, P.dv - col0);
        vec2 scale = stage_tile(P.h_base + block * DKC * P.dvs, P.u_base + block * CH * P.dvs,
                                rows, col0, ncol);
        barrier();
        tile_products(scale);
        barrier();
        for (uint e = gl_LocalInvocationIndex; e < CH * BV; e += WG) o_stage[e] *= rq_sh[e / BV];
        barrier();
        store_output_rows(b, tok0, hv, col0, rows, ncol);
        barrier();
    }
}
