/* What `efla bench` prints: a table for people and one JSON object per
 * shape per line. */
#ifndef EFLA_TOOLS_BENCH_REPORT_H
#define EFLA_TOOLS_BENCH_REPORT_H

#include "bench_shapes.h"
#include "bench_stats.h"
#include "cpu_peaks.h"

#include <efla/efla.h>

#include <stdio.h>

/* The machine a run measures and the ceilings its floors use. */
typedef struct bench_machine {
    efla_device_info device;
    efla_dtype storage;
    bool is_cpu;
    cpu_peak fma;      /* CPU only */
    double copy_gbps;  /* CPU only; 0 when not measured */
    double peak_flops; /* f32 FMA ceiling, FLOP/s */
    double peak_bytes; /* copy ceiling, bytes/s; 0 when unknown */
    const char *basis; /* where the ceilings come from */
} bench_machine;

#define BENCH_MAX_STAGES 8

typedef struct bench_result {
    const bench_shape *shape;
    bench_work work;
    bench_stats stats;
    efla_forward_plan plan;
    const char *timer; /* "device" or "host" */
    int warmup, sets;
    size_t iters;
    efla_stage_time stages[BENCH_MAX_STAGES]; /* mean device ms per run, where timed */
    uint32_t stage_count;
    double set_median_ms[3]; /* per buffer set; 0: not measured */
    double *run_ms;          /* every timed run in order (JSON), or NULL */
} bench_result;

void bench_print_header(FILE *out, const bench_machine *m);
void bench_print_row(FILE *out, const bench_machine *m, const bench_result *r);
void bench_print_json(FILE *out, const bench_machine *m, const bench_result *r);

#endif
