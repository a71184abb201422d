/* A small fixed thread pool for the CPU backend, and the parallel-for that
 * routes work to it, to the caller's job system, or runs it inline. */
#ifndef EFLA_CPU_POOL_H
#define EFLA_CPU_POOL_H

#include "backends/cpu/cpu_internal.h"

typedef struct efla_cpu_pool efla_cpu_pool;

/* `threads` counts the calling thread: threads - 1 workers are started. */
efla_status efla_cpu_pool_create(uint32_t threads, const efla_allocator *allocator,
                                 efla_cpu_pool **out);
void efla_cpu_pool_destroy(efla_cpu_pool *pool); /* accepts NULL */

/* Runs fn(arg, i) for i in [0, count) and returns when all are done. Tasks
 * must write disjoint memory; results never depend on the schedule. */
void efla_cpu_parallel_for(efla_backend_context *ctx, efla_task_fn fn, void *arg, uint32_t count);

#endif
