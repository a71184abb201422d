/* How a forward is cut into tasks, fixed from the shape alone so that the
 * results never depend on the thread count. */
#ifndef EFLA_CPU_PLAN_H
#define EFLA_CPU_PLAN_H

#include "backends/cpu/cpu_internal.h"
#include "backends/cpu/cpu_kernels.h"

/* Value heads are split into Dv tiles only while there are fewer
 * (sequence, value head) pairs than this. The tiles of a head share the
 * state-free chunk work (cpu_share.h); each adds its own loads of V and
 * the traffic of reading the shared chunks. The outputs do not depend on
 * the tiling at all (every column's arithmetic is the same in any tile;
 * checked bitwise). */
#define EFLA_CPU_MIN_TASKS 4
/* Narrowest Dv tile a split produces. */
#define EFLA_CPU_MIN_TILE 32

typedef struct efla_cpu_plan {
    int64_t chunk;      /* C, a multiple of EFLA_CPU_NR */
    int64_t tiles;      /* Dv tiles per value head */
    int64_t tile_width; /* columns per tile (the last may be narrower) */
    int64_t task_count; /* sequences * value heads * tiles */
    size_t scratch_bytes;
} efla_cpu_plan;

void efla_cpu_plan_make(const efla_forward_args *args, efla_cpu_plan *plan);

/* Whether sequence `length` runs the chunked algorithm. */
static inline bool efla_cpu_use_chunked(const efla_forward_args *args, int64_t length) {
    if (args->algorithm == EFLA_ALGORITHM_AUTO) return length > EFLA_RECURRENT_MAX_TOKENS;
    return args->algorithm == EFLA_ALGORITHM_CHUNKED;
}

struct efla_cpu_share;

/* One task: the columns [col0, col0 + width) of one (sequence, value head). */
typedef struct efla_cpu_task {
    const efla_forward_args *args;
    const efla_cpu_kernels *kernels;
    const efla_cpu_plan *plan;
    const struct efla_cpu_share *share; /* the pair's shared chunk work, or NULL */
    int64_t sequence, batch_row, first, length;
    int64_t value_head, head; /* head: the q/k head it reads */
    int64_t col0, width, panels;
} efla_cpu_task;

/* Scratch each algorithm needs for one task of this plan. */
size_t efla_cpu_recurrent_scratch(const efla_forward_args *args, const efla_cpu_plan *plan);
size_t efla_cpu_chunked_scratch(const efla_forward_args *args, const efla_cpu_plan *plan);

/* Run one task's sequence start to end, state loaded and stored. */
void efla_cpu_recurrent_run(const efla_cpu_task *task, void *scratch);
void efla_cpu_chunked_run(const efla_cpu_task *task, void *scratch);

#endif
