/* Random benchmark inputs (PERFORMANCE.md: q, v, k ~ N(0,1), k not
 * normalised, beta = sigmoid(N(0,1))) and the device buffer sets the timed
 * runs rotate through. */
#ifndef EFLA_TOOLS_BENCH_DATA_H
#define EFLA_TOOLS_BENCH_DATA_H

#include "bench_shapes.h"

#include <efla/efla.h>

#include <stdint.h>

enum { BENCH_Q, BENCH_K, BENCH_V, BENCH_BETA, BENCH_STATE_IN, BENCH_INPUTS };

/* Host inputs already in their device dtype (storage, or f32 for states). */
typedef struct bench_host {
    void *data[BENCH_INPUTS]; /* NULL: absent */
    uint64_t count[BENCH_INPUTS];
    efla_dtype dtype[BENCH_INPUTS];
} bench_host;

/* Generates the inputs of a shape; false when out of memory. */
bool bench_host_generate(const bench_shape *shape, efla_dtype storage, uint64_t seed,
                         bench_host *out);
void bench_host_free(bench_host *host);

/* One set of device buffers and the forward that uses them. */
typedef struct bench_set {
    efla_buffer inputs[BENCH_INPUTS];
    efla_buffer out, final_state;
    efla_forward_desc desc;
} bench_set;

/* Uploads the host inputs rotated by `rotation` elements (so each set has
 * different contents in different buffers) and describes the forward. */
efla_status bench_set_create(efla_context context, const bench_shape *shape, const bench_host *host,
                             uint64_t rotation, efla_algorithm algorithm, bench_set *set);
void bench_set_destroy(bench_set *set);

#endif
