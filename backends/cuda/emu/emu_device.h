/*
 * The device built-ins of shaders/cuda/device_common.cuh for the emulator:
 * each CUDA thread of a block is a fiber (emu_runtime.cpp); barriers and
 * warp shuffles switch fibers. Kernels compile unchanged as host C++.
 */
#ifndef EFLA_EMU_DEVICE_H
#define EFLA_EMU_DEVICE_H

#include "core/half.h" /* storage conversions: the host's own */
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

#endif
