/* The benchmark shapes of PERFORMANCE.md, their scaled-down CPU versions,
 * and shapes given on the command line. */
#ifndef EFLA_TOOLS_BENCH_SHAPES_H
#define EFLA_TOOLS_BENCH_SHAPES_H

#include "cli_util.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct bench_shape {
    char id[24];
    int64_t b, t, h, hv, dk, dv;
    bool decode; /* an initial state is given (decode step) */
} bench_shape;

/* The shapes to run: the suite's (prefill, decode or all; scaled down on
 * request), then each --shape "B,T,H,HV,Dk,Dv". With only --shape given,
 * just those. Returns a CLI exit code; *out is malloc'd. */
int bench_shapes_select(const char *suite, bool scale_down, const cli_list *custom,
                        bench_shape **out, size_t *count);

#endif
