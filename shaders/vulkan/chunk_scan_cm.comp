#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
// The state scan of the split chunked forward on cooperative matrices (f16
// storage or bf16 storage; see chunk_scan.comp for the portable one). One
// workgroup per (entry, value head, Dv tile of BV columns); the state tile
// S [DKC x BV] stays in shared memory, in f32, for the whole entry. Per chunk:
//   H[c] = S                        (f32, for chunk_out_cm)
//   V'   = U - W S                  (f16 W, S scaled to f16; f32 accumulation)
//   S   += K^T V'                   (unit keys K^ in f16, V' scaled to f16)
// Subgroup g computes the 16 x 16 result tiles g, g + subgroups, ...
// Requires DKC, CH and BV multiples of 16.
#include "efla_common.glsl"
#include "efla_coopmat.glsl"

layout(std430, set = 0, binding = 9) readonly buffer WBuf { float w_s[]; };
layout(std430, set = 0, binding = 10) buffer UBuf { float u_s[]; };
layout(std430, set = 0, binding = 12) readonly buffer FBuf { float f_s[]; };
layout(std430, set = 0, binding = 13) writeonly buffer HBuf { float h_s[]; };

shared float s_sh[DKC * BV];     // the state tile
shared float16_t s16[DKC * BV];  // S * s_scale
shared float16_t kw16[CH * DKC]; // W, then K^ (rows of DKC)
shared float x_sh[CH * BV];      // W S, then V'
shared float16_t vp16[CH * BV];  // V' * v_scale
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
        if (i < P.dk && jj < ncol) sout_w[vidx(P.sout, en.state_row, hv, i, col0 + jj)] = s_sh[e];
    }
}

// H[c] = S, and S in f16 scaled by the returned power of two.
float stage_state(uint hbase, uint col0, uint ncol) {
    float local_max = 0.0;
    for (uint e = gl_LocalInvocationIndex; e < DKC * BV; e += WG) {
        uint i = e / BV, jj = e % BV;
        float sv = s_sh[e];
        if (jj < ncol) h_s[hbase + i * P.dvs + col0 + jj] = sv;
        local_max = max(local_max, abs(sv));
    }
    float scale = workgroup_scale(local_max);
    for (uint e = gl_LocalInvocationIndex; e < DKC * BV; e += WG)
        s16[e] = float16_t(s_sh[e] * scale);
    return scale;
}

// x_sh = W S (scaled by s_scale), over 16 x 16 tiles.
void w_times_s() {
    const uint tiles_c = BV / TM;
    for (uint tile = gl_SubgroupID; tile < (CH / TM) * tiles_c; tile += gl_NumSubgroups) {
        uint r0 = (tile / tiles_c) * TM, c0 = (tile % tiles_c) * TM;
        CM_ACC acc = CM_ACC(0.0);
        for (uint k0 = 0u; k0 < DKC; k0 += TM) {
            CM_A a;
            CM_B b;
            coopMatLoad(a, kw16, r0 * DKC + k0, DKC, ROW_MAJOR);
            coopMatLoad(b, s16, k0 * BV + c0, BV, ROW_MAJOR);
            acc = coopMatMulAdd(a, b, acc);
        }
        coopMatStore(acc, x_sh, r0 * BV + c0, BV, ROW_MAJOR);
    }
}

// V' = U - W S into U (for chunk_out_cm) and x_sh; returns V''s scale.
float form_v_prime(uint ubase, uint rows, uint col0, uint ncol, float s_scale) {
    float local_max = 0.0;
    float inv = 1.0 / s_scale;
    for (uint e = gl_LocalInvocationIndex; e < CH * BV; e += WG) {
        uint c = e / BV, jj = e % BV;
        float vp = 0.0;
        if (c < rows && jj < ncol) {
            vp = u_s[ubase + c * P.dvs + col0 + jj] - x_sh[e] * inv;
            u_s[ubase + c * P.dvs + col0 + jj] = vp;
        }
        x_sh[e] = vp;
        local_max = max(local_max, abs(vp));
    }
    float scale = workgroup_scale(local_max);
    for (uint e = gl_LocalInvocationIndex; e < CH * BV; e += WG)
        vp16[e] = float16_t(x_sh[e] * scale);
    return scale;
}

// S += K^T V' (V' scaled by v_scale); K^T is read column-major from kw16.
void update_state(float v_scale) {
    const uint tiles_c = BV / TM;
    float inv = 1.0 / v_scale;
    for (uint tile = gl_SubgroupID; tile < (DKC / TM) * tiles_c; tile += gl_NumSubgroups) {
        uint r0 = (tile / tiles_c) * TM, c0 = (tile % tiles_c) * TM;
        CM_ACC d = CM_ACC(0.0);
        for (uint k0 = 0u; k0 < CH; k0 += TM) {
            CM_A a;
            CM_B b;
            coopMatLoad(a, kw16, k0 * DKC + r0, DKC, COL_MAJOR);
            coopMatLoad(b, vp16, k0 * BV + c0, BV, ROW_MAJOR);
            d = coopMatMulAdd(a, b, d);
        }
        CM_ACC s;
        coopMatLoad(s, s_sh, r0 * BV + c0, BV, ROW_MAJOR);
        s = s + d * inv;
        coopMatStore(s, s_sh, r0 * BV + c0, BV, ROW_MAJOR);
    }
}

void main() {
    uint t = gl_LocalInvocationIndex;
    uint hvl = gl_WorkGroupID.y;
    uint hv = P.hv_base + hvl;
    uint h = hv / P.group;
    Entry en = entries[pc.entry_base + gl_WorkGroupID.z];
    uint b = en.batch_row;
    uint col0 = gl_WorkGroupID.x * BV;
    uint ncol = min(BV, P.dv - col0);

    load_state(en, hv, col0, ncol);
    uint chunks = (en.count + CH - 1u) / CH;
    for (uint ck = 0u; ck < chunks; ++ck) {
        uint tok0 = en.first + ck * CH;
        uint rows = min(CH, en.count - ck * CH);
        uint block = (en.chunk_base + ck) * P.hv_count + hvl;
        uint wbase = P.w_base + block * CH * DKC;
        for (uint c = t; c < CH; c += WG) kf_sh[c] = f_s[P.f_base + block * 2u * CH + CH + c];
        for (uint e = t; e < CH * DKC; e += WG) kw16[e] = float16_t(w_s[wbase + e]);
        barrier();
        float s_scale = stage_state(P.h_base + block * DKC * P.dvs, col0, ncol);
        barrier();
        w_times_s();
        barrier();
        float v_scale = form_v_prime(P.u_base + block * CH * P.dvs, rows, col0, ncol, s_scale);
        for (uint e = t; e < CH * DKC; e += WG) {
            uint c = e / DKC, i = e % DKC;
            float kv = 0.0;
            if (c < rows && i < P.dk) kv = load_k(vidx(P.k, b, tok0 + c, h, i)) * kf_sh[c];
            kw16[e] = float16_t(kv);
        }
        barrier();
        update_state(v_scale);
        barrier();
    }
    store_state(en, hv, col0, ncol);
}
