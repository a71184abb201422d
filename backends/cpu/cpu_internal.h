/* The CPU backend's objects, shared by its files only. */
#ifndef EFLA_CPU_INTERNAL_H
#define EFLA_CPU_INTERNAL_H

#include "core/backend.h"

#include <stdatomic.h>

struct efla_backend_buffer {
    void *memory;
    uint64_t size;
    bool owned; /* false for wrapped caller memory */
};

struct efla_cpu_kernels;

/* One task's working memory, kept across forwards so that decode loops do
 * not allocate. A task takes a free slot, or allocates its own when all
 * are busy (a caller's job system may run more tasks at once than
 * `threads`). */
typedef struct efla_cpu_scratch_slot {
    atomic_int busy;
    size_t bytes;
    void *memory;
} efla_cpu_scratch_slot;

struct efla_backend_context {
    efla_backend_context_params params;
    struct efla_cpu_pool *pool; /* NULL when params.parallel_for is set or threads == 1 */
    uint32_t threads;           /* resolved worker count */
    const struct efla_cpu_kernels *kernels;
    efla_cpu_scratch_slot *slots; /* `threads` entries */
    double last_forward_ms;
};

/* Runs a validated forward to completion on the calling thread plus the
 * context's workers (the CPU backend is synchronous). */
efla_status efla_cpu_forward_run(efla_backend_context *ctx, const efla_forward_args *args);

/* The algorithm AUTO picks for a request, and the kernel path name this
 * CPU would run (EFLA_PATH when it names a runnable path). */
efla_algorithm efla_cpu_forward_algorithm(const efla_forward_args *args);
const char *efla_cpu_kernel_path(void);

#endif
