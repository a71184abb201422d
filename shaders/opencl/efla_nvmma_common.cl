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
/* Helpers that take register arrays: inlined, so that the arrays stay in
 * registers (clang's PTX kept the prepare's and output's on the stack). */
#define EFLA_NV_INLINE __attribute__((always_inline))
/* d += A B for one 16x8x16 tile (all 32 lanes of the warp, converged). */
#define EFLA_MMA_PARAM
#define EFLA_MMA_ARG
#define EFLA_MMA_DECLARE(items)
#define EFLA_MMA_UNROLL _Pragma("unroll") /* loops around mma calls */
#define EFLA_MMA_LOOP                     /* the same, with a run-time trip count */
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
#define EFLA_NV_INLINE /* small code: PoCL's compile time grows fast with inlining */
#define EFLA_MMA_PARAM , __local uint *efla_mma_area
#define EFLA_MMA_ARG , efla_mma_area
#define EFLA_MMA_DECLARE(items) __local uint efla_mma_area[(items)*6];
/* Not unrolled: each call holds two barriers, which PoCL's compiler turns
 * into work-item loops; unrolled, its compile time explodes. */
#define EFLA_MMA_UNROLL _Pragma("unroll 1")
#define EFLA_MMA_LOOP _Pragma("unroll 1")

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

/* Whether every work-item must make the same mma calls: the emulation's
 * calls hold barriers, so loops whose trip counts differ between warps run
 * to the common bound there, with zero fragments (EFLA_MMA_SKIP). */
#ifdef EFLA_NVMMA_EMULATE
#define EFLA_MMA_SKIP(dead)
#else
#define EFLA_MMA_SKIP(dead)                                                                        \
    if (dead) continue;
#endif

/* Two f32 as one register of two 16-bit values, `lo` in the low half: the
 * accumulator pair d.x, d.y (or d.z, d.w) of an n8 tile as an A register
 * of the k16 block the tile's columns fall in. On the device one
 * cvt.rn.{f16,bf16}x2.f32 (sm_80+; its first source goes to the high
 * half), as the CUDA kernels' __floats2bfloat162_rn: round to nearest
 * even like efla_half_bits, only a NaN's payload may differ. */
#ifndef EFLA_NVMMA_EMULATE
#if EFLA_STORAGE == 2
#define EFLA_CVT_NAME "cvt.rn.f16x2.f32 "
#else
#define EFLA_CVT_NAME "cvt.rn.bf16x2.f32 "
#endif
uint efla_pack2(float lo, float hi) {
    uint bits;
    asm(EFLA_CVT_NAME "%0, %1, %2;" : "=r"(bits) : "f"(hi), "f"(lo));
    return bits;
}
#else
uint efla_pack2(float lo, float hi) {
    return (uint)efla_half_bits(lo) | ((uint)efla_half_bits(hi) << 16);
}
#endif

/* The A fragment of k block kb from the D fragments of its n8 tiles 2 kb
 * (even) and 2 kb + 1 (odd): a result feeds the next product in registers. */
uint4 efla_acc_to_a(float4 even, float4 odd) {
    return (uint4)(efla_pack2(even.x, even.y), efla_pack2(even.z, even.w), efla_pack2(odd.x, odd.y),
                   efla_pack2(odd.z, odd.w));
}

/* ---- the nvmma scratch: matrices stored in fragment order ---------------
 * Every operand the nvmma kernels hand on goes to the scratch in the order
 * its consumer's fragments take it, so that a lane's fragment is one
 * aligned 16-byte global load (a warp reads 512 contiguous bytes) and
 * nothing is staged in local memory on the way:
 *   A order (rows m, k; KB k blocks): 16 x 16 block (m / 16, k / 16) at
 *     256 elements each, row-block major; in it lane l's registers a0..a3
 *     at 8 l.., a pair of neighbours (k even, k + 1) per 32-bit word.
 *   B-pair order (Bt[n][k]; NB n blocks of 16): block (k / 16, n / 16),
 *     k-block major; lane l holds b0, b1 of n8 tile 2 (n / 16), then b0,
 *     b1 of the next.
 * The D fragment of an A operand's two n8 tiles, packed (efla_acc_to_a),
 * is its A-order piece; read back as {a0, a2}, {a1, a3} it is the B
 * fragment of the transpose's two n8 tiles (rows 0-7 and 8-15). */
int efla_a_order(int m, int k, int kb) {
    const int lane = (m % 8) * 4 + (k % 8) / 2, reg = (m % 16) / 8 + 2 * ((k % 16) / 8);
    return (((m / 16) * kb + k / 16) * 32 + lane) * 8 + reg * 2 + k % 2;
}

int efla_b_order(int n, int k, int nb) {
    const int lane = (n % 8) * 4 + (k % 8) / 2, reg = 2 * ((n % 16) / 8) + (k % 16) / 8;
    return (((k / 16) * nb + n / 16) * 32 + lane) * 8 + reg * 2 + k % 2;
}

/* The lane's piece of fragment block `block` of an ordered array. */
uint4 efla_piece(__global const uint *array, int block) {
    return ((__global const uint4 *)array)[block * 32 + get_local_id(0) % 32];
}

void efla_put_piece(__global uint *array, int block, uint4 x) {
    ((__global uint4 *)array)[block * 32 + get_local_id(0) % 32] = x;
}

/* ---- 64 x 64 blocks spread over 8 warps (the prepare kernel) ---- */

#define EFLA_NV_WARPS 8
#define EFLA_MMA_RB (EFLA_C / 16) /* row blocks of 16 */
/* 16x8 tiles of a C x C block per warp: tile t = warp + WARPS i is rows
 * 16 (t % RB).., columns 8 (t / RB)... */
#define EFLA_MMA_PT (EFLA_MMA_RB * (EFLA_C / 8) / EFLA_NV_WARPS)

/* acc[i] += X Y over k = 0..k_len (a multiple of 16) for the warp's tiles:
 * X row-major [C][k], Y as Yt [C][k], both with row pitch `pitch`. */
EFLA_NV_INLINE void efla_mma_block(__local const ushort *x, __local const ushort *yt, int pitch,
                                   int k_len, float4 acc[EFLA_MMA_PT] EFLA_MMA_PARAM) {
    const int warp = get_local_id(0) / 32;
    EFLA_MMA_LOOP
    for (int k0 = 0; k0 < k_len; k0 += 16) {
        EFLA_MMA_UNROLL
        for (int i = 0; i < EFLA_MMA_PT; ++i) {
            const int t = warp + EFLA_NV_WARPS * i;
            const uint4 a = efla_frag_a(x, pitch, 16 * (t % EFLA_MMA_RB), k0);
            const uint2 b = efla_frag_b(yt, pitch, 8 * (t / EFLA_MMA_RB), k0);
            acc[i] = efla_mma(acc[i], a, b EFLA_MMA_ARG);
        }
    }
}

/* Row and column in the C x C block of element e (0..3) of the warp's tile i. */
int2 efla_mma_position(int i, int e) {
    const int lane = get_local_id(0) % 32, t = get_local_id(0) / 32 + EFLA_NV_WARPS * i;
    return (int2)(16 * (t % EFLA_MMA_RB) + lane / 4 + (e >= 2 ? 8 : 0),
                  8 * (t / EFLA_MMA_RB) + 2 * (lane % 4) + (e & 1));
}

float efla_mma_element(float4 d, int e) { return e == 0 ? d.x : e == 1 ? d.y : e == 2 ? d.z : d.w; }
