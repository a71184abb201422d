#version 450
#extension GL_GOOGLE_include_directive : require
// The two-level scan's join (vk_plan.c, "legs"). The scan has run each
// sequence's first leg from its initial state, ending at S_1, and the leg
// products have given every later leg j but the last its end state from a
// zero start, Q_j, and X_j, where the product of its transitions is I - X_j
// (LEG_PRODUCTS in efla_common.glsl). Each leg's true start
//   S_(j+1) = S_j - X_j S_j + Q_j
// is written for the scan that runs those legs again, in parallel, with
// their outputs. In f32 throughout: these few products carry the whole
// sequence. One workgroup per (entry, value head, BV value columns); an
// entry here names a sequence's starting states, rows first.. of
// state_out:
//   count      how many (legs after the first; 1 for a sequence of one leg),
//   batch_row  the leg products' row for the step from row first (binding
//              9, float rows of dvs + DKC: U's columns, then W's),
//   flags      ENTRY_FROM_LEG: row first holds S_1 already (binding 10, the
//              same rows); else it is the initial state (state_row of
//              state_in where ENTRY_READ_STATE, else zeros), written here.
#include "efla_common.glsl"

layout(std430, set = 0, binding = 9) readonly buffer LegBuf { float leg_s[]; };
layout(std430, set = 0, binding = 10) readonly buffer StartBuf { float start_s[]; };

const uint ENTRY_FROM_LEG = 4u;

shared float s_sh[DKC * BV];
shared float next_sh[DKC * BV];

void write_start(uint row, uint hv, uint col0, uint ncol) {
    for (uint e = gl_LocalInvocationIndex; e < DKC * BV; e += WG) {
        uint i = e / BV, jj = e % BV;
        if (i < P.dk && jj < ncol) sout_w[vidx(P.sout, row, hv, i, col0 + jj)] = s_sh[e];
    }
}

// S <- S - X S + Q for the leg products at float `base`.
void apply_leg(uint base, uint col0, uint ncol) {
    uint width = P.dvs + DKC;
    for (uint e = gl_LocalInvocationIndex; e < DKC * BV; e += WG) {
        uint i = e / BV, jj = e % BV;
        float x = 0.0;
        if (i < P.dk && jj < ncol) {
            uint row = base + i * width;
            x = s_sh[e] + leg_s[row + col0 + jj];
            for (uint m = 0u; m < P.dk; ++m) x -= leg_s[row + P.dvs + m] * s_sh[m * BV + jj];
        }
        next_sh[e] = x;
    }
    barrier();
    for (uint e = gl_LocalInvocationIndex; e < DKC * BV; e += WG) s_sh[e] = next_sh[e];
    barrier();
}

// The first start: S_1 from the first leg's run, or the initial state.
void load_first(Entry en, uint hv, uint col0, uint ncol) {
    bool from_leg = (en.flags & ENTRY_FROM_LEG) != 0u;
    bool read_state = (en.flags & ENTRY_READ_STATE) != 0u;
    for (uint e = gl_LocalInvocationIndex; e < DKC * BV; e += WG) {
        uint i = e / BV, jj = e % BV;
        float x = 0.0;
        if (i < P.dk && jj < ncol) {
            if (from_leg)
                x = start_s[vidx(P.sout, en.first, hv, i, col0 + jj)];
            else if (read_state)
                x = sin_w[vidx(P.sin_, en.state_row, hv, i, col0 + jj)];
        }
        s_sh[e] = x;
    }
    barrier();
}

void main() {
    uint hvl = gl_WorkGroupID.y;
    uint hv = P.hv_base + hvl;
    Entry en = entries[pc.entry_base + gl_WorkGroupID.z];
    uint col0 = gl_WorkGroupID.x * BV;
    uint ncol = min(BV, P.dv - col0);
    load_first(en, hv, col0, ncol);
    uint leg_floats = DKC * (P.dvs + DKC);
    for (uint j = 0u; j < en.count; ++j) {
        if (j > 0u || (en.flags & ENTRY_FROM_LEG) == 0u) write_start(en.first + j, hv, col0, ncol);
        if (j + 1u < en.count)
            apply_leg(((en.batch_row + j) * P.hv_count + hvl) * leg_floats, col0, ncol);
    }
}
