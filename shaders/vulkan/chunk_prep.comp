#version 450
#extension GL_GOOGLE_include_directive : require
// The state-free part of the chunked forward (ALGORITHM.md §2.2 in the
// two-coefficient form of §2.6), one workgroup per (chunk, value head):
//   kfac, qfac, e, g per token; G = K K^T and Q K^T over Dk slabs;
//   L = StrictLower(diag(e) K^ K^T), Ainv = (I + L)^-1 (column-parallel
//   forward substitution); W = Ainv (e * K^), U = Ainv (g * V),
//   A = qfac (Q K^T) kfac masked to c' <= c.
// Results go to scratch once: W [C x DKC], U [C x dvs], A [C x C] and the
// factors qfac, kfac [2 x C] per (chunk, head). Rows past the sequence end
// are zero throughout. Requires WG % CH == 0, CH * CH % WG == 0,
// WG % KS == 0 and CH * KS % WG == 0.
#include "efla_common.glsl"
#include "efla_entry.glsl"

layout(std430, set = 0, binding = 9) writeonly buffer WBuf { float w_s[]; };
layout(std430, set = 0, binding = 10) writeonly buffer UBuf { float u_s[]; };
layout(std430, set = 0, binding = 11) writeonly buffer ABuf { float a_s[]; };
layout(std430, set = 0, binding = 12) writeonly buffer FBuf { float f_s[]; };

const uint SL = KS + 1; // padded slab row
const uint GR = WG / CH;
const uint GM = CH * CH / WG;
const uint WR = WG / KS;
const uint WM = CH * KS / WG;

shared float l_sh[CH * CH];  // raw K K^T, then L, then the W coefficients
shared float ai_sh[CH * CH]; // (I + L)^-1, then the U coefficients
shared float qs[CH * SL];
shared float ks[CH * SL];
shared float kfac_sh[CH];
shared float qfac_sh[CH];
shared float e_sh[CH];
shared float g_sh[CH];

void main() {
    uint t = gl_LocalInvocationIndex;
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

    // K K^T and Q K^T (raw), plus |q|^2 per row, over Dk slabs.
    uint cc = t % CH, r0 = t / CH;
    float gacc[GM], aacc[GM];
    for (uint m = 0u; m < GM; ++m) {
        gacc[m] = 0.0;
        aacc[m] = 0.0;
    }
    float qq = 0.0;
    for (uint s = 0u; s < DKC; s += KS) {
        for (uint e = t; e < CH * KS; e += WG) {
            uint c = e / KS, ii = e % KS;
            float qv = 0.0, kv = 0.0;
            if (c < rows && s + ii < P.dk) {
                qv = load_q(vidx(P.q, b, tok0 + c, h, s + ii));
                kv = load_k(vidx(P.k, b, tok0 + c, h, s + ii));
            }
            qs[c * SL + ii] = qv;
            ks[c * SL + ii] = kv;
        }
        barrier();
        for (uint ii = 0u; ii < KS; ++ii) {
            float kc = ks[cc * SL + ii];
            for (uint m = 0u; m < GM; ++m) {
                uint c = r0 + GR * m;
                gacc[m] += ks[c * SL + ii] * kc;
                aacc[m] += qs[c * SL + ii] * kc;
            }
        }
        if (t < CH)
            for (uint ii = 0u; ii < KS; ++ii) qq += qs[t * SL + ii] * qs[t * SL + ii];
        barrier();
    }
    for (uint m = 0u; m < GM; ++m) l_sh[(r0 + GR * m) * CH + cc] = gacc[m];
    barrier();

    // Per-token coefficients; the scan needs qfac and kfac too.
    uint fbase = P.f_base + block * 2u * CH;
    if (t < CH) {
        float kfac = 0.0, qfac = 0.0, e = 0.0, g = 0.0;
        if (t < rows) {
            float beta = load_beta(vidx(P.beta, b, tok0 + t, hv, 0u));
            step_coefficients(l_sh[t * CH + t], qq, beta, kfac, qfac, e, g);
        }
        kfac_sh[t] = kfac;
        qfac_sh[t] = qfac;
        e_sh[t] = e;
        g_sh[t] = g;
        f_s[fbase + t] = qfac;
        f_s[fbase + CH + t] = kfac;
    }
    barrier();

    // A (scaled, masked with the diagonal) to scratch; L in place of G.
    uint abase = P.a_base + block * CH * CH;
    for (uint m = 0u; m < GM; ++m) {
        uint c = r0 + GR * m;
        a_s[abase + c * CH + cc] = cc <= c ? qfac_sh[c] * kfac_sh[cc] * aacc[m] : 0.0;
        l_sh[c * CH + cc] = cc < c ? e_sh[c] * kfac_sh[c] * kfac_sh[cc] * gacc[m] : 0.0;
    }
    barrier();

    // (I + L)^-1: invocation j solves column j by forward substitution.
    if (t < CH) {
        uint j = t;
        for (uint i = 0u; i < CH; ++i) {
            float x = i == j ? 1.0 : 0.0;
            if (i > j)
                for (uint m = j; m < i; ++m) x -= l_sh[i * CH + m] * ai_sh[m * CH + j];
            ai_sh[i * CH + j] = x;
        }
    }
    barrier();

    // Coefficient matrices: W = Ainv diag(e kfac) K, U = Ainv diag(g) V.
    for (uint e = t; e < CH * CH; e += WG) {
        uint c2 = e % CH;
        float a = ai_sh[e];
        l_sh[e] = a * e_sh[c2] * kfac_sh[c2];
        ai_sh[e] = a * g_sh[c2];
    }
    barrier();

    uint ii = t % KS, wr0 = t / KS;
    uint wbase = P.w_base + block * CH * DKC;
    for (uint s = 0u; s < DKC; s += KS) {
        for (uint e = t; e < CH * KS; e += WG) {
            uint c = e / KS, i2 = e % KS;
            float kv = 0.0;
            if (c < rows && s + i2 < P.dk) kv = load_k(vidx(P.k, b, tok0 + c, h, s + i2));
            ks[c * SL + i2] = kv;
        }
        barrier();
        float acc[WM];
        for (uint m = 0u; m < WM; ++m) acc[m] = 0.0;
        for (uint c2 = 0u; c2 < CH; ++c2) {
            float kv = ks[c2 * SL + ii];
            for (uint m = 0u; m < WM; ++m) acc[m] += l_sh[(wr0 + WR * m) * CH + c2] * kv;
        }
        for (uint m = 0u; m < WM; ++m) w_s[wbase + (wr0 + WR * m) * DKC + s + ii] = acc[m];
        barrier();
    }

    uint ubase = P.u_base + block * CH * P.dvs;
    for (uint s = 0u; s < P.dvs; s += KS) {
        for (uint e = t; e < CH * KS; e += WG) {
            uint c = e / KS, i2 = e % KS;
            float vv = 0.0;
            if (c < rows && s + i2 < P.dv) vv = load_v(vidx(P.v, b, tok0 + c, hv, s + i2));
            ks[c * SL + i2] = vv;
        }
        barrier();
        float acc[WM];
        for (uint m = 0u; m < WM; ++m) acc[m] = 0.0;
        for (uint c2 = 0u; c2 < CH; ++c2) {
            float vv = ks[c2 * SL + ii];
            for (uint m = 0u; m < WM; ++m) acc[m] += ai_sh[(wr0 + WR * m) * CH + c2] * vv;
        }
        for (uint m = 0u; m < WM; ++m) u_s[ubase + (wr0 + WR * m) * P.dvs + s + ii] = acc[m];
        barrier();
    }
}
