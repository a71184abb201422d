#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_EXT_control_flow_attributes : require
// Token-by-token forward for decode and short sequences (ALGORITHM.md §2.1
// in the two-coefficient form of §2.6), one workgroup per (entry, value
// head, Dv tile of BV columns). Invocation (rg, j) keeps rows rg + RG m of
// state column j in registers for the whole entry; per token:
//   v'_j = g v_j - e kfac (k^T S)_j,   S += (k kfac) v'^T,   o = qfac S^T q
// Column sums over the RG row groups are reduced in a fixed order, so the
// result does not depend on scheduling. Requires WG = RG * BV, DKC % RG == 0.
#include "efla_common.glsl"

const uint RM = DKC / RG; // state rows per invocation

// q and k of the current token as vec4s: every invocation reads all of
// them for the norms, four values per shared load.
shared vec4 q_sh[DKC / 4u];
shared vec4 k_sh[DKC / 4u];
shared float red[WG];
shared float u_sh[BV];
shared float o_stage[BV];

#include "efla_out_store.glsl"

float key(uint i) { return k_sh[i / 4u][i % 4u]; }

// Sum of the RG partials of column j (fixed order).
float column_sum(uint j) {
    float sum = 0.0;
    for (uint r = 0u; r < RG; ++r) sum += red[r * BV + j];
    return sum;
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
    uint ncol = min(BV, P.dv - col0);
    bool col_ok = j < ncol;

    // The state column in one burst: unconditional loads of clamped indices,
    // zeroed afterwards by selects (a load under a branch waits for the one
    // before it; decode reads nothing else).
    float S[RM];
    [[unroll]] for (uint m = 0u; m < RM; ++m) S[m] = 0.0;
    if ((en.flags & ENTRY_READ_STATE) != 0u) {
        uint jc = min(col0 + j, P.dv - 1u);
        [[unroll]] for (uint m = 0u; m < RM; ++m) {
            uint i = rg + RG * m;
            float x = sin_w[vidx(P.sin_, en.state_row, hv, min(i, P.dk - 1u), jc)];
            S[m] = col_ok && i < P.dk ? x : 0.0;
        }
    }

    for (uint tok = en.first; tok < en.first + en.count; ++tok) {
        for (uint i = t; i < DKC; i += WG) {
            float qv = 0.0, kv = 0.0;
            if (i < P.dk) {
                qv = load_q(vidx(P.q, b, tok, h, i));
                kv = load_k(vidx(P.k, b, tok, h, i));
            }
            q_sh[i / 4u][i % 4u] = qv;
            k_sh[i / 4u][i % 4u] = kv;
        }
        barrier();
        float kk = 0.0, qq = 0.0;
        for (uint i4 = 0u; i4 < DKC / 4u; ++i4) {
            kk += dot(k_sh[i4], k_sh[i4]);
            qq += dot(q_sh[i4], q_sh[i4]);
        }
        float kfac, qfac, e, g;
        step_coefficients(kk, qq, load_beta(vidx(P.beta, b, tok, hv, 0u)), kfac, qfac, e, g);

        float p = 0.0;
        for (uint m = 0u; m < RM; ++m) p += S[m] * key(rg + RG * m);
        red[t] = p;
        barrier();
        if (rg == 0u) {
            float vv = col_ok ? load_v(vidx(P.v, b, tok, hv, col0 + j)) : 0.0;
            u_sh[j] = col_ok ? g * vv - e * kfac * column_sum(j) : 0.0;
        }
        barrier();

        float ku = kfac * u_sh[j];
        p = 0.0;
        for (uint m = 0u; m < RM; ++m) {
            S[m] += key(rg + RG * m) * ku;
            p += S[m] * q_sh[(rg + RG * m) / 4u][(rg + RG * m) % 4u];
        }
        red[t] = p;
        barrier();
        if (rg == 0u) {
            float o = qfac * column_sum(j);
            if (!STAGED_OUT) {
                if (col_ok) store_out(vidx(P.o, b, tok, hv, col0 + j), o);
            } else {
                o_stage[j] = o;
            }
        }
        if (STAGED_OUT) {
            barrier();
            store_output_rows(b, tok, hv, col0, 1u, ncol);
        }
        barrier();
    }

    if ((en.flags & ENTRY_WRITE_STATE) != 0u) {
        for (uint m = 0u; m < RM; ++m) {
            uint i = rg + RG * m;
            if (col_ok && i < P.dk) sout_w[vidx(P.sout, en.state_out_row, hv, i, col0 + j)] = S[m];
        }
    }
}
