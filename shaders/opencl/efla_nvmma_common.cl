/*
 * NVIDIA tensor cores from OpenCL C: inline PTX mma.sync m16n8k16 with f16
 * or bf16 operands (the storage dtype's) and f32 accumulation, sm_80+.
 * Built only for the "nvmma" path (EFLA_NVMMA, 16-bit storage, an NVIDIA
 * platform whose device reports compute capability 8.0 or newer): no other
 * OpenCL compiler accepts this file.
 *
 * A warp is 32 consecutive work-items of a 1-D work-group whose size is a
 * multiple of 32 (NVIDIA's mapping); lane = lid % 32, g = lane / 4,
 * c = lane % 4. Fragments (PTX ISA, "Matrix Fragments for mma.m16n8k16"),
 * each 32-bit register two 16-bit values, the lower index in the low half:
 *   A 16x16 row-major: a0 = A[g][2c, 2c+1], a1 = A[g+8][2c..], a2 = A[g][2c+8..],
 *                      a3 = A[g+8][2c+8..]
 *   B 16x8 (k x n):    b0 = B[2c, 2c+1][g], b1 = B[2c+8, 2c+9][g]
 *   D 16x8 f32:        d.x = D[g][2c], d.y = D[g][2c+1], d.z = D[g+8][2c],
 *                      d.w = D[g+8][2c+1]
 * B is kept as its transpose Bt[n][k] in local memory so that every
 * register is one aligned 32-bit load. Local 16-bit tiles are declared as
 * uint arrays (4-byte aligned) and addressed in 16-bit units.
 */
#if EFLA_STORAGE == 2
#define EFLA_MMA_NAME "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
#elif EFLA_STORAGE == 3
#define EFLA_MMA_NAME "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
#else
#error "the nvmma kernels need 16-bit storage"
#endif

/* The storage dtype's 16-bit pattern of x, rounded to nearest even. */
ushort efla_half_bits(float x) {
#if EFLA_STORAGE == 2
    ushort bits;
    vstore_half_rte(x, 0, (half *)&bits);
    return bits;
#else
    uint u = as_uint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (ushort)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (ushort)(u >> 16);
#endif
}

/* The value of a storage dtype 16-bit pattern. */
float efla_half_value(uint bits) {
#if EFLA_STORAGE == 2
    const ushort h = (ushort)bits;
    return vload_half(0, (const half *)&h);
#else
    return as_float(bits << 16);
#endif
}

#ifndef EFLA_NVMMA_EMULATE
/* d += A B for one 16x8x16 tile (all 32 lanes of the warp, converged). */
#define EFLA_MMA_PARAM
#define EFLA_MMA_ARG
#define EFLA_MMA_DECLARE
#define EFLA_MMA_UNROLL _Pragma("unroll") /* loops around mma calls */
float4 efla_mma(float4 d, uint4 a, uint2 b) {
    float x, y, z, w;
    asm volatile(EFLA_MMA_NAME "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%10,%11,%12,%13};"
                 : "=f"(x), "=f"(y), "=f"(z), "=f"(w)
                 : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b.x), "r"(b.y), "f"(d.x), "f"(d.y),
                   "f"(d.z), "f"(d.w));
    return (float4)(x, y, z, w);
}
#else
/* Tests only (-DEFLA_NVMMA_EMULATE, any OpenCL device): the same product
 * from the same fragments, exchanged through local memory, so that the
 * fragment layouts and the kernels' logic run under PoCL. Every item of the
 * work-group calls it the same number of times (the kernels call mma
 * only under conditions uniform over the work-group), so it may hold
 * barriers. Kernels declare the
 * exchange area with EFLA_MMA_DECLARE and pass it down with EFLA_MMA_ARG. */
#define EFLA_MMA_PARAM , __local uint *efla_mma_area
#define EFLA_MMA_ARG , efla_mma_area
#define EFLA_MMA_DECLARE __local uint efla_mma_area[EFLA_MAX2(4 * EFLA_C, EFLA_WG) * 6];
/* Not unrolled: each call holds two barriers, which PoCL's compiler turns
 * into work-item loops; unrolled, its compile time explodes. */
#define EFLA_MMA_UNROLL _Pragma("unroll 1")

/* A[row][k] lives in lane 4 (row % 8) + (k % 8) / 2, register
 * (row >= 8) + 2 (k >= 8), half k % 2; B[k][col] in lane 4 col + (k % 8) / 2,
 * register 4 + (k >= 8), half k % 2. */
float4 efla_mma(float4 d, uint4 a, uint2 b, __local uint *area) {
    const int lid = get_local_id(0), lane = lid % 32;
    __local uint *w = area + (lid / 32) * 32 * 6;
    barrier(CLK_LOCAL_MEM_FENCE);
    w[lane * 6 + 0] = a.x;
    w[lane * 6 + 1] = a.y;
    w[lane * 6 + 2] = a.z;
    w[lane * 6 + 3] = a.w;
    w[lane * 6 + 4] = b.x;
    w[lane * 6 + 5] = b.y;
    barrier(CLK_LOCAL_MEM_FENCE);
    const int g = lane / 4, c = lane % 4;
    float out[4] = {d.x, d.y, d.z, d.w};
    for (int e = 0; e < 4; ++e) {
        const int row = g + (e >= 2 ? 8 : 0), col = 2 * c + (e & 1);
        float sum = 0.0f;
        for (int k = 0; k < 16; ++k) {
            const int owner = (k % 8) / 2, shift = 16 * (k % 2);
            const uint a_word = w[(4 * (row % 8) + owner) * 6 + (row >= 8) + 2 * (k >= 8)];
            const uint b_word = w[(4 * col + owner) * 6 + 4 + (k >= 8)];
            sum += efla_half_value((a_word >> shift) & 0xffffu) *
                   efla_half_value((b_word >> shift) & 0xffffu);
        }
        out[e] += sum;
    }
    return (float4)(out[0], out[1], out[2], out[3]);
}
#endif

/* x as hi + lo, both in the storage dtype (hi = x rounded, lo = the rest
 * rounded): a product over both halves carries about twice the bits. The
 * chunk form cancels heavily where the erase is large (Dk = 1 at worst:
 * the rows of Ainv sum to products of (1 - e)), so operands that are not
 * exact in 16 bits are split. */
ushort2 efla_split_bits(float x) {
    const ushort hi = efla_half_bits(x);
    return (ushort2)(hi, efla_half_bits(x - efla_half_value(hi)));
}

/* A stored 16-bit element's bits, unconverted. */
ushort efla_raw_bits(__global const store_t *p, long i) { return ((__global const ushort *)p)[i]; }

/* The 32-bit word at 16-bit index i (even) of a local 16-bit tile. */
uint efla_word(__local const ushort *tile, int i) { return *(__local const uint *)(tile + i); }

/* The A fragment of rows row0.., columns k0.. of a row-major tile. */
uint4 efla_frag_a(__local const ushort *tile, int pitch, int row0, int k0) {
    const int lane = get_local_id(0) % 32, g = lane / 4, c = lane % 4;
    const int i = (row0 + g) * pitch + k0 + 2 * c;
    return (uint4)(efla_word(tile, i), efla_word(tile, i + 8 * pitch), efla_word(tile, i + 8),
                   efla_word(tile, i + 8 * pitch + 8));
}

/* The B fragment of columns n0..n0+7, rows k0.. from Bt[n][k]. */
uint2 efla_frag_b(__local const ushort *tile_t, int pitch, int n0, int k0) {
    const int lane = get_local_id(0) % 32, g = lane / 4, c = lane % 4;
    const int i = (n0 + g) * pitch + k0 + 2 * c;
    return (uint2)(efla_word(tile_t, i), efla_word(tile_t, i + 8));
}

/* ---- C x C blocks spread over the warps of an EFLA_WG work-group ---- */

#define EFLA_MMA_WARPS (EFLA_WG / 32)
#define EFLA_MMA_RB (EFLA_C / 16) /* row blocks of 16 */
/* 16x8 tiles of a C x C block per warp: tile t = warp + WARPS i is rows
 * 16 (t % RB).., columns 8 (t / RB)... */
#define EFLA_MMA_PT (EFLA_MMA_RB * (EFLA_C / 8) / EFLA_MMA_WARPS)

/* acc[i] += X Y over k = 0..k_len (a multiple of 16) for the warp's tiles:
 * X row-major [C][k], Y as Yt [C][k], both with row pitch `pitch`. */
void efla_mma_block(__local const ushort *x, __local const ushort *yt, int pitch, int k_len,
                    float4 acc[EFLA_MMA_PT] EFLA_MMA_PARAM) {
    const int warp = get_local_id(0) / 32;
    for (int k0 = 0; k0 < k_len; k0 += 16) {
        EFLA_MMA_UNROLL
        for (int i = 0; i < EFLA_MMA_PT; ++i) {
            const int t = warp + EFLA_MMA_WARPS * i;
            const uint4 a = efla_frag_a(x, pitch, 16 * (t % EFLA_MMA_RB), k0);
            const uint2 b = efla_frag_b(yt, pitch, 8 * (t / EFLA_MMA_RB), k0);
            acc[i] = efla_mma(acc[i], a, b EFLA_MMA_ARG);
        }
    }
}

/* Row and column in the C x C block of element e (0..3) of the warp's tile i. */
int2 efla_mma_position(int i, int e) {
    const int lane = get_local_id(0) % 32, t = get_local_id(0) / 32 + EFLA_MMA_WARPS * i;
    return (int2)(16 * (t % EFLA_MMA_RB) + lane / 4 + (e >= 2 ? 8 : 0),
                  8 * (t / EFLA_MMA_RB) + 2 * (lane % 4) + (e & 1));
}

float efla_mma_element(float4 d, int e) { return e == 0 ? d.x : e == 1 ? d.y : e == 2 ? d.z : d.w; }
