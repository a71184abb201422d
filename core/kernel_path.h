/*
 * EFLA_PATH: forcing a backend's kernel path (tests run every path; the
 * benchmarks say which ran). The variable is a comma-separated list of
 * entries, each `path` (every backend) or `backend:path` (that backend
 * only), e.g. "cuda:mma,cpu:avx2". Scoped entries let one process force a
 * GPU path while it also runs the CPU backend.
 */
#ifndef EFLA_CORE_KERNEL_PATH_H
#define EFLA_CORE_KERNEL_PATH_H

#include "efla/efla.h"

#include <stddef.h>

/* The path EFLA_PATH asks of `backend` (the last entry that applies), copied
 * into `buffer`; NULL when none applies. An entry longer than the buffer is
 * returned truncated, which no backend accepts as a name. */
const char *efla_kernel_path_requested(efla_backend backend, char *buffer, size_t size);

#endif
