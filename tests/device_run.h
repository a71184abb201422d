/* Running a host problem through the public API on one context: place the
 * tensors in device buffers (contiguous, strided/transposed views, or all in
 * one shared buffer at odd byte offsets), upload, forward, synchronize,
 * download, and check that nothing outside the outputs was written. */
#ifndef EFLA_TESTS_DEVICE_RUN_H
#define EFLA_TESTS_DEVICE_RUN_H

#include "problem.h"

#include "efla/efla.h"

#include <stdbool.h>

typedef enum layout_kind {
    LAYOUT_CONTIGUOUS, /* one buffer per tensor; some with all-zero (implicit) strides */
    LAYOUT_STRIDED,    /* padded rows, head-major k, transposed v/beta/initial state */
    LAYOUT_SHARED,     /* every tensor in one buffer at byte offsets not 16-aligned */
} layout_kind;

const char *layout_name(layout_kind layout);

typedef struct run_options {
    efla_algorithm algorithm;
    layout_kind layout;
    bool in_place;       /* final_state is the very initial_state tensor */
    bool no_final_state; /* do not ask for the final state */
    efla_dtype cu_dtype; /* I32 or I64 for varlen offsets; 0 means I64 */
} run_options;

typedef struct run_result {
    efla_status status;     /* EFLA_SUCCESS, or the first failing call's status */
    char error[768];        /* which call failed and its message; or what was overwritten */
    efla_forward_plan plan; /* what efla_forward_query reported */
    double *out;            /* [B,T,HV,Dv] as downloaded */
    double *final_state;    /* [N,HV,Dk,Dv], NULL when not asked for */
    bool stray_writes;      /* bytes outside out/final_state changed (see error) */
} run_result;

/* Returns true when every call succeeded and nothing stray was written;
 * otherwise r->error says what went wrong. r must be freed either way. */
bool device_run(efla_context context, const problem *p, const run_options *options, run_result *r);
void run_result_free(run_result *r);

#endif
