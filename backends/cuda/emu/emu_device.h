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
/* bar.sync id, threads: the first `threads` arrivals release each other. */
void efla_emu_named_barrier(int id, int threads);
/* Every lane of the calling warp passes `bytes` bytes; each gets all 32. */
void efla_emu_warp_exchange(const void *mine, void *all, size_t bytes);
float *efla_emu_shared();
/* sm_90's mbarriers and bulk copies (the EFLA_EMU_BULK build): a copy
 * lands at once or when a thread first waits on its barrier (at random),
 * so that reads before the wait see stale data; a wait that never
 * completes aborts. */
void efla_emu_mbarrier_init(void *bar, uint32_t arrivals);
/* One arrival, expecting `bytes` more of copies on the current phase. */
void efla_emu_mbarrier_arrive(void *bar, uint32_t bytes);
void efla_emu_mbarrier_wait(void *bar, uint32_t parity);
void efla_emu_bulk_copy(void *to, const void *from, uint32_t bytes, void *bar);
/* A shared -> global bulk store: it reads the shared memory at once or at
 * the block's next efla_emu_bulk_store_wait (at random), so that a write
 * before the wait corrupts it; a store never waited for aborts. */
void efla_emu_bulk_store(void *to, const void *from, uint32_t bytes);
void efla_emu_bulk_store_wait();

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
