/* What every conformance test shares: which backends and seeds to run,
 * the precision contract's tolerances, the per-slice comparison, and a
 * driver that runs one case on every backend, seed, dtype and variant. */
#ifndef EFLA_TESTS_HARNESS_H
#define EFLA_TESTS_HARNESS_H

#include "device_run.h"
#include "problem.h"

#include "efla/efla.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HARNESS_MAX_BACKENDS 4
#define HARNESS_MAX_SEEDS 4

typedef struct harness_device {
    efla_backend backend;
    efla_context context;
    efla_device_info info;
    char text[320]; /* "cpu device 0 (name)", for messages */
} harness_device;

/* Backends compiled in, available, with a device, and named by
 * EFLA_TEST_BACKENDS when it is set. */
size_t harness_backends(efla_backend *out, size_t capacity);
/* Whether harness_backends lists `backend`. */
bool harness_backend_selected(efla_backend backend);
/* Fails the test for every backend in EFLA_REQUIRE_BACKENDS that cannot run. */
void harness_check_required_backends(void);
/* Device 0 of the backend; `threads` only matters on the CPU (0 = all).
 * On failure the test fails with the reason and false is returned. */
bool harness_open(efla_backend backend, uint32_t threads, harness_device *device);
void harness_close(harness_device *device);

/* EFLA_TEST_SEED alone when set, else the fixed seeds plus this run's fresh one. */
size_t harness_seeds(uint64_t *out, size_t capacity);
/* The same for one device: software devices (llvmpipe, PoCL) are slow, so
 * they run the first fixed seed and the fresh one only. */
size_t harness_device_seeds(const harness_device *device, uint64_t *out, size_t capacity);
uint64_t harness_fresh_seed(void);

/* Relative Frobenius tolerance of the precision contract. */
double harness_tolerance(efla_dtype dtype);

/* Compares out and final_state (either may be NULL to skip) with the
 * expected ones, per (sequence, value head) slice; fails the test with
 * `label` and the worst slice when a relative error exceeds tol. A final
 * state slice's error is relative to at least its state_peak [N,HV] (from
 * problem_reference; NULL: none), the norm the rounding error scales with. */
bool harness_compare(const problem *p, const char *label, const double *out,
                     const double *final_state, const double *expected_out,
                     const double *expected_state, const double *state_peak, double tol);

/* "<device> path=<kernel path> plan=<algorithm> dtype=<..> seed=<..> <what>". */
void harness_label(char *buf, size_t size, const harness_device *device, const run_result *r,
                   const problem *p, uint64_t seed, const char *what);

/* True when a failed run is an allowed refusal (f16 on a device without
 * fp16); logs it. Otherwise fails the test with the run's error. */
bool harness_run_refused(const harness_device *device, const problem *p, const run_result *r,
                         const char *label);

extern const efla_dtype harness_all_dtypes[3];

/* Runs case `name` on every backend, seed and dtype: every variant against
 * the float64 reference and against the first variant. */
void harness_check_case(const char *name, const problem_spec *spec, const efla_dtype *dtypes,
                        size_t dtype_count, const run_options *variants, size_t variant_count);

#endif
