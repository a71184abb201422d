#version 450
#extension GL_GOOGLE_include_directive : require
#extension GL_KHR_cooperative_matrix : require
#extension GL_KHR_memory_scope_semantics : require
#extension GL_EXT_shader_explicit_arithmetic_types_float16 : require
#extension GL_EXT_control_flow_attributes : require
#extension GL_KHR_shader_subgroup_basic : require
#extension GL_KHR_shader_subgroup_arithmetic : require
// The state scan by value-column slabs, for devices that the scan's
// sequences and heads already fill (chunk_scan_cm.comp spreads one slab's
// products over a whole workgroup instead, for when they do not). One
// workgroup per (entry, value head, BV value columns), serial over the
// entry's chunks. Each subgroup (WG = BV / 16 of them, as the plan sizes it)
// owns the slab of its 16 columns, S [DKC x 16], in f32 accumulators; no
// slab needs another's, so the subgroups share only the chunk's W and K^,
// staged in shared memory. Per chunk c, for each slab:
//   H[c] = S_c                      (S_c published as f16, scaled)
//   V'   = U - W S_c
//   S   += K^^T V'                  (V' published as f16, scaled)
// S_c and V' become B operands through the subgroup's own rows of shared
// memory, from which they are also copied to the scratch in 16-byte pieces
// (f16 tiles with each tile's inverse scale in F, f_stride(), for
// chunk_out_cm). One power of two scales a whole slab, so its products
// accumulate unscaled. The next chunk's W and K^ (and U) load into
// registers while this chunk computes. Two workgroup barriers per chunk,
// around the staging. Requires DKC, BV and CH multiples of 16 and WG =
// (BV / 16) x the subgroup size (what a SPIR-V 1.3 module gets).
#include "efla_common.glsl"
#include "efla_coopmat.glsl"

layout(std430, set = 0, binding = 9) readonly buffer WBuf { uvec4 w4[]; }; // W, K^ (f16)
layout(std430, set = 0, binding = 10) readonly buffer UBuf { float u_s[]; };
// V' and H as f16 tiles (eight to a uvec4: offsets and strides count uvec4s).
layout(std430, set = 0, binding = 11) writeonly buffer VTileBuf { uvec4 v4[]; };
layout(std430, set = 0, binding = 12) writeonly buffer FBuf { float f_s[]; };
layout(std430, set = 0, binding = 13) writeonly buffer HBuf { uvec4 h4[]; };

const uint RT = DKC / TM;                  // state row tiles of a slab
const uint VT = CH / TM;                   // V' row tiles of a slab
const uint CT = BV / TM;                   // slabs (and subgroups) per workgroup
const uint PIECES = CH * DKC / 8u;         // uvec4 of a chunk's W (and of its K^)
const uint PV = (PIECES + WG - 1u) / WG;   // of them per invocation
const uint KQ = DKC / 8u + 1u;             // W and K^ row pitch in shared (uvec4)
const uint RQ = 3u;                        // slab row pitch in shared (uvec4: 16 f16 + 8 pad)
const uint ROWS = DKC > CH ? DKC : CH;
const uint SLAB4 = ROWS * RQ;              // uvec4 of one subgroup's rows

shared uvec4 w16[CH * KQ];
shared uvec4 k16[CH * KQ];
// Each subgroup's rows: S_c [DKC], later V' [CH] (f16, 16 to a row); before
// and after the chunks, one f32 state tile on its way in or out.
shared uvec4 rows[CT * SLAB4];

// State tile rows r0.. of the slab (tensor columns col..) through the
// subgroup's rows as f32.
void state_tile_in(inout CM_ACC m, Entry en, uint hv, uint base, uint r0, uint col) {
    bool read_state = (en.flags & ENTRY_READ_STATE) != 0u;
    for (uint e = gl_SubgroupInvocationID; e < TM * TM; e += gl_SubgroupSize) {
        uint i = r0 + e / TM, j = col + e % TM;
        float x = 0.0;
        if (read_state && i < P.dk && j < P.dv) x = sin_w[vidx(P.sin_, en.state_row, hv, i, j)];
        rows[base + e / 4u][e % 4u] = floatBitsToUint(x);
    }
    subgroup_sync();
    coopMatLoad(m, rows, base, TM / 4u, ROW_MAJOR);
    subgroup_sync();
}

void state_tile_out(CM_ACC m, Entry en, uint hv, uint base, uint r0, uint col) {
    coopMatStore(m, rows, base, TM / 4u, ROW_MAJOR);
    subgroup_sync();
    for (uint e = gl_SubgroupInvocationID; e < TM * TM; e += gl_SubgroupSize) {
        uint i = r0 + e / TM, j = col + e % TM;
        if (i < P.dk && j < P.dv)
            sout_w[vidx(P.sout, en.state_row, hv, i, j)] = uintBitsToFloat(rows[base + e / 4u][e % 4u]);
    }
    subgroup_sync();
}

// The subgroup's f16 rows to the scratch (rows of dvs f16 from uvec4 `to`,
// the slab's first column), 16 bytes a piece: S_c to H, V' to its tiles.
void copy_state(uint base, uint to) {
    for (uint e = gl_SubgroupInvocationID; e < 2u * DKC; e += gl_SubgroupSize)
        h4[to + (e / 2u) * (P.dvs / 8u) + e % 2u] = rows[base + (e / 2u) * RQ + e % 2u];
}

void copy_v(uint base, uint to) {
    for (uint e = gl_SubgroupInvocationID; e < 2u * CH; e += gl_SubgroupSize)
        v4[to + (e / 2u) * (P.dvs / 8u) + e % 2u] = rows[base + (e / 2u) * RQ + e % 2u];
}

// Where uvec4 number `idx` of a chunk's W or K^ rows goes in shared.
uint padded(uint idx) { return (idx / (DKC / 8u)) * KQ + idx % (DKC / 8u); }

void main() {
    uint t = gl_LocalInvocationIndex;
    uint hvl = gl_WorkGroupID.y;
    uint hv = P.hv_base + hvl;
    Entry en = entries[pc.entry_base + gl_WorkGroupID.z];
    uint col = gl_WorkGroupID.x * BV + gl_SubgroupID * TM; // the slab's first column
    bool owns_slab = col < P.dvs; // past Dv a subgroup only helps with the staging
    uint base = gl_SubgroupID * SLAB4;
    uint chunks = (en.count + CH - 1u) / CH;
    uint ctg = P.dvs / TM;

    CM_ACC st[RT];
    [[unroll]] for (uint r = 0u; r < RT; ++r) {
        st[r] = CM_ACC(0.0);
        if (owns_slab) state_tile_in(st[r], en, hv, base, r * TM, col);
    }

    uvec4 wpf[PV], kpf[PV];
    CM_ACC u[VT];
    if (chunks > 0u) {
        uint block = en.chunk_base * P.hv_count + hvl;
        uint base4 = block * (2u * PIECES);
        [[unroll]] for (uint m = 0u; m < PV; ++m) {
            uint idx = t + WG * m;
            if (idx < PIECES) {
                wpf[m] = w4[base4 + idx];
                kpf[m] = w4[base4 + PIECES + idx];
            }
        }
        [[unroll]] for (uint i = 0u; i < VT; ++i) {
            u[i] = CM_ACC(0.0);
            if (owns_slab)
                coopMatLoad(u[i], u_s, P.u_base + block * CH * P.dvs + i * TM * P.dvs + col, P.dvs,
                            ROW_MAJOR);
        }
    }
    for (uint ck = 0u; ck < chunks; ++ck) {
        uint block = (en.chunk_base + ck) * P.hv_count + hvl;
        // Stage this chunk's W and K^, loaded a chunk ago.
        barrier(); // every subgroup is done with the last chunk's
        [[unroll]] for (uint m = 0u; m < PV; ++m) {
            uint idx = t + WG * m;
            if (idx < PIECES) {
                w16[padded(idx)] = wpf[m];
                k16[padded(idx)] = kpf[m];
            }
        }
        barrier();
        if (ck + 1u < chunks) {
            uint base4 = (block + P.hv_count) * (2u * PIECES);
            [[unroll]] for (uint m = 0u; m < PV; ++m) {
                uint idx = t + WG * m;
                if (idx < PIECES) {
                    wpf[m] = w4[base4 + idx];
                    kpf[m] = w4[base4 + PIECES + idx];
                }
            }
        }
        if (!owns_slab) continue;
        uint fbase = P.f_base + block * f_stride() + 2u * CH;
        uint lane = gl_SubgroupInvocationID;

        // Publish S_c: f16, one scale for the slab, to the rows, then to H[c].
        float m = 0.0;
        [[unroll]] for (uint r = 0u; r < RT; ++r) m = max(m, tile_max(st[r]));
        float sc = pow2_scale(subgroupMax(m));
        [[unroll]] for (uint r = 0u; r < RT; ++r)
            coopMatStore(CM_ACC16(st[r] * sc), rows, base + r * TM * RQ, RQ, ROW_MAJOR);
        if (lane < RT) f_s[fbase + lane * ctg + col / TM] = 1.0 / sc;
        subgroup_sync();
        copy_state(base, (block * DKC * P.dvs + col) / 8u);

        // V' = U - W S_c: the products accumulate unscaled, then one scale.
        CM_ACC p[VT];
        [[unroll]] for (uint i = 0u; i < VT; ++i) p[i] = CM_ACC(0.0);
        [[unroll]] for (uint r = 0u; r < RT; ++r) {
            CM_B b;
            coopMatLoad(b, rows, base + r * TM * RQ, RQ, ROW_MAJOR);
            [[unroll]] for (uint i = 0u; i < VT; ++i) {
                CM_A a;
                coopMatLoad(a, w16, i * TM * KQ + r * TM / 8u, KQ, ROW_MAJOR);
                p[i] = coopMatMulAdd(a, b, p[i]);
            }
        }
        float inv = 1.0 / sc;
        m = 0.0;
        [[unroll]] for (uint i = 0u; i < VT; ++i) {
            p[i] = u[i] - p[i] * inv;
            m = max(m, tile_max(p[i]));
        }
        if (ck + 1u < chunks)
            [[unroll]] for (uint i = 0u; i < VT; ++i)
                coopMatLoad(u[i], u_s, P.u_base + (block + P.hv_count) * CH * P.dvs + i * TM * P.dvs + col,
                            P.dvs, ROW_MAJOR);
        float scv = pow2_scale(subgroupMax(m));
        subgroup_sync(); // S_c's reads are done before V' takes its rows
        [[unroll]] for (uint i = 0u; i < VT; ++i)
            coopMatStore(CM_ACC16(p[i] * scv), rows, base + i * TM * RQ, RQ, ROW_MAJOR);
        if (lane < VT) f_s[fbase + (RT + lane) * ctg + col / TM] = 1.0 / scv;
        subgroup_sync();
        copy_v(base, (block * CH * P.dvs + col) / 8u);

        // S += K^^T V' (K^^T read column-major from the rows of K^).
        CM_B vb[VT];
        [[unroll]] for (uint i = 0u; i < VT; ++i)
            coopMatLoad(vb[i], rows, base + i * TM * RQ, RQ, ROW_MAJOR);
        float vinv = 1.0 / scv;
        [[unroll]] for (uint r = 0u; r < RT; ++r) {
            CM_ACC d = CM_ACC(0.0);
            [[unroll]] for (uint i = 0u; i < VT; ++i) {
                CM_A a;
                coopMatLoad(a, k16, i * TM * KQ + r * TM / 8u, KQ, COL_MAJOR);
                d = coopMatMulAdd(a, vb[i], d);
            }
            st[r] = st[r] + d * vinv;
        }
        subgroup_sync(); // V''s reads are done before the next S_c
    }
    if (owns_slab && (en.flags & ENTRY_WRITE_STATE) != 0u)
        [[unroll]] for (uint r = 0u; r < RT; ++r) state_tile_out(st[r], en, hv, base, r * TM, col);
}
