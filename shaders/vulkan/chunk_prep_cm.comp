#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_KHR_shader_subgroup_shuffle : require
#extension GL_EXT_control_flow_attributes : require
// The state-free part of the chunked forward on cooperative matrices (see
// chunk_prep.comp for the portable one), one workgroup per (chunk, value
// head). Unit keys K^ = kfac K (f16, bounded); L = StrictLower(diag(e)
// K^ K^^T) from f16 products accumulated in f32; (I + L)^-1 by the blocked
// f32 solve (16 x 16 diagonal blocks by forward substitution, one invocation
// per column, then the block rows merged by every invocation);
//   W = (I + L)^-1 diag(e) K^      (f16 operands, bounded)
//   U = (I + L)^-1 (diag(g) V)     (g V scaled per 16-column panel)
// Scratch per (chunk, head): W then K^ as f16 [CH][DKC] each (region W,
// for the scan; with SCAN_Y the unit queries Q^ = q / |q| after them), U
// f32 [CH][dvs], and qfac |q|, kfac [2][CH] at the start of region F
// (f_stride(); chunk_out_cm reads them). Rows past the
// sequence end are zero. Requires CH and DKC multiples of 16, CH <= WG <=
// 16 CH, subgroups of 32 or 64 invocations. Any such WG: the shared memory
// does not grow with it (the driver may hold one 48 KB workgroup per
// compute unit, so more invocations per workgroup is how more of them run).
//
// Shared rows are padded (KP, PP, AP, WP: 16 bytes past a whole number of
// 32-byte pieces): the eight 16-byte rows that a cooperative-matrix load
// reads together then fall on eight different bank groups. Unpadded, rows of
// 128 or 256 bytes put all eight on the same banks.
#include "efla_common.glsl"
#include "efla_entry.glsl"
#include "efla_coopmat.glsl"

layout(std430, set = 0, binding = 9) writeonly buffer WBuf { uint w_s[]; }; // f16 pairs
layout(std430, set = 0, binding = 10) writeonly buffer UBuf { float u_s[]; };
layout(std430, set = 0, binding = 12) writeonly buffer FBuf { float f_s[]; };

const uint NB = CH / TM;                      // diagonal blocks of the solve
const uint DT = DKC / TM;                     // column tiles of W
const uint KP = DKC + 8u;                     // K^ row pitch (f16)
const uint PP = TM + 8u;                      // g V panel row pitch (f16)
const uint LP = CH + 4u;                      // L row pitch (f32)
const uint AP = CH + 8u;                      // a16 row pitch (f16)
const uint PANEL = CH * PP;                   // one subgroup's g V panel (f16)
const uint KV = CH * KP > 4u * PANEL ? CH * KP : 4u * PANEL; // K^, or the panels
const uint PANELS_KV = KV / PANEL;            // g V panels in kv16 (at least 4)
const uint PANELS_L = CH * LP / (PANEL / 2u); // and in l_sh (f16 pairs), free by then
const uint PANELS = PANELS_KV + PANELS_L;     // panels at a time
const uint RP = TM * (NB - 1u) + 1u;          // pitch of one merged block row
const uint RPT = WG / CH;                     // invocations per row of the norms
const uint ROW_PAIRS = (DKC / 2u + RPT - 1u) / RPT; // pairs of a K or Q row per invocation
const uint VPL = CH * TM / 32u;               // g V values per lane of a panel (at most)

shared float16_t kv16[KV];     // K^ rows [CH][KP]; then per-subgroup panels of g V [CH][PP]
shared float l_sh[CH * LP];    // L, then (I + L)^-1 [CH][LP]; then more g V panels
shared float16_t a16[CH * AP]; // (I + L)^-1 diag(e), then (I + L)^-1 [CH][AP]
shared float row_sh[(TM * RP + 3u) / 4u * 4u]; // the merge's block row (whole 16 bytes)
shared float e_sh[CH];
shared float g_sh[CH];

// One read of the chunk's K and Q rows (RPT invocations per row, each with
// pairs part, part + RPT, ... of it in registers): the row coefficients,
// qfac and kfac to the scratch, and K^ = kfac K into kv16 and to the
// scratch (after W) as f16 pairs. Loads are unconditional, of indices
// clamped into the tensor, their values zeroed afterwards by selects: a
// load under a branch cannot be issued before the previous one has
// returned, and the kernel was latency-bound on exactly that.
void rows_and_keys(uint b, uint tok0, uint h, uint hv, uint rows, uint fbase, uint wword) {
    uint t = gl_LocalInvocationIndex, r = t / RPT, part = t % RPT;
    uint krow = vidx(P.k, b, tok0 + min(r, rows - 1u), h, 0u);
    uint qrow = vidx(P.q, b, tok0 + min(r, rows - 1u), h, 0u);
    vec4 kq[ROW_PAIRS]; // k(i), k(i + 1), q(i), q(i + 1)
    float kk = 0.0, qq = 0.0, qk = 0.0;
    for (uint m = 0u; m < ROW_PAIRS; ++m) {
        uint i = 2u * (part + RPT * m), i0 = min(i, P.dk - 1u), i1 = min(i + 1u, P.dk - 1u);
        vec4 x = vec4(load_k(krow + i0 * P.k.s3), load_k(krow + i1 * P.k.s3),
                      load_q(qrow + i0 * P.q.s3), load_q(qrow + i1 * P.q.s3));
        bool in0 = r < rows && i < P.dk, in1 = in0 && i + 1u < P.dk;
        x = mix(vec4(0.0), x, bvec4(in0, in1, in0, in1));
        kq[m] = x;
        kk += x.x * x.x + x.y * x.y;
        qq += x.z * x.z + x.w * x.w;
        qk += x.x * x.z + x.y * x.w;
    }
    for (uint lanes = RPT / 2u; lanes > 0u; lanes /= 2u) { // the row's RPT lanes, in its subgroup
        kk += subgroupShuffleXor(kk, lanes);
        qq += subgroupShuffleXor(qq, lanes);
        qk += subgroupShuffleXor(qk, lanes);
    }
    float kfac = 0.0, qfac = 0.0, e = 0.0, g = 0.0;
    if (r < rows) {
        float beta = load_beta(vidx(P.beta, b, tok0 + r, hv, 0u));
        step_coefficients(kk, qq, beta, kfac, qfac, e, g);
    }
    float qinv = qq > 0.0 ? 1.0 / sqrt(qq) : 0.0;
    if (part == 0u) {
        e_sh[r] = e;
        g_sh[r] = g;
        f_s[fbase + r] = qfac * sqrt(qq); // O's row factor (Q^ is a unit row)
        f_s[fbase + CH + r] = kfac;
        // G's diagonal from the exact rows: q^ and k^ rounded to f16 first
        // would err by ~2^-12 / |cos(q, k)| where a token's q and k are
        // nearly orthogonal (and a sequence's first output is that term alone).
        f_s[fbase + f_diagonal() + r] = qk * qinv * kfac;
    }
    for (uint m = 0u; m < ROW_PAIRS; ++m) {
        uint i = 2u * (part + RPT * m);
        if (i >= DKC) continue; // the last pairs of wide rows (DKC / 2 not a multiple of RPT)
        f16vec2 h16 = f16vec2(kq[m].xy * kfac);
        kv16[r * KP + i] = h16.x;
        kv16[r * KP + i + 1u] = h16.y;
        w_s[wword + (CH * DKC + r * DKC + i) / 2u] = packFloat2x16(h16);
        if (SCAN_Y == 1u)
            w_s[wword + (2u * CH * DKC + r * DKC + i) / 2u] = packFloat2x16(f16vec2(kq[m].zw * qinv));
    }
}

// l_sh = L: K^ K^^T on the lower tiles, then e_t on the strict lower part.
void lower_gram() {
    for (uint tile = gl_SubgroupID; tile < NB * NB; tile += gl_NumSubgroups) {
        uint r0 = (tile / NB) * TM, c0 = (tile % NB) * TM;
        if (c0 > r0) continue;
        CM_ACC acc = CM_ACC(0.0);
        [[unroll]] for (uint k0 = 0u; k0 < DKC; k0 += TM) {
            CM_A a;
            CM_B bm;
            coopMatLoad(a, kv16, r0 * KP + k0, KP, ROW_MAJOR);
            coopMatLoad(bm, kv16, c0 * KP + k0, KP, COL_MAJOR);
            acc = coopMatMulAdd(a, bm, acc);
        }
        coopMatStore(acc, l_sh, r0 * LP + c0, LP, ROW_MAJOR);
    }
    barrier();
    for (uint e = gl_LocalInvocationIndex; e < CH * CH; e += WG) {
        uint r = e / CH, s = e % CH;
        l_sh[r * LP + s] = s < r ? e_sh[r] * l_sh[r * LP + s] : 0.0;
    }
    barrier();
}

// (I + L)^-1 in place of L, by 16 x 16 blocks: the diagonal blocks by
// forward substitution (invocation t solves column t % 16 of block t / 16),
// then block row bi gets X_bj = -D_b sum_{m=j}^{bi-1} L_bm X_mj.
void blocked_inverse() {
    uint t = gl_LocalInvocationIndex;
    uint b0 = TM * (t / TM), j = t % TM;
    float x[TM];
    if (t < CH) {
        // Unrolled: x stays in registers (indexed by constants only).
        [[unroll]] for (uint i = 0u; i < TM; ++i) {
            float acc = 0.0;
            [[unroll]] for (uint m = 0u; m < i; ++m) acc += l_sh[(b0 + i) * LP + b0 + m] * x[m];
            x[i] = i < j ? 0.0 : (i == j ? 1.0 : -acc);
        }
    }
    barrier();
    if (t < CH)
        [[unroll]] for (uint i = 0u; i < TM; ++i) l_sh[(b0 + i) * LP + b0 + j] = x[i];
    barrier();
    for (uint bi = 1u; bi < NB; ++bi) {
        for (uint e = t; e < bi * TM * TM; e += WG) {
            uint jb = e / (TM * TM), r = (e / TM) % TM, c = e % TM;
            float acc = 0.0;
            for (uint l = TM * jb; l < TM * bi; ++l)
                acc += l_sh[(TM * bi + r) * LP + l] * l_sh[l * LP + TM * jb + c];
            row_sh[r * RP + TM * jb + c] = acc;
        }
        barrier();
        for (uint e = t; e < bi * TM * TM; e += WG) {
            uint jb = e / (TM * TM), r = (e / TM) % TM, c = e % TM;
            float acc = 0.0;
            for (uint l = 0u; l < TM; ++l)
                acc += l_sh[(TM * bi + r) * LP + TM * bi + l] * row_sh[l * RP + TM * jb + c];
            l_sh[(TM * bi + r) * LP + TM * jb + c] = -acc;
        }
        barrier();
    }
}

// W = a16 K^, tile by tile, stored as f16 straight to the scratch.
void w_rows(uint wword) {
    for (uint tile = gl_SubgroupID; tile < NB * DT; tile += gl_NumSubgroups) {
        uint r0 = (tile / DT) * TM, c0 = (tile % DT) * TM;
        CM_ACC acc = CM_ACC(0.0);
        [[unroll]] for (uint k0 = 0u; k0 < CH; k0 += TM) {
            if (k0 > r0) break; // (I + L)^-1 is lower triangular
            CM_A a;
            CM_B bm;
            coopMatLoad(a, a16, r0 * AP + k0, AP, ROW_MAJOR);
            coopMatLoad(bm, kv16, k0 * KP + c0, KP, ROW_MAJOR);
            acc = coopMatMulAdd(a, bm, acc);
        }
        coopMatStore(CM_ACC16(acc), w_s, wword + (r0 * DKC + c0) / 2u, DKC / 2u, ROW_MAJOR);
    }
}

// g V of columns j0.. (zero past the ends) into this subgroup's panel
// (panel p: kv16 from p * PANEL, or past PANELS_KV l_sh as f16 pairs),
// scaled to f16 by a power of two; returns 1 / the scale. One load per
// value, all issued before the scale needs them.
float value_panel(uint b, uint tok0, uint hv, uint rows, uint j0, uint p) {
    float vv[VPL];
    float vmax = 0.0;
    for (uint m = 0u; m < VPL; ++m) {
        uint e = gl_SubgroupInvocationID + gl_SubgroupSize * m;
        uint c = min(e / TM, rows - 1u), jj = j0 + e % TM;
        bool inside = e < CH * TM && e / TM < rows && jj < P.dv;
        vv[m] = load_v(vidx(P.v, b, tok0 + c, hv, min(jj, P.dv - 1u))) * g_sh[c];
        vv[m] = inside ? vv[m] : 0.0;
        vmax = max(vmax, abs(vv[m]));
    }
    float sc = pow2_scale(subgroupMax(vmax));
    if (p < PANELS_KV) {
        for (uint m = 0u; m < VPL; ++m) {
            uint e = gl_SubgroupInvocationID + gl_SubgroupSize * m;
            if (e < CH * TM) kv16[p * PANEL + (e / TM) * PP + e % TM] = float16_t(vv[m] * sc);
        }
        return 1.0 / sc;
    }
    for (uint m = 0u; m < VPL; ++m) { // p is the subgroup's: the shuffles stay uniform
        uint e = gl_SubgroupInvocationID + gl_SubgroupSize * m; // even e: a pair with e + 1's lane
        float partner = subgroupShuffleXor(vv[m], 1u);
        if (e < CH * TM && e % 2u == 0u) {
            uint at = (p - PANELS_KV) * (PANEL / 2u) + (e / TM) * (PP / 2u) + (e % TM) / 2u;
            l_sh[at] = uintBitsToFloat(packFloat2x16(f16vec2(vec2(vv[m], partner) * sc)));
        }
    }
    return 1.0 / sc;
}

// U = a16 (g V), one 16-column panel per subgroup at a time (the first
// PANELS subgroups: kv16 and l_sh hold no more panels).
void u_rows(uint b, uint tok0, uint hv, uint rows, uint ubase) {
    uint p = gl_SubgroupID, panels = min(gl_NumSubgroups, PANELS);
    if (p >= panels) return;
    for (uint j0 = p * TM; j0 < P.dvs; j0 += panels * TM) {
        float inv = value_panel(b, tok0, hv, rows, j0, p);
        subgroup_sync();
        [[unroll]] for (uint i = 0u; i < NB; ++i) {
            CM_ACC acc = CM_ACC(0.0);
            [[unroll]] for (uint k = 0u; k <= i; ++k) {
                CM_A a;
                CM_B bm;
                coopMatLoad(a, a16, i * TM * AP + k * TM, AP, ROW_MAJOR);
                if (p < PANELS_KV)
                    coopMatLoad(bm, kv16, p * PANEL + k * TM * PP, PP, ROW_MAJOR);
                else
                    coopMatLoad(bm, l_sh, (p - PANELS_KV) * (PANEL / 2u) + k * TM * (PP / 2u),
                                PP / 2u, ROW_MAJOR);
                acc = coopMatMulAdd(a, bm, acc);
            }
            coopMatStore(acc * inv, u_s, ubase + i * TM * P.dvs + j0, P.dvs, ROW_MAJOR);
        }
        subgroup_sync();
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
    uint wword = P.w_base + block * w_block_pairs(); // W, K^ (and Q^)

    rows_and_keys(b, tok0, h, hv, rows, P.f_base + block * f_stride(), wword);
    barrier();
    lower_gram();
    blocked_inverse();
    for (uint e = gl_LocalInvocationIndex; e < CH * CH; e += WG)
        a16[(e / CH) * AP + e % CH] = float16_t(l_sh[(e / CH) * LP + e % CH] * e_sh[e % CH]);
    barrier();
    w_rows(wword);
    barrier();
    for (uint e = gl_LocalInvocationIndex; e < CH * CH; e += WG)
        a16[(e / CH) * AP + e % CH] = float16_t(l_sh[(e / CH) * LP + e % CH]);
    barrier();
    u_rows(b, tok0, hv, rows, P.u_base + block * CH * P.dvs);
}
