/* Per-task working memory from the context's allocator, 64-byte aligned
 * and reused across forwards. */
#ifndef EFLA_CPU_SCRATCH_H
#define EFLA_CPU_SCRATCH_H

#include "backends/cpu/cpu_internal.h"

/* Prepares the slots for tasks needing `bytes` each; called before tasks
 * start. */
efla_status efla_cpu_scratch_reserve(efla_backend_context *ctx, size_t bytes);
void efla_cpu_scratch_destroy(efla_backend_context *ctx);

/* A free slot's memory (*slot >= 0), or a fresh allocation (*slot = -1);
 * NULL when out of memory. */
void *efla_cpu_scratch_acquire(efla_backend_context *ctx, size_t bytes, int *slot);
void efla_cpu_scratch_release(efla_backend_context *ctx, int slot, void *memory);

/* Carves 64-byte aligned float arrays out of a scratch block; with a NULL
 * base it only measures (the pointers it returns are then NULL). */
typedef struct efla_cpu_arena {
    char *base;
    size_t used;
} efla_cpu_arena;

static inline float *efla_cpu_arena_take(efla_cpu_arena *arena, size_t floats) {
    float *p = arena->base ? (float *)(arena->base + arena->used) : NULL;
    arena->used += (floats * sizeof(float) + 63) & ~(size_t)63;
    return p;
}

#endif
