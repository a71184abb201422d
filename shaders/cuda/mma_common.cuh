/*
 * Warp-level tensor-core products: mma.sync m16n8k16 with f16 or bf16
 * operands and f32 accumulation (sm_80+), fragment loads from shared
 * memory, and cp.async copies. Fragment layout (PTX ISA, "mma.m16n8k16"),
 * with g = lane / 4 and c = lane % 4:
 *   A 16x16 row-major: a0 = A[g][2c..2c+1], a1 = A[g+8][2c..], a2 = A[g][2c+8..], a3 =
 * A[g+8][2c+8..] B 16x8 (k x n):    b0 = B[2c..2c+1][g], b1 = B[2c+8..2c+9][g] C/D 16x8 f32: d0 =
 * D[g][2c], d1 = D[g][2c+1], d2 = D[g+8][2c], d3 = D[g+8][2c+1] Each 32-bit register holds two
 * 16-bit values, the lower index in the low half. B is read from its transpose Bt[n][k], so every
 * register is one aligned 32-bit load. Row pitches are multiples of 8 elements plus 8, so the 8
 * rows a fragment touches fall in different banks.
 */
#ifndef EFLA_MMA_COMMON_CUH
#define EFLA_MMA_COMMON_CUH

#include "device_common.cuh"

/* 16-bit storage value -> f32, and two f32 -> packed 16-bit pair. */
template <int DT> EFLA_DEV float efla_half_to_f32(uint16_t h) {
    return DT == EFLA_CUDA_F16 ? efla_f16_to_f32(h) : efla_bf16_to_f32(h);
}
template <int DT> EFLA_DEV uint16_t efla_f32_to_half(float x) {
    return DT == EFLA_CUDA_F16 ? efla_f32_to_f16(x) : efla_f32_to_bf16(x);
}

#ifdef EFLA_CUDA_EMULATION
template <int DT> EFLA_DEV void efla_mma(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    struct Lane {
        uint32_t a[4], b[2];
    } mine, all[32];
    for (int i = 0; i < 4; ++i)
        mine.a[i] = a[i];
    mine.b[0] = b[0];
    mine.b[1] = b[1];
    efla_emu_warp_exchange(&mine, all, sizeof mine);
    float A[16][16], B[16][8];
    for (int lane = 0; lane < 32; ++lane) {
        const int g = lane >> 2, c = lane & 3;
        const Lane &l = all[lane];
        const int ar[4] = {g, g + 8, g, g + 8}, ac[4] = {2 * c, 2 * c, 2 * c + 8, 2 * c + 8};
        for (int r = 0; r < 4; ++r) {
            A[ar[r]][ac[r]] = efla_half_to_f32<DT>((uint16_t)(l.a[r] & 0xffffu));
            A[ar[r]][ac[r] + 1] = efla_half_to_f32<DT>((uint16_t)(l.a[r] >> 16));
        }
        for (int r = 0; r < 2; ++r) {
            B[2 * c + 8 * r][g] = efla_half_to_f32<DT>((uint16_t)(l.b[r] & 0xffffu));
            B[2 * c + 8 * r + 1][g] = efla_half_to_f32<DT>((uint16_t)(l.b[r] >> 16));
        }
    }
    const int lane = efla_tid() & 31, g = lane >> 2, c = lane & 3;
    const int dr[4] = {g, g, g + 8, g + 8}, dc[4] = {2 * c, 2 * c + 1, 2 * c, 2 * c + 1};
    for (int r = 0; r < 4; ++r) {
        float acc = d[r];
        for (int k = 0; k < 16; ++k)
            acc += A[dr[r]][k] * B[k][dc[r]];
        d[r] = acc;
    }
}
#else
template <int DT> EFLA_DEV void efla_mma(float d[4], const uint32_t a[4], const uint32_t b[2]) {
    if (DT == EFLA_CUDA_F16)
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
    else
        asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "
                     "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                     : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}
#endif

/* A fragment of rows row0..row0+15, columns k0..k0+15 of a row-major
 * 16-bit matrix with pitch `pitch` (elements; rows 16-byte aligned). On
 * the device one ldmatrix.x4: lanes 8m..8m+7 name the rows of 8x8 matrix m
 * (rows +8 for m odd, columns +8 for m >= 2), which is the fragment order
 * a0..a3 above. */
EFLA_DEV void efla_load_a(uint32_t a[4], const uint16_t *m, int pitch, int row0, int k0) {
    const int lane = efla_tid() & 31;
#ifdef EFLA_CUDA_EMULATION
    const int g = lane >> 2, c = lane & 3;
    const uint16_t *p = m + (row0 + g) * pitch + k0 + 2 * c;
    a[0] = *reinterpret_cast<const uint32_t *>(p);
    a[1] = *reinterpret_cast<const uint32_t *>(p + 8 * pitch);
    a[2] = *reinterpret_cast<const uint32_t *>(p + 8);
    a[3] = *reinterpret_cast<const uint32_t *>(p + 8 * pitch + 8);
#else
    const uint16_t *p =
        m + (row0 + (lane & 7) + 8 * ((lane >> 3) & 1)) * pitch + k0 + 8 * (lane >> 4);
    const uint32_t address = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])
                 : "r"(address)
                 : "memory");
#endif
}

/* The A fragment of rows row0..row0+15, columns k0..k0+15 of M^T, from a
 * row-major M (pitch `pitch`): A[i][k] = M[k][i]. On the device one
 * ldmatrix.x4.trans: lanes 8m..8m+7 name rows k0.. (+8 for m >= 2) of M
 * at columns row0.. (+8 for m odd), whose transposes are a0..a3. */
EFLA_DEV void efla_load_a_trans(uint32_t a[4], const uint16_t *m, int pitch, int row0, int k0) {
    const int lane = efla_tid() & 31;
#ifdef EFLA_CUDA_EMULATION
    const int g = lane >> 2, c = lane & 3;
    for (int r = 0; r < 4; ++r) {
        const uint16_t *p = m + (k0 + 2 * c + 8 * (r >> 1)) * pitch + row0 + g + 8 * (r & 1);
        a[r] = (uint32_t)p[0] | (uint32_t)p[pitch] << 16;
    }
#else
    const uint16_t *p =
        m + (k0 + (lane & 7) + 8 * (lane >> 4)) * pitch + row0 + 8 * ((lane >> 3) & 1);
    const uint32_t address = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(a[0]), "=r"(a[1]), "=r"(a[2]), "=r"(a[3])
                 : "r"(address)
                 : "memory");
#endif
}

/* B fragment for columns n0..n0+7, k0..k0+15, from Bt[n][k] of pitch
 * `pitch`; on the device one ldmatrix.x2 (lanes 0-7: rows of columns
 * k0.., lanes 8-15: k0 + 8..). */
EFLA_DEV void efla_load_b(uint32_t b[2], const uint16_t *bt, int pitch, int n0, int k0) {
    const int lane = efla_tid() & 31;
#ifdef EFLA_CUDA_EMULATION
    const int g = lane >> 2, c = lane & 3;
    const uint16_t *p = bt + (n0 + g) * pitch + k0 + 2 * c;
    b[0] = *reinterpret_cast<const uint32_t *>(p);
    b[1] = *reinterpret_cast<const uint32_t *>(p + 8);
#else
    const uint16_t *p = bt + (n0 + (lane & 7)) * pitch + k0 + 8 * ((lane >> 3) & 1);
    const uint32_t address = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(b[0]), "=r"(b[1])
                 : "r"(address)
                 : "memory");
#endif
}

/* B fragments of two neighbouring n8 tiles, columns n0.. and n0 + 8..,
 * for k0..k0+15: efla_load_b twice, on the device one ldmatrix.x4 (lanes
 * 16-31 name the rows of the second tile). */
EFLA_DEV void efla_load_b_pair(uint32_t b[2][2], const uint16_t *bt, int pitch, int n0, int k0) {
#ifdef EFLA_CUDA_EMULATION
    efla_load_b(b[0], bt, pitch, n0, k0);
    efla_load_b(b[1], bt, pitch, n0 + 8, k0);
#else
    const int lane = efla_tid() & 31;
    const uint16_t *p =
        bt + (n0 + (lane & 7) + 8 * (lane >> 4)) * pitch + k0 + 8 * ((lane >> 3) & 1);
    const uint32_t address = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(b[0][0]), "=r"(b[0][1]), "=r"(b[1][0]), "=r"(b[1][1])
                 : "r"(address)
                 : "memory");
#endif
}

/* Two 8x8 blocks of a row-major 16-bit matrix, rows row0..row0+7 and
 * columns col0.. / col0 + 8.., transposed: register h of lane (g, c) holds
 * M[row0 + 2c][col0 + 8h + g] (low half) and M[row0 + 2c + 1][..] (high),
 * a pair of neighbours in a row of the transpose. On the device one
 * ldmatrix.x2.trans. */
EFLA_DEV void efla_load_trans2(uint32_t m[2], const uint16_t *a, int pitch, int row0, int col0) {
    const int lane = efla_tid() & 31;
#ifdef EFLA_CUDA_EMULATION
    const int g = lane >> 2, c = lane & 3;
    for (int h = 0; h < 2; ++h) {
        const uint16_t *p = a + (row0 + 2 * c) * pitch + col0 + 8 * h + g;
        m[h] = (uint32_t)p[0] | (uint32_t)p[pitch] << 16;
    }
#else
    const uint16_t *p = a + (row0 + (lane & 7)) * pitch + col0 + 8 * ((lane >> 3) & 1);
    const uint32_t address = (uint32_t)__cvta_generic_to_shared(p);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(m[0]), "=r"(m[1])
                 : "r"(address)
                 : "memory");
#endif
}

/* Two f32 as one register of two 16-bit values, `lo` in the low half: the
 * accumulator pair d0,d1 (or d2,d3) of one n8 tile as an A register of the
 * k16 block the tile's columns fall in. */
template <int DT> EFLA_DEV uint32_t efla_pack_half2(float lo, float hi) {
#ifdef EFLA_CUDA_EMULATION
    return (uint32_t)efla_f32_to_half<DT>(lo) | (uint32_t)efla_f32_to_half<DT>(hi) << 16;
#else
    uint32_t bits; /* one cvt.rn.{f16,bf16}x2.f32 */
    if (DT == EFLA_CUDA_F16) {
        const __half2 h = __floats2half2_rn(lo, hi);
        memcpy(&bits, &h, sizeof bits);
    } else {
        const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
        memcpy(&bits, &h, sizeof bits);
    }
    return bits;
#endif
}

/* The A fragment of k block kb from the accumulators of n8 tiles 2 kb and
 * 2 kb + 1 (fragment layouts above): a C/D result feeds the next product
 * without leaving the warp's registers. */
template <int DT> EFLA_DEV void efla_acc_to_a(uint32_t a[4], const float lo[4], const float hi[4]) {
    a[0] = efla_pack_half2<DT>(lo[0], lo[1]);
    a[1] = efla_pack_half2<DT>(lo[2], lo[3]);
    a[2] = efla_pack_half2<DT>(hi[0], hi[1]);
    a[3] = efla_pack_half2<DT>(hi[2], hi[3]);
}

/* Row and column (within the 16x8 tile) of accumulator element r. */
EFLA_DEV int efla_acc_row(int r) { return ((efla_tid() & 31) >> 2) + (r >= 2 ? 8 : 0); }
EFLA_DEV int efla_acc_col(int r) { return 2 * (efla_tid() & 3) + (r & 1); }

#endif
