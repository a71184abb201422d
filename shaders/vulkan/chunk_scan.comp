#version 450
#extension GL_GOOGLE_include_directive : require
// The sequential part of the chunked forward (the state scan of the split
// design), one workgroup per (entry, value head, Dv tile of BV columns). The
// state tile S [DKC x BV] stays in shared memory for the whole entry; per
// chunk, from the scratch written by chunk_prep:
//   H[c] = S                         (the state before the chunk, for chunk_out)
//   V'   = U - W S                   (written over U, for chunk_out)
//   S   += K^T V'                    (K^ = k * kfac)
// Nothing else runs here: the outputs are computed by chunk_out, fully in
// parallel, from H and V'. Invocation (rg, j) owns column j and the chunk
// rows rg + RG m; W and K^ are staged through shared slabs of KS columns.
// With LEG_PRODUCTS (efla_common.glsl) the columns past Dv are W's (from
// column dvs on), and only the end state is written. Requires WG = RG * BV
// and KS % RG == 0.
#include "efla_common.glsl"

layout(std430, set = 0, binding = 9) readonly buffer WBuf { float w_s[]; };
layout(std430, set = 0, binding = 10) buffer UBuf { float u_s[]; };
layout(std430, set = 0, binding = 12) readonly buffer FBuf { float f_s[]; };
layout(std430, set = 0, binding = 13) writeonly buffer HBuf { float h_s[]; };

const uint KS4 = KS / 4; // vec4s per slab row
const uint CM = CH / RG;  // chunk rows per invocation
const uint KM = KS / RG;  // state rows per invocation within a slab

shared float s_sh[DKC * BV];
shared float vp_sh[CH * BV];
// Slabs as vec4 rows: one shared load feeds four FMAs. Rows are read by
// whole row groups at once (broadcast), so they need no padding.
shared vec4 xs[CH * KS4];
shared float kf_sh[CH];

void load_state(Entry en, uint hv, uint col0, uint ncol) {
    bool read_state = (en.flags & ENTRY_READ_STATE) != 0u;
    for (uint e = gl_LocalInvocationIndex; e < DKC * BV; e += WG) {
        uint i = e / BV, jj = e % BV;
        float sv = 0.0;
        if (read_state && i < P.dk && jj < ncol)
            sv = sin_w[vidx(P.sin_, en.state_row, hv, i, col0 + jj)];
        s_sh[e] = sv;
    }
}

void store_state(Entry en, uint hv, uint col0, uint ncol) {
    if ((en.flags & ENTRY_WRITE_STATE) == 0u) return;
    for (uint e = gl_LocalInvocationIndex; e < DKC * BV; e += WG) {
        uint i = e / BV, jj = e % BV;
        if (i < P.dk && jj < ncol) sout_w[vidx(P.sout, en.state_out_row, hv, i, col0 + jj)] = s_sh[e];
    }
}

// H[c] = S: rows of DKC, columns col0 .. col0 + ncol of the dvs-wide block.
void store_chunk_state(uint hbase, uint col0, uint ncol) {
    for (uint e = gl_LocalInvocationIndex; e < DKC * BV; e += WG) {
        uint i = e / BV, jj = e % BV;
        if (jj < ncol) h_s[hbase + i * P.dvs + col0 + jj] = s_sh[e];
    }
}

// Row c of U's column col, or with LEG_PRODUCTS past Dv, of W's column
// col - dvs (the padding between them reads as zeros).
float u_at(uint ubase, uint wbase, uint c, uint col) {
    if (col < P.dv) return u_s[ubase + c * P.dvs + col];
    return col < P.dvs ? 0.0 : w_s[wbase + c * DKC + col - P.dvs];
}

// Rows rg + RG m of W S for column j, over Dk slabs.
void w_times_s(uint wbase, uint j, uint rg, out float aw[CM]) {
    uint t = gl_LocalInvocationIndex;
    for (uint m = 0u; m < CM; ++m) aw[m] = 0.0;
    for (uint s = 0u; s < DKC; s += KS) {
        for (uint e = t; e < CH * KS; e += WG) {
            uint c = e / KS, ii = e % KS;
            xs[c * KS4 + ii / 4u][ii % 4u] = w_s[wbase + c * DKC + s + ii];
        }
        barrier();
        for (uint i4 = 0u; i4 < KS4; ++i4) {
            uint row = (s + 4u * i4) * BV + j;
            vec4 sv = vec4(s_sh[row], s_sh[row + BV], s_sh[row + 2u * BV], s_sh[row + 3u * BV]);
            for (uint m = 0u; m < CM; ++m) aw[m] += dot(xs[(rg + RG * m) * KS4 + i4], sv);
        }
        barrier();
    }
}

// S += K^T V' over Dk slabs of state rows.
void update_state(uint b, uint tok0, uint h, uint rows, uint j, uint rg) {
    uint t = gl_LocalInvocationIndex;
    for (uint s = 0u; s < DKC; s += KS) {
        for (uint e = t; e < CH * KS; e += WG) {
            uint c = e / KS, ii = e % KS;
            float kv = 0.0;
            if (c < rows && s + ii < P.dk) kv = load_k(vidx(P.k, b, tok0 + c, h, s + ii)) * kf_sh[c];
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

void main() {
    uint t = gl_LocalInvocationIndex;
    uint j = t % BV, rg = t / BV;
    uint hvl = gl_WorkGroupID.y;
    uint hv = P.hv_base + hvl;
    uint h = hv / P.group;
    Entry en = entries[pc.entry_base + gl_WorkGroupID.z];
    uint b = en.batch_row;
    uint col0 = gl_WorkGroupID.x * BV;
    uint width = LEG_PRODUCTS != 0u ? P.dvs + DKC : P.dv;
    uint ncol = min(BV, width - col0);
    bool col_ok = j < ncol;

    load_state(en, hv, col0, ncol);
    uint chunks = (en.count + CH - 1u) / CH;
    for (uint ck = 0u; ck < chunks; ++ck) {
        uint tok0 = en.first + ck * CH;
        uint rows = min(CH, en.count - ck * CH);
        uint block = (en.chunk_base + ck) * P.hv_count + hvl;
        uint ubase = P.u_base + block * CH * P.dvs;
        uint fbase = P.f_base + block * 2u * CH;
        for (uint c = t; c < CH; c += WG) kf_sh[c] = f_s[fbase + CH + c];
        barrier();
        if (LEG_PRODUCTS == 0u) store_chunk_state(P.h_base + block * DKC * P.dvs, col0, ncol);

        float aw[CM];
        uint wbase = P.w_base + block * CH * DKC;
        w_times_s(wbase, j, rg, aw);
        for (uint m = 0u; m < CM; ++m) {
            uint c = rg + RG * m;
            float vp = 0.0;
            if (c < rows && col_ok) {
                vp = u_at(ubase, wbase, c, col0 + j) - aw[m];
                if (LEG_PRODUCTS == 0u) u_s[ubase + c * P.dvs + col0 + j] = vp;
            }
            vp_sh[c * BV + j] = vp;
        }
        barrier();
        update_state(b, tok0, h, rows, j, rg);
    }
    store_state(en, hv, col0, ncol);
}
