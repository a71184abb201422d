#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
#extension GL_EXT_control_flow_attributes : require
// The state scan of the split chunked forward on cooperative matrices (see
// chunk_scan.comp for the portable one). One workgroup per (entry, value
// head, Dv tile of BV columns), serial over the entry's chunks; only what
// must be serial. The state tile S [DKC x BV] lives in f32 accumulators for
// the whole entry (subgroup g owns the 16 x 16 tiles g, g + subgroups, ...).
// Per chunk c, with W and K^ (f16, from chunk_prep_cm) staged in shared:
//   H[c] = S_c                      (S_c published as f16, per tile scaled)
//   V'   = U - W S_c
//   S   += K^^T V'                  (V' published as f16, per tile scaled)
// H[c] and V' go to the scratch as those f16 tiles (copied from shared in
// 16-byte pieces), with each tile's inverse scale in F (f_stride()), for
// chunk_out_cm to read as operands; with SCAN_Y, Y = Q^ S_c (f32) goes there
// in place of H.
// Two barriers per chunk. The next chunk's W and K^ are loaded into
// registers while this one computes. Requires DKC, BV multiples of 16, CH a
// multiple of 16, subgroups of 32 or 64 invocations. Shared rows are padded
// by 16 bytes (KQ, SP) so that the eight rows a cooperative-matrix load
// reads together fall on different bank groups.
#include "efla_common.glsl"
#include "efla_coopmat.glsl"

layout(std430, set = 0, binding = 9) readonly buffer WBuf { uvec4 w4[]; }; // W, K^ (f16)
layout(std430, set = 0, binding = 10) readonly buffer UBuf { float u_s[]; };
// V' and H as f16 tiles (eight to a uvec4: offsets and strides count uvec4s).
layout(std430, set = 0, binding = 11) writeonly buffer VTileBuf { uvec4 v4[]; };
layout(std430, set = 0, binding = 12) writeonly buffer FBuf { float f_s[]; };
layout(std430, set = 0, binding = 13) writeonly buffer HBuf { uvec4 h4[]; };
layout(std430, set = 0, binding = 13) writeonly buffer YBuf { float y_s[]; }; // Y (SCAN_Y)

const uint RT = DKC / TM;                  // state row tiles
const uint CT = BV / TM;                   // state column tiles
const uint VT = CH / TM;                   // V' row tiles
const uint NSG_MIN = WG / 64u;             // fewest subgroups the workgroup can have
const uint ST = (RT * CT + NSG_MIN - 1u) / NSG_MIN; // state tiles per subgroup, at most
const uint PV = CH * DKC / 8u / WG;        // uvec4 of W (and of K^) per invocation
const uint KQ = DKC / 8u + 1u;             // W and K^ row pitch in shared (uvec4)
const uint SP = BV + 8u;                   // S_c and V' row pitch in shared (f16)
const uint SV = (DKC + CH) * SP / 8u;      // uvec4 of S_c and V'
const uint BOUNCE = (WG / 32u) * TM * TM / 4u; // uvec4: one f32 tile per subgroup
const uint UT = (VT * CT + NSG_MIN - 1u) / NSG_MIN; // U tiles per subgroup, at most
const uint JT = (2u * VT * CT + NSG_MIN - 1u) / NSG_MIN; // V' and Y tiles per subgroup, at most

// W and K^ of this chunk as they arrive (eight f16 per uvec4; the
// cooperative-matrix loads count offsets and strides in uvec4s).
shared uvec4 w16[CH * KQ];
shared uvec4 k16[CH * KQ];
// S_c [DKC][SP] then V' [CH][SP], f16, each tile scaled (offsets count f16 /
// 8); before and after the chunks, the subgroups' f32 tiles of the state on
// its way in and out.
shared uvec4 sv[SV > BOUNCE ? SV : BOUNCE];
shared float s_inv[(RT * CT + 3u) / 4u * 4u]; // 1 / scale of each S_c tile (whole 16 bytes)
shared float v_inv[(VT * CT + 3u) / 4u * 4u]; // 1 / scale of each V' tile (whole 16 bytes)
const uint V16 = DKC * SP; // where V' starts in sv (f16)

// The power-of-two scale of an accumulator tile (all of its subgroup).
float tile_scale(CM_ACC m) { return pow2_scale(subgroupMax(tile_max(m))); }

// The subgroup's bounce tile (f32 [TM][TM] in sv, uvec4 base) <-> state
// rows r0.., columns c0.. of the tensor.
void state_tile_in(inout CM_ACC m, Entry en, uint hv, uint r0, uint c0, uint col0, uint ncol) {
    uint base = gl_SubgroupID * TM * TM / 4u;
    bool read_state = (en.flags & ENTRY_READ_STATE) != 0u;
    for (uint e = gl_SubgroupInvocationID; e < TM * TM; e += gl_SubgroupSize) {
        uint i = r0 + e / TM, jj = c0 + e % TM;
        float x = 0.0;
        if (read_state && i < P.dk && jj < ncol)
            x = sin_w[vidx(P.sin_, en.state_row, hv, i, col0 + jj)];
        sv[base + e / 4u][e % 4u] = floatBitsToUint(x);
    }
    subgroup_sync();
    coopMatLoad(m, sv, base, TM / 4u, ROW_MAJOR);
    subgroup_sync();
}

void state_tile_out(CM_ACC m, Entry en, uint hv, uint r0, uint c0, uint col0, uint ncol) {
    uint base = gl_SubgroupID * TM * TM / 4u;
    coopMatStore(m, sv, base, TM / 4u, ROW_MAJOR);
    subgroup_sync();
    for (uint e = gl_SubgroupInvocationID; e < TM * TM; e += gl_SubgroupSize) {
        uint i = r0 + e / TM, jj = c0 + e % TM;
        if (i < P.dk && jj < ncol)
            sout_w[vidx(P.sout, en.state_out_row, hv, i, col0 + jj)] = uintBitsToFloat(sv[base + e / 4u][e % 4u]);
    }
    subgroup_sync();
}

// S_c and V' from their shared rows to the scratch (rows of dvs f16 from
// f16 `first`, columns col0..), 16 bytes a piece by the whole workgroup:
// coalesced, where the accumulators' own stores scatter 4-byte pieces.
void copy_state(uint first, uint col0) {
    const uint PIECES = BV / 8u; // of a row
    for (uint e = gl_LocalInvocationIndex; e < DKC * PIECES; e += WG) {
        uint r = e / PIECES, q = e % PIECES;
        if (col0 + 8u * q < P.dvs) h4[(first + r * P.dvs + col0) / 8u + q] = sv[r * (SP / 8u) + q];
    }
}

void copy_v(uint first, uint col0) {
    const uint PIECES = BV / 8u;
    for (uint e = gl_LocalInvocationIndex; e < CH * PIECES; e += WG) {
        uint r = e / PIECES, q = e % PIECES;
        if (col0 + 8u * q < P.dvs)
            v4[(first + r * P.dvs + col0) / 8u + q] = sv[(V16 + r * SP) / 8u + q];
    }
}

// Y = Q^ S_c (SCAN_Y): its tiles are jobs VT CT.. of the subgroups, after
// the V' tiles, so that where there are subgroups enough they are formed by
// subgroups that have no V' tile, beside those that do. Q^ is read straight
// from the scratch (A operands), S_c from its shared rows.
void y_tiles(uint block, uint col0) {
    const uint sg = gl_SubgroupID, nsg = gl_NumSubgroups;
    uint q4 = block * w_block_pieces() + 2u * CH * DKC / 8u;
    [[unroll]] for (uint m = 0u; m < JT; ++m) {
        uint job = sg + nsg * m;
        if (job < VT * CT || job >= 2u * VT * CT) continue;
        uint tile = job - VT * CT;
        uint r0 = (tile / CT) * TM, c0 = (tile % CT) * TM;
        if (col0 + c0 >= P.dvs) continue;
        CM_ACC y = CM_ACC(0.0);
        [[unroll]] for (uint r = 0u; r < RT; ++r) {
            CM_A a;
            CM_B b;
            coopMatLoad(a, w4, q4 + (r0 * DKC + r * TM) / 8u, DKC / 8u, ROW_MAJOR);
            coopMatLoad(b, sv, (r * TM * SP + c0) / 8u, SP / 8u, ROW_MAJOR);
            y = y + coopMatMulAdd(a, b, CM_ACC(0.0)) * s_inv[r * CT + tile % CT];
        }
        coopMatStore(y, y_s, P.h_base + block * CH * P.dvs + r0 * P.dvs + col0 + c0, P.dvs,
                     ROW_MAJOR);
    }
}

// Where uvec4 number `idx` of a chunk's W or K^ rows goes in shared.
uint padded(uint idx) { return (idx / (DKC / 8u)) * KQ + idx % (DKC / 8u); }

void main() {
    const uint sg = gl_SubgroupID, nsg = gl_NumSubgroups;
    uint t = gl_LocalInvocationIndex;
    uint hvl = gl_WorkGroupID.y;
    uint hv = P.hv_base + hvl;
    Entry en = entries[pc.entry_base + gl_WorkGroupID.z];
    uint col0 = gl_WorkGroupID.x * BV;
    uint ncol = min(BV, P.dv - col0);
    uint chunks = (en.count + CH - 1u) / CH;

    CM_ACC st[ST];
    [[unroll]] for (uint m = 0u; m < ST; ++m) {
        uint tile = sg + nsg * m;
        st[m] = CM_ACC(0.0);
        if (tile < RT * CT)
            state_tile_in(st[m], en, hv, (tile / CT) * TM, (tile % CT) * TM, col0, ncol);
    }
    barrier(); // the bounce tiles are over S_c's shared rows

    uvec4 wpf[PV], kpf[PV];
    if (chunks > 0u) {
        uint base4 = (en.chunk_base * P.hv_count + hvl) * w_block_pieces();
        [[unroll]] for (uint m = 0u; m < PV; ++m) {
            w16[padded(t + WG * m)] = w4[base4 + t + WG * m];
            k16[padded(t + WG * m)] = w4[base4 + CH * DKC / 8u + t + WG * m];
        }
    }
    for (uint ck = 0u; ck < chunks; ++ck) {
        // This chunk's U tiles start loading now, a barrier before they are used.
        uint block = (en.chunk_base + ck) * P.hv_count + hvl;
        uint ubase = P.u_base + block * CH * P.dvs;
        CM_ACC upf[UT];
        [[unroll]] for (uint m = 0u; m < UT; ++m) {
            uint tile = sg + nsg * m;
            uint r0 = (tile / CT) * TM, c0 = (tile % CT) * TM;
            upf[m] = CM_ACC(0.0);
            if (tile < VT * CT && col0 + c0 < P.dvs)
                coopMatLoad(upf[m], u_s, ubase + r0 * P.dvs + col0 + c0, P.dvs, ROW_MAJOR);
        }
        // Publish S_c: f16 per tile, scaled, in shared and as H[c]; then the
        // stage and S_c are ready.
        uint ctg = P.dvs / TM, fscale = P.f_base + block * f_stride() + 2u * CH;
        [[unroll]] for (uint m = 0u; m < ST; ++m) {
            uint tile = sg + nsg * m;
            if (tile >= RT * CT) continue;
            uint r0 = (tile / CT) * TM, c0 = (tile % CT) * TM;
            float sc = tile_scale(st[m]);
            CM_ACC16 s_c = CM_ACC16(st[m] * sc);
            coopMatStore(s_c, sv, (r0 * SP + c0) / 8u, SP / 8u, ROW_MAJOR);
            bool inside = col0 + c0 < P.dvs;
            if (subgroupElect()) {
                s_inv[tile] = 1.0 / sc;
                if (inside && SCAN_Y == 0u) f_s[fscale + (r0 / TM) * ctg + (col0 + c0) / TM] = 1.0 / sc;
            }
        }
        barrier();
        if (SCAN_Y == 0u) copy_state(block * DKC * P.dvs, col0);
        if (ck > 0u)
            [[unroll]] for (uint m = 0u; m < PV; ++m) k16[padded(t + WG * m)] = kpf[m];
        if (ck + 1u < chunks) {
            uint base4 = (block + P.hv_count) * w_block_pieces();
            [[unroll]] for (uint m = 0u; m < PV; ++m) {
                wpf[m] = w4[base4 + t + WG * m];
                kpf[m] = w4[base4 + CH * DKC / 8u + t + WG * m];
            }
        }
        // V' = U - W S_c, to v16 and the scratch (f16, scaled).
        [[unroll]] for (uint m = 0u; m < UT; ++m) {
            uint tile = sg + nsg * m;
            if (tile >= VT * CT) continue;
            uint r0 = (tile / CT) * TM, c0 = (tile % CT) * TM;
            bool inside = col0 + c0 < P.dvs;
            CM_ACC v = upf[m];
            [[unroll]] for (uint r = 0u; r < RT; ++r) {
                CM_A a;
                CM_B b;
                coopMatLoad(a, w16, r0 * KQ + r * TM / 8u, KQ, ROW_MAJOR);
                coopMatLoad(b, sv, (r * TM * SP + c0) / 8u, SP / 8u, ROW_MAJOR);
                CM_ACC p = coopMatMulAdd(a, b, CM_ACC(0.0));
                v = v - p * s_inv[r * CT + tile % CT];
            }
            float sc = tile_scale(v);
            CM_ACC16 vh = CM_ACC16(v * sc);
            coopMatStore(vh, sv, (V16 + r0 * SP + c0) / 8u, SP / 8u, ROW_MAJOR);
            if (subgroupElect()) {
                v_inv[tile] = 1.0 / sc;
                if (inside) f_s[fscale + (RT + r0 / TM) * ctg + (col0 + c0) / TM] = 1.0 / sc;
            }
        }
        if (SCAN_Y == 1u) y_tiles(block, col0);
        barrier();
        copy_v(block * CH * P.dvs, col0);
        // S += K^^T V' (K^^T read column-major from the rows of k16).
        [[unroll]] for (uint m = 0u; m < ST; ++m) {
            uint tile = sg + nsg * m;
            if (tile >= RT * CT) continue;
            uint r0 = (tile / CT) * TM, c0 = (tile % CT) * TM;
            CM_ACC d = st[m];
            [[unroll]] for (uint i = 0u; i < VT; ++i) {
                CM_A a;
                CM_B b;
                coopMatLoad(a, k16, i * TM * KQ + r0 / 8u, KQ, COL_MAJOR);
                coopMatLoad(b, sv, (V16 + i * TM * SP + c0) / 8u, SP / 8u, ROW_MAJOR);
                CM_ACC p = coopMatMulAdd(a, b, CM_ACC(0.0));
                d = d + p * v_inv[i * CT + tile % CT];
            }
            st[m] = d;
        }
        // W is read only before the second barrier: the next one goes in now.
        if (ck + 1u < chunks)
            [[unroll]] for (uint m = 0u; m < PV; ++m) w16[padded(t + WG * m)] = wpf[m];
    }
    barrier(); // the last chunk's V' reads are done before the bounce tiles
    [[unroll]] for (uint m = 0u; m < ST; ++m) {
        uint tile = sg + nsg * m;
        if (tile < RT * CT && (en.flags & ENTRY_WRITE_STATE) != 0u)
            state_tile_out(st[m], en, hv, (tile / CT) * TM, (tile % CT) * TM, col0, ncol);
    }
}
