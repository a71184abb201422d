// Declarations shared by the efla Vulkan kernels: specialization constants,
// the descriptor bindings, the per-piece parameter block, element access and
// the EFLA step coefficients (ALGORITHM.md §1.6, §2.6).
//
// Every tensor is bound over a window of its buffer; the host passes each
// window's element base and element strides (taken modulo 2^32, so the final
// index is exact whenever it lies inside the window). Two builds of each
// kernel differ in how f16/bf16 tensors are accessed:
// - EFLA_STORAGE16 (devices with storageBuffer16BitAccess; used for f16 and
//   bf16 only): tensors are arrays of 16-bit bit patterns, read and written
//   one element at a time (a 16-bit store never touches its neighbour).
// - otherwise tensors are arrays of 32-bit words: 16-bit values are read
//   from words and written either as whole words owned by one invocation or,
//   at edges, by atomic merges, so that no invocation ever rewrites a
//   neighbour's half (efla_out_store.glsl).
#ifdef EFLA_STORAGE16
#extension GL_EXT_shader_16bit_storage : require
#define TENSOR_ELEM uint16_t
#else
#define TENSOR_ELEM uint
#endif

layout(constant_id = 0) const uint WG = 128;   // invocations per workgroup
layout(constant_id = 1) const uint DTYPE = 0;  // storage: 0 f32, 1 f16, 2 bf16
layout(constant_id = 2) const uint DKC = 16;   // Dk rounded up to a multiple of KS
layout(constant_id = 3) const uint CH = 32;    // chunk size in tokens
layout(constant_id = 4) const uint BV = 16;    // value columns per workgroup
layout(constant_id = 5) const uint RG = 4;     // row groups: WG = RG * BV
// The two-level scan's first level (the scans that take it; the host's
// vk_plan.c, "legs"): each leg of a sequence runs from a zero state over
// Dv + DKC columns, U's then W's, and writes only its end state: with W in
// the place of U, the columns past U's accumulate X, where the product of
// the leg's transitions I - K^^T W is I - X.
layout(constant_id = 8) const uint LEG_PRODUCTS = 0u;
layout(local_size_x_id = 0) in;

const uint KS = 16; // slab width over Dk and Dv

const uint FLAG_L2NORM_Q = 1u;
const uint FLAG_L2NORM_K = 2u;
const uint FLAG_DELTA = 4u;
const uint ENTRY_READ_STATE = 1u;
const uint ENTRY_WRITE_STATE = 2u;

// Element base (window-relative) and strides of a rank-4 (or rank-3) view.
struct View {
    uint base;
    uint s0;
    uint s1;
    uint s2;
    uint s3;
};

layout(std430, set = 0, binding = 0) readonly buffer ParamBlock {
    View q;
    View k;
    View v;
    View beta;
    View o;
    View sin_;
    View sout;
    uint dk;
    uint dv;
    uint group;    // HV / H
    uint hv_base;  // first value head of this piece
    uint flags;
    float scale;
    uint dvs;      // row stride of U in scratch (Dv rounded up to KS)
    uint hv_count; // value heads in this piece
    uint w_base;
    uint u_base;
    uint a_base;
    uint f_base;
    uint h_base; // per-chunk states H (split design), in floats
} P;

// One sequence segment: tokens [first, first + count) of a batch row.
struct Entry {
    uint batch_row;
    uint first;
    uint count;
    uint state_row;
    uint flags;
    uint chunk_base; // first scratch chunk of this entry within the piece
    uint state_out_row; // where the entry's end state goes (state_row: where it comes from)
    uint pad1;
};
layout(std430, set = 0, binding = 1) readonly buffer EntryBlock { Entry entries[]; };

layout(std430, set = 0, binding = 2) readonly buffer QBuf { TENSOR_ELEM q_w[]; };
layout(std430, set = 0, binding = 3) readonly buffer KBuf { TENSOR_ELEM k_w[]; };
layout(std430, set = 0, binding = 4) readonly buffer VBuf { TENSOR_ELEM v_w[]; };
layout(std430, set = 0, binding = 5) readonly buffer BetaBuf { TENSOR_ELEM beta_w[]; };
layout(std430, set = 0, binding = 6) buffer OBuf { TENSOR_ELEM o_w[]; };
// The two state bindings may alias (in-place update): no restrict.
layout(std430, set = 0, binding = 7) readonly buffer SinBuf { float sin_w[]; };
layout(std430, set = 0, binding = 8) writeonly buffer SoutBuf { float sout_w[]; };

layout(push_constant) uniform Push {
    uint entry_base;  // first entry of this dispatch
    uint chunk_base;  // first chunk of this dispatch (prep)
    uint entry_count; // entries in this piece
    uint unused;
} pc;

uint vidx(View t, uint a, uint b, uint c, uint d) {
    return t.base + a * t.s0 + b * t.s1 + c * t.s2 + d * t.s3;
}

// The same decoding in both builds, so that their results are bitwise equal.
float decode16(uint bits) {
    if (DTYPE == 2u) return uintBitsToFloat(bits << 16);
    return unpackHalf2x16(bits).x;
}

#ifdef EFLA_STORAGE16
#define LOAD_ELEM(arr, idx) decode16(uint(arr[idx]))
#else
#define LOAD_ELEM(arr, idx)                                                      \
    (DTYPE == 0u ? uintBitsToFloat(arr[idx])                                     \
                 : decode16((arr[(idx) >> 1] >> (((idx) & 1u) * 16u)) & 0xffffu))
#endif

float load_q(uint idx) { return LOAD_ELEM(q_w, idx); }
float load_k(uint idx) { return LOAD_ELEM(k_w, idx); }
float load_v(uint idx) { return LOAD_ELEM(v_w, idx); }
float load_beta(uint idx) { return LOAD_ELEM(beta_w, idx); }

// f32 -> bf16 bits, round to nearest even (as core/half.h).
uint f32_to_bf16(float x) {
    uint u = floatBitsToUint(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return ((u >> 16) | 0x40u) & 0xffffu;
    u += 0x7fffu + ((u >> 16) & 1u);
    return u >> 16;
}

// f32 -> f16 bits, round to nearest even, with subnormals (as core/half.h).
uint f32_to_f16(float x) {
    uint u = floatBitsToUint(x);
    uint sign = (u >> 16) & 0x8000u;
    uint m = u & 0x7fffffffu;
    if (m > 0x7f800000u) return sign | 0x7e00u;
    if (m >= 0x477ff000u) return sign | 0x7c00u;
    if (m < 0x38800000u) {
        uint e = m >> 23;
        if (e < 102u) return sign;
        uint mant = (m & 0x7fffffu) | 0x800000u;
        uint shift = 126u - e;
        uint r = mant >> shift;
        uint rem = mant & ((1u << shift) - 1u);
        uint halfway = 1u << (shift - 1u);
        if (rem > halfway || (rem == halfway && (r & 1u) != 0u)) r += 1u;
        return sign | r;
    }
    uint rounded = m + 0xfffu + ((m >> 13) & 1u);
    return sign | ((rounded - 0x38000000u) >> 13);
}

uint encode16(float x) { return DTYPE == 1u ? f32_to_f16(x) : f32_to_bf16(x); }

// STAGED_OUT: outputs go through shared memory to be written by whole words
// (efla_out_store.glsl); otherwise each invocation stores its own elements.
#ifdef EFLA_STORAGE16
const bool STAGED_OUT = false;
void store_out(uint idx, float x) { o_w[idx] = uint16_t(encode16(x)); }
#else
const bool STAGED_OUT = DTYPE != 0u;
void store_out(uint idx, float x) { o_w[idx] = floatBitsToUint(x); } // f32 only

// Writes one 16-bit output without touching the other half of its word.
void store_half_merge(uint idx, uint bits) {
    uint shift = (idx & 1u) * 16u;
    atomicAnd(o_w[idx >> 1], ~(0xffffu << shift));
    atomicOr(o_w[idx >> 1], bits << shift);
}
#endif

// 1 - exp(-x) for x > 0 with full relative accuracy (GLSL has no expm1).
float erase_from_x(float x) {
    if (x < 0.5) {
        float s = 1.0 - x / 10.0;
        s = 1.0 - x / 9.0 * s;
        s = 1.0 - x / 8.0 * s;
        s = 1.0 - x / 7.0 * s;
        s = 1.0 - x / 6.0 * s;
        s = 1.0 - x / 5.0 * s;
        s = 1.0 - x / 4.0 * s;
        s = 1.0 - x / 3.0 * s;
        s = 1.0 - x / 2.0 * s;
        return x * s;
    }
    return 1.0 - exp(-x);
}

// The two-coefficient step of ALGORITHM.md §2.6 for one token, from the raw
// squared norms kk = |k|^2, qq = |q|^2 and beta:
//   kfac = 1/|k| (0 for a zero key): k_hat = k * kfac
//   qfac = scale (times the l2norm factor of q)
//   e    = alpha * lambda (erase), g = alpha * sqrt(lambda) (write)
void step_coefficients(float kk, float qq, float beta, out float kfac, out float qfac,
                       out float e, out float g) {
    kfac = kk > 0.0 ? 1.0 / sqrt(kk) : 0.0;
    float lambda = (P.flags & FLAG_L2NORM_K) != 0u ? kk / (kk + 1e-6) : kk;
    qfac = (P.flags & FLAG_L2NORM_Q) != 0u ? P.scale / sqrt(qq + 1e-6) : P.scale;
    float alpha;
    if ((P.flags & FLAG_DELTA) != 0u) {
        alpha = beta;
        e = beta * lambda;
    } else {
        float x = beta * lambda;
        if (x <= 1e-4) {
            alpha = beta * (1.0 - x * (0.5 - x * (1.0 / 6.0 - x / 24.0)));
            e = alpha * lambda;
        } else {
            e = erase_from_x(x);
            alpha = e / lambda;
        }
    }
    g = alpha * sqrt(lambda);
}
