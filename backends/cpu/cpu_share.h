/* Sharing the state-free chunk work between the Dv tiles of one (sequence,
 * value head): Q̃, K̂, e, g, Âinv and P̃ of every chunk, computed once by
 * whichever tile claims the chunk first. The values do not depend on who
 * computes them, so results stay bitwise the same. */
#ifndef EFLA_CPU_SHARE_H
#define EFLA_CPU_SHARE_H

#include "backends/cpu/cpu_plan.h"

#include <stdatomic.h>

/* A chunk's state: nobody has claimed it, a tile is computing it, done. */
enum { EFLA_CPU_CHUNK_EMPTY = 0, EFLA_CPU_CHUNK_BUSY = 1, EFLA_CPU_CHUNK_READY = 2 };

/* The chunks of one (sequence, value head). */
typedef struct efla_cpu_share {
    atomic_int *state; /* per chunk */
    float *data;       /* per chunk, efla_cpu_share_chunk_floats() floats */
    int64_t chunks;
} efla_cpu_share;

/* The shares of one forward: one per (sequence, value head), or none. */
typedef struct efla_cpu_shares {
    efla_cpu_share *pair; /* [sequence * HV + value head]; NULL: not shared */
    void *memory;
} efla_cpu_shares;

/* Floats one chunk's shared data takes (64-byte multiples). */
size_t efla_cpu_share_chunk_floats(const efla_forward_args *args, const efla_cpu_plan *plan);

/* Sets up sharing when heads are split into tiles and the cache stays
 * within EFLA_CPU_SHARE_MAX_BYTES; otherwise leaves *out empty (each tile
 * then recomputes). Fails only when out of memory. */
#define EFLA_CPU_SHARE_MAX_BYTES ((size_t)64 << 20)
efla_status efla_cpu_shares_create(const efla_forward_args *args, const efla_cpu_plan *plan,
                                   const efla_allocator *allocator, efla_cpu_shares *out);
void efla_cpu_shares_destroy(const efla_allocator *allocator, efla_cpu_shares *shares);

#endif
