/*
 * The device built-ins of shaders/cuda/device_common.cuh for the emulator:
 * each CUDA thread of a block is a fiber (emu_runtime.cpp); barriers and
 * warp shuffles switch fibers. Kernels compile unchanged as host C++.
 */
#ifndef EFLA_EMU_DEVICE_H
#define EFLA_EMU_DEVICE_H

#include "efla_cuda_params.h"

#include <math.h>
#include <cstdint>
#include <cstring>

typedef void (*efla_emu_kernel_fn)(efla_cuda_params);

/* Registers a kernel under its name, with its __launch_bounds__. */
struct efla_emu_registration {
    efla_emu_registration(const char *name, efla_emu_kernel_fn fn, int max_threads);
};

int efla_emu_thread_index();
int64_t efla_emu_block_index(int axis);
void efla_emu_barrier();
/* Every lane of the calling warp passes `bytes` bytes; each gets all 32. */
void efla_emu_warp_exchange(const void *mine, void *all, size_t bytes);
float *efla_emu_shared();

static inline int efla_tid() { return efla_emu_thread_index(); }
static inline int64_t efla_block_x() { return efla_emu_block_index(0); }
static inline int64_t efla_block_y() { return efla_emu_block_index(1); }
static inline void efla_sync() { efla_emu_barrier(); }
static inline float *efla_smem() { return efla_emu_shared(); }
static inline float efla_shfl_xor(float x, int mask) {
    float all[32];
    efla_emu_warp_exchange(&x, all, sizeof x);
    return all[(efla_tid() & 31) ^ mask];
}

static inline uint32_t efla_emu_bits(float x) {
    uint32_t u;
    std::memcpy(&u, &x, sizeof u);
    return u;
}
static inline float efla_emu_float(uint32_t u) {
    float x;
    std::memcpy(&x, &u, sizeof x);
    return x;
}
static inline float efla_bf16_to_f32(uint16_t h) { return efla_emu_float((uint32_t)h << 16); }
static inline uint16_t efla_f32_to_bf16(float x) {
    uint32_t u = efla_emu_bits(x);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}
static inline float efla_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1fu) return efla_emu_float(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        float magnitude = (float)m * 5.9604644775390625e-8f;
        return sign ? -magnitude : magnitude;
    }
    return efla_emu_float(sign | ((e + 112u) << 23) | (m << 13));
}
static inline uint16_t efla_f32_to_f16(float x) {
    uint32_t u = efla_emu_bits(x);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t magnitude = u & 0x7fffffffu;
    if (magnitude > 0x7f800000u) return (uint16_t)(sign | 0x7e00u);
    if (magnitude >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
    if (magnitude < 0x38800000u) {
        float scaled = efla_emu_float(magnitude) * 16777216.0f;
        uint32_t integer = (uint32_t)scaled;
        float remainder = scaled - (float)integer;
        if (remainder > 0.5f || (remainder == 0.5f && (integer & 1u))) integer++;
        return (uint16_t)(sign | integer);
    }
    uint32_t rounded = magnitude + 0xfffu + ((magnitude >> 13) & 1u);
    return (uint16_t)(sign | ((rounded - 0x38000000u) >> 13));
}

#endif
