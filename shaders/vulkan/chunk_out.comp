#version 450
#extension GL_GOOGLE_include_directive : require
// The output kernel of the split chunked forward, fully parallel: one
// workgroup per (chunk, value head, Dv tile of BV columns), from the scratch
// written by chunk_prep (A, qfac) and chunk_scan (H = the state before the
// chunk, V' over U):
//   O = qfac (Q H) + A V'            (A already holds qfac, kfac and the mask)
// Invocation (rg, j) owns column j and the chunk rows rg + RG m; Q and H are
// staged through shared slabs of KS rows of Dk. Requires WG = RG * BV.
#include "efla_common.glsl"
#include "efla_entry.glsl"

layout(std430, set = 0, binding = 10) readonly buffer UBuf { float u_s[]; };
layout(std430, set = 0, binding = 11) readonly buffer ABuf { float a_s[]; };
layout(std430, set = 0, binding = 12) readonly buffer FBuf { float f_s[]; };
layout(std430, set = 0, binding = 13) readonly buffer HBuf { float h_s[]; };

const uint KS4 = KS / 4; // vec4s per slab row
const uint CM = CH / RG;  // chunk rows per invocation

shared vec4 qs[CH * KS4];
shared float hs[KS * BV];
shared float vp_sh[CH * BV];
shared float a_sh[CH * CH];
shared float qf_sh[CH];
shared float o_stage[CH * BV];

#include "efla_out_store.glsl"

// Rows rg + RG m of Q H for column j, over Dk slabs.
void q_times_h(uint b, uint tok0, uint h, uint rows, uint hbase, uint col0, uint ncol, uint j,
               uint rg, out float aq[CM]) {
    uint t = gl_LocalInvocationIndex;
    for (uint m = 0u; m < CM; ++m) aq[m] = 0.0;
    for (uint s = 0u; s < DKC; s += KS) {
        for (uint e = t; e < CH * KS; e += WG) {
            uint c = e / KS, ii = e % KS;
            float qv = 0.0;
            if (c < rows && s + ii < P.dk) qv = load_q(vidx(P.q, b, tok0 + c, h, s + ii));
            qs[c * KS4 + ii / 4u][ii % 4u] = qv;
        }
        for (uint e = t; e < KS * BV; e += WG) {
            uint ii = e / BV, jj = e % BV;
            hs[e] = jj < ncol ? h_s[hbase + (s + ii) * P.dvs + col0 + jj] : 0.0;
        }
        barrier();
        for (uint i4 = 0u; i4 < KS4; ++i4) {
            uint row = 4u * i4 * BV + j;
            vec4 hv = vec4(hs[row], hs[row + BV], hs[row + 2u * BV], hs[row + 3u * BV]);
            for (uint m = 0u; m < CM; ++m) aq[m] += dot(qs[(rg + RG * m) * KS4 + i4], hv);
        }
        barrier();
    }
}

void main() {
    uint t = gl_LocalInvocationIndex;
    uint j = t % BV, rg = t / BV;
    uint chunk = pc.chunk_base + gl_WorkGroupID.x;
    uint hvl = gl_WorkGroupID.y;
    uint hv = P.hv_base + hvl;
    uint h = hv / P.group;
    uint col0 = gl_WorkGroupID.z * BV;
    uint ncol = min(BV, P.dv - col0);
    Entry en = entries[find_entry(chunk)];
    uint local_chunk = chunk - en.chunk_base;
    uint tok0 = en.first + local_chunk * CH;
    uint rows = min(CH, en.count - local_chunk * CH);
    uint b = en.batch_row;
    uint block = chunk * P.hv_count + hvl;
    uint ubase = P.u_base + block * CH * P.dvs;
    uint abase = P.a_base + block * CH * CH;

    for (uint e = t; e < CH * CH; e += WG) a_sh[e] = a_s[abase + e];
    for (uint c = t; c < CH; c += WG) qf_sh[c] = f_s[P.f_base + block * 2u * CH + c];
    for (uint e = t; e < CH * BV; e += WG) {
        uint c = e / BV, jj = e % BV;
        vp_sh[e] = c < rows && jj < ncol ? u_s[ubase + c * P.dvs + col0 + jj] : 0.0;
    }
    float aq[CM];
    q_times_h(b, tok0, h, rows, P.h_base + block * DKC * P.dvs, col0, ncol, j, rg, aq);

    for (uint m = 0u; m < CM; ++m) {
        uint c = rg + RG * m;
        float o = qf_sh[c] * aq[m];
        for (uint c2 = 0u; c2 <= c; ++c2) o += a_sh[c * CH + c2] * vp_sh[c2 * BV + j];
        o_stage[c * BV + j] = o;
    }
    barrier();
    store_output_rows(b, tok0, hv, col0, rows, ncol);
}
