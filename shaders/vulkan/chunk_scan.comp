#version 450
#extension GL_GOOGLE_include_directive : require
// The sequential part of the chunked forward, one workgroup per (entry,
// value head, Dv tile of BV columns). The state tile S [DKC x BV] stays in
// shared memory for the whole entry; per chunk, from the scratch written by
// chunk_prep:
//   V' = U - W S
//   O  = qfac (Q S) + A V'          (A already holds qfac, kfac and the mask)
//   S += K^T V'                      (K^ = k * kfac)
// Invocation (rg, j) owns column j and the chunk rows rg + RG m; W, Q and K
// are staged through shared slabs of KS columns. No per-chunk state is
// written. Requires WG = RG * BV and KS % RG == 0.
#include "efla_common.glsl"

layout(std430, set = 0, binding = 9) readonly buffer WBuf { float w_s[]; };
layout(std430, set = 0, binding = 10) readonly buffer UBuf { float u_s[]; };
layout(std430, set = 0, binding = 11) readonly buffer ABuf { float a_s[]; };
layout(std430, set = 0, binding = 12) readonly buffer FBuf { float f_s[]; };

const uint KS4 = KS / 4; // vec4s per slab row
const uint CM = CH / RG;  // chunk rows per invocation
const uint KM = KS / RG;  // state rows per invocation within a slab

shared float s_sh[DKC * BV];
shared float vp_sh[CH * BV];
// Slabs as vec4 rows: one shared load feeds four FMAs. Rows are read by
// whole row groups at once (broadcast), so they need no padding.
shared vec4 xs[CH * KS4]; // W, then K^ slab
shared vec4 qs[CH * KS4];
shared float a_sh[CH * CH];
shared float qf_sh[CH];
shared float kf_sh[CH];
shared float o_stage[STAGED_OUT ? CH * BV : 1u];

#include "efla_out_store.glsl"

void main() {
    uint t = gl_LocalInvocationIndex;
    uint j = t % BV, rg = t / BV;
    uint hvl = gl_WorkGroupID.y;
    uint hv = P.hv_base + hvl;
    uint h = hv / P.group;
    Entry en = entries[pc.entry_base + gl_WorkGroupID.z];
    uint b = en.batch_row;
    uint col0 = gl_WorkGroupID.x * BV;
    uint ncol = min(BV, P.dv - col0);
    bool col_ok = j < ncol;

    bool read_state = (en.flags & ENTRY_READ_STATE) != 0u;
    for (uint e = t; e < DKC * BV; e += WG) {
        uint i = e / BV, jj = e % BV;
        float sv = 0.0;
        if (read_state && i < P.dk && jj < ncol)
            sv = sin_w[vidx(P.sin_, en.state_row, hv, i, col0 + jj)];
        s_sh[e] = sv;
    }

    uint chunks = (en.count + CH - 1u) / CH;
    for (uint ck = 0u; ck < chunks; ++ck) {
        uint tok0 = en.first + ck * CH;
        uint rows = min(CH, en.count - ck * CH);
        uint block = (en.chunk_base + ck) * P.hv_count + hvl;
        uint wbase = P.w_base + block * CH * DKC;
        uint ubase = P.u_base + block * CH * P.dvs;
        uint abase = P.a_base + block * CH * CH;
        uint fbase = P.f_base + block * 2u * CH;
        for (uint e = t; e < CH * CH; e += WG) a_sh[e] = a_s[abase + e];
        for (uint c = t; c < CH; c += WG) {
            qf_sh[c] = f_s[fbase + c];
            kf_sh[c] = f_s[fbase + CH + c];
        }
        barrier();

        // W S and Q S over Dk slabs.
        float aw[CM], aq[CM];
        for (uint m = 0u; m < CM; ++m) {
            aw[m] = 0.0;
            aq[m] = 0.0;
        }
        for (uint s = 0u; s < DKC; s += KS) {
            for (uint e = t; e < CH * KS; e += WG) {
                uint c = e / KS, ii = e % KS;
                xs[c * KS4 + ii / 4u][ii % 4u] = w_s[wbase + c * DKC + s + ii];
                float qv = 0.0;
                if (c < rows && s + ii < P.dk) qv = load_q(vidx(P.q, b, tok0 + c, h, s + ii));
                qs[c * KS4 + ii / 4u][ii % 4u] = qv;
            }
            barrier();
            for (uint i4 = 0u; i4 < KS4; ++i4) {
                uint row = (s + 4u * i4) * BV + j;
                vec4 sv = vec4(s_sh[row], s_sh[row + BV], s_sh[row + 2u * BV], s_sh[row + 3u * BV]);
                for (uint m = 0u; m < CM; ++m) {
                    uint c = rg + RG * m;
                    aw[m] += dot(xs[c * KS4 + i4], sv);
                    aq[m] += dot(qs[c * KS4 + i4], sv);
                }
            }
            barrier();
        }

        // V' = U - W S.
        for (uint m = 0u; m < CM; ++m) {
            uint c = rg + RG * m;
            float vp = 0.0;
            if (c < rows && col_ok) vp = u_s[ubase + c * P.dvs + col0 + j] - aw[m];
            vp_sh[c * BV + j] = vp;
        }
        barrier();

        // O = qfac (Q S) + A V'.
        for (uint m = 0u; m < CM; ++m) {
            uint c = rg + RG * m;
            float o = qf_sh[c] * aq[m];
            for (uint c2 = 0u; c2 <= c; ++c2) o += a_sh[c * CH + c2] * vp_sh[c2 * BV + j];
            if (!STAGED_OUT) {
                if (c < rows && col_ok) store_out(vidx(P.o, b, tok0 + c, hv, col0 + j), o);
            } else {
                o_stage[c * BV + j] = o;
            }
        }
        if (STAGED_OUT) {
            barrier();
            store_output_rows(b, tok0, hv, col0, rows, ncol);
        }

        // S += K^T V' over Dk slabs of state rows.
        for (uint s = 0u; s < DKC; s += KS) {
            for (uint e = t; e < CH * KS; e += WG) {
                uint c = e / KS, ii = e % KS;
                float kv = 0.0;
                if (c < rows && s + ii < P.dk)
                    kv = load_k(vidx(P.k, b, tok0 + c, h, s + ii)) * kf_sh[c];
                xs[c * KS4 + ii / 4u][ii % 4u] = kv;
            }
            barrier();
            float ds[KM];
            for (uint m = 0u; m < KM; ++m) ds[m] = 0.0;
            for (uint c = 0u; c < rows; ++c) {
                float vv = vp_sh[c * BV + j];
                for (uint m = 0u; m < KM; ++m) {
                    uint i = rg + RG * m;
                    ds[m] += xs[c * KS4 + i / 4u][i % 4u] * vv;
                }
            }
            for (uint m = 0u; m < KM; ++m) s_sh[(s + rg + RG * m) * BV + j] += ds[m];
            barrier();
        }
    }

    if ((en.flags & ENTRY_WRITE_STATE) != 0u) {
        for (uint e = t; e < DKC * BV; e += WG) {
            uint i = e / BV, jj = e % BV;
            if (i < P.dk && jj < ncol) sout_w[vidx(P.sout, en.state_row, hv, i, col0 + jj)] = s_sh[e];
        }
    }
}
