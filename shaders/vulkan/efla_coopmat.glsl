// Shared pieces of the cooperative-matrix kernels (GL_KHR_cooperative_matrix,
// f16 operands, f32 accumulation; DESIGN.md "Precision contract"). Requires
// efla_common.glsl and the extensions GL_KHR_cooperative_matrix,
// GL_KHR_memory_scope_semantics, GL_EXT_shader_explicit_arithmetic_types_float16
// and GL_KHR_shader_subgroup_basic.
//
// Operands that are not bounded by construction (states, V') are scaled by a
// power of two per tile before rounding to f16, so that their largest
// element lies in [2^13, 2^14): no overflow and full f16 precision; the
// product is scaled back in f32, exactly.

const uint TM = 16u; // every matrix is 16 x 16

// 1 where the scan hands chunk_out_cm Y = Q^ S_c (f32 [CH][dvs] per
// chunk, in region H) in place of the states H; the prepare then writes the
// unit queries Q^ after W and K^.
layout(constant_id = 6) const uint SCAN_Y = 0u;

// f16 pairs and uvec4 pieces of region W per (chunk, head): W and K^
// [CH][DKC] each, then Q^ [CH][DKC] where SCAN_Y.
uint w_block_pairs() { return (2u + SCAN_Y) * CH * DKC / 2u; }
uint w_block_pieces() { return (2u + SCAN_Y) * CH * DKC / 8u; }

#define CM_A coopmat<float16_t, gl_ScopeSubgroup, TM, TM, gl_MatrixUseA>
#define CM_B coopmat<float16_t, gl_ScopeSubgroup, TM, TM, gl_MatrixUseB>
#define CM_ACC coopmat<float, gl_ScopeSubgroup, TM, TM, gl_MatrixUseAccumulator>
#define CM_ACC16 coopmat<float16_t, gl_ScopeSubgroup, TM, TM, gl_MatrixUseAccumulator>
#define ROW_MAJOR gl_CooperativeMatrixLayoutRowMajor
#define COL_MAJOR gl_CooperativeMatrixLayoutColumnMajor

// Floats of scratch F per (chunk, value head): qfac |q| [CH], kfac [CH], then
// the inverse scales of the f16 tiles of H [DKC / 16][dvs / 16] and of V'
// [CH / 16][dvs / 16] (chunk_scan_cm writes them, chunk_out_cm reads them),
// then at f_diagonal() each token's q^ . k^ in f32 (the diagonal of G, for
// the slab scan that forms the output).
uint f_diagonal() { return 2u * CH + (DKC / TM + CH / TM) * (P.dvs / TM); }
uint f_stride() { return f_diagonal() + CH; }

// 2^(13 - e) for the largest magnitude m = f 2^e (f in [0.5, 1)); 1 for 0.
float pow2_scale(float m) {
    if (!(m > 0.0) || isinf(m)) return 1.0;
    int e;
    frexp(m, e);
    return exp2(float(14 - clamp(e, -100, 100)));
}

// The largest magnitude among this invocation's elements of an accumulator
// (the tile's is the subgroup's maximum of them).
float tile_max(CM_ACC m) {
    float x = 0.0;
    for (int i = 0; i < m.length(); ++i) x = max(x, abs(m[i]));
    return x;
}

// Orders the subgroup's shared-memory writes before its later reads (a
// cooperative-matrix store, then loads by other invocations, or the reverse).
void subgroup_sync() {
    subgroupMemoryBarrierShared();
    subgroupBarrier();
}
