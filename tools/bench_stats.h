/* Order statistics of timed runs and the nominal work of a shape. */
#ifndef EFLA_TOOLS_BENCH_STATS_H
#define EFLA_TOOLS_BENCH_STATS_H

#include "bench_shapes.h"

#include <efla/efla.h>

#include <stddef.h>

typedef struct bench_stats {
    double median_ms, p10_ms, p90_ms;
} bench_stats;

/* Sorts `ms` in place; percentiles interpolate between order statistics. */
bench_stats bench_stats_of(double *ms, size_t count);

typedef struct bench_work {
    double tokens; /* B*T */
    double flop;   /* nominal: 6*Dk*Dv per token per v-head */
    double bytes;  /* q, k, v, o, beta in storage + states in/out in f32, once each */
} bench_work;

bench_work bench_work_of(const bench_shape *shape, efla_dtype storage);

#endif
