/* The emulator's host side: kernel lookup and launch (emu_runtime.cpp). */
#ifndef EFLA_EMU_RUNTIME_H
#define EFLA_EMU_RUNTIME_H

#include "emu_device.h"

bool efla_emu_find_kernel(const char *name, efla_emu_kernel_fn *fn, int *max_threads);
/* Runs every block of the grid to completion, one block at a time. */
void efla_emu_launch(efla_emu_kernel_fn fn, unsigned grid_x, unsigned grid_y, unsigned threads,
                     unsigned shared_bytes, const efla_cuda_params *params);

#endif
