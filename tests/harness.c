#include "harness.h"

#include "rng.h"

#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <criterion/logging.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

const efla_dtype harness_all_dtypes[3] = {EFLA_DTYPE_F32, EFLA_DTYPE_F16, EFLA_DTYPE_BF16};

static const uint64_t fixed_seeds[] = {1, 2, 3};

#define FRESH_SEED_VARIABLE "EFLA_TEST_FRESH_SEED"

/* True when the comma-separated list names `name` (case-insensitive). */
static bool list_contains(const char *list, const char *name) {
    const size_t length = strlen(name);
    for (const char *item = list; *item;) {
        while (*item == ',' || isspace((unsigned char)*item))
            ++item;
        size_t item_length = strcspn(item, ", \t");
        if (item_length == length && strncasecmp(item, name, length) == 0) return true;
        item += item_length;
    }
    return false;
}

/* Why a backend cannot run here, or NULL when it can. */
static const char *unavailable_reason(efla_backend backend, char *buf, size_t size) {
    if (!efla_backend_compiled(backend)) return "not compiled into this build";
    efla_status status = efla_backend_probe(backend);
    if (status) {
        snprintf(buf, size, "probe: %s: %s", efla_status_string(status), efla_last_error_message());
        return buf;
    }
    uint32_t count = 0;
    status = efla_device_count(backend, &count);
    if (status || count == 0) {
        snprintf(buf, size, "no device (%s)", status ? efla_last_error_message() : "count is 0");
        return buf;
    }
    return NULL;
}

size_t harness_backends(efla_backend *out, size_t capacity) {
    const char *only = getenv("EFLA_TEST_BACKENDS");
    size_t count = 0;
    char reason[512];
    for (int b = EFLA_BACKEND_CPU; b < EFLA_BACKEND_COUNT && count < capacity; ++b) {
        if (only && *only && !list_contains(only, efla_backend_name((efla_backend)b))) continue;
        if (unavailable_reason((efla_backend)b, reason, sizeof reason)) continue;
        out[count++] = (efla_backend)b;
    }
    return count;
}

bool harness_backend_selected(efla_backend backend) {
    efla_backend backends[HARNESS_MAX_BACKENDS];
    const size_t count = harness_backends(backends, HARNESS_MAX_BACKENDS);
    for (size_t i = 0; i < count; ++i)
        if (backends[i] == backend) return true;
    return false;
}

void harness_check_required_backends(void) {
    const char *required = getenv("EFLA_REQUIRE_BACKENDS");
    if (!required) return;
    char reason[512];
    for (int b = EFLA_BACKEND_CPU; b < EFLA_BACKEND_COUNT; ++b) {
        const char *name = efla_backend_name((efla_backend)b);
        if (!list_contains(required, name)) continue;
        const char *why = unavailable_reason((efla_backend)b, reason, sizeof reason);
        cr_expect(why == NULL, "EFLA_REQUIRE_BACKENDS names %s, which is not available: %s", name,
                  why ? why : "");
        const char *only = getenv("EFLA_TEST_BACKENDS");
        cr_expect(!only || !*only || list_contains(only, name),
                  "EFLA_REQUIRE_BACKENDS names %s but EFLA_TEST_BACKENDS=%s leaves it out", name,
                  only);
    }
    /* names that are no backend at all are configuration mistakes */
    for (const char *item = required; *item;) {
        while (*item == ',' || isspace((unsigned char)*item))
            ++item;
        size_t length = strcspn(item, ", \t");
        if (!length) break;
        char name[32] = {0};
        snprintf(name, sizeof name, "%.*s", (int)length, item);
        efla_backend backend;
        cr_expect(efla_backend_from_name(name, &backend) == EFLA_SUCCESS &&
                      backend != EFLA_BACKEND_AUTO,
                  "EFLA_REQUIRE_BACKENDS names '%s', which is not a backend", name);
        item += length;
    }
}

bool harness_open(efla_backend backend, uint32_t threads, harness_device *device) {
    memset(device, 0, sizeof *device);
    device->backend = backend;
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = backend;
    info.device_index = 0;
    info.threads = threads;
    efla_status status = efla_context_create(&info, &device->context);
    if (status) {
        cr_expect_fail("%s: efla_context_create on device 0 failed: %s: %s",
                       efla_backend_name(backend), efla_status_string(status),
                       efla_last_error_message());
        return false;
    }
    device->info = (efla_device_info)EFLA_DEVICE_INFO_INIT;
    efla_context_device_info(device->context, &device->info);
    snprintf(device->text, sizeof device->text, "%s device 0 (%s)", efla_backend_name(backend),
             device->info.name);
    return true;
}

void harness_close(harness_device *device) {
    efla_context_destroy(device->context);
    device->context = NULL;
}

static uint64_t compute_fresh_seed(void) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    test_rng rng = {(uint64_t)now.tv_sec * 1000000007ull ^ (uint64_t)now.tv_nsec ^
                    ((uint64_t)getpid() << 32)};
    return rng_next(&rng) >> 1; /* fits a signed 64-bit parse as well */
}

/* Criterion runs each test in its own process; the runner picks the fresh
 * seed once and hands it down through the environment. */
ReportHook(PRE_ALL)(struct criterion_test_set *tests) {
    (void)tests;
    if (getenv("EFLA_TEST_SEED")) {
        fprintf(stderr, "efla tests: replaying EFLA_TEST_SEED=%s only\n", getenv("EFLA_TEST_SEED"));
        return;
    }
    char text[32];
    snprintf(text, sizeof text, "%llu", (unsigned long long)compute_fresh_seed());
    setenv(FRESH_SEED_VARIABLE, text, 1);
    fprintf(stderr, "efla tests: fresh seed %s (replay with EFLA_TEST_SEED=%s)\n", text, text);
}

uint64_t harness_fresh_seed(void) {
    const char *text = getenv(FRESH_SEED_VARIABLE);
    if (text && *text) return strtoull(text, NULL, 0);
    static uint64_t seed;
    if (!seed) seed = compute_fresh_seed();
    return seed;
}

size_t harness_seeds(uint64_t *out, size_t capacity) {
    const char *replay = getenv("EFLA_TEST_SEED");
    if (replay && *replay) {
        out[0] = strtoull(replay, NULL, 0);
        return 1;
    }
    size_t count = 0;
    for (size_t i = 0; i < sizeof fixed_seeds / sizeof *fixed_seeds && count < capacity; ++i)
        out[count++] = fixed_seeds[i];
    if (count < capacity) out[count++] = harness_fresh_seed();
    return count;
}

size_t harness_device_seeds(const harness_device *device, uint64_t *out, size_t capacity) {
    size_t count = harness_seeds(out, capacity);
    if (count > 2 && device->info.type == EFLA_DEVICE_TYPE_SOFTWARE) {
        out[1] = out[count - 1];
        count = 2;
    }
    return count;
}

double harness_tolerance(efla_dtype dtype) {
    switch (dtype) {
    case EFLA_DTYPE_F16: return 3e-3;
    case EFLA_DTYPE_BF16: return 1e-2;
    default: return 2e-5;
    }
}

/* ----- comparison ----- */

typedef struct slice_error {
    double error; /* relative Frobenius; inf for NaN */
    int64_t n, hv;
} slice_error;

/* Below this per-element magnitude a slice counts as zero: outputs smaller
 * than the storage dtype's normal range lose relative precision. */
static double magnitude_floor(efla_dtype dtype) {
    return dtype == EFLA_DTYPE_F16 ? 0x1p-14 : 1e-30;
}

/* `floor` is per element; `norm_floor` bounds the slice's norm itself. */
static double relative_error(double diff2, double ref2, int64_t count, double floor,
                             double norm_floor) {
    if (count == 0) return 0.0;
    const double denominator = fmax(fmax(sqrt(ref2), norm_floor), floor * sqrt((double)count));
    const double error = sqrt(diff2) / denominator;
    return isnan(error) ? INFINITY : error;
}

static void accumulate(double a, double e, double *diff2, double *ref2) {
    *diff2 += (a - e) * (a - e);
    *ref2 += e * e;
}

static double out_slice_error(const problem *p, const double *a, const double *e, int64_t n,
                              int64_t hv, double floor, double norm_floor) {
    int64_t row, first, length;
    problem_sequence(p, n, &row, &first, &length);
    double diff2 = 0.0, ref2 = 0.0;
    for (int64_t t = first; t < first + length; ++t)
        for (int64_t j = 0; j < p->Dv; ++j) {
            const int64_t i = ((row * p->T + t) * p->HV + hv) * p->Dv + j;
            accumulate(a[i], e[i], &diff2, &ref2);
        }
    return relative_error(diff2, ref2, length * p->Dv, fmax(floor, magnitude_floor(p->dtype)),
                          norm_floor);
}

static double state_slice_error(const problem *p, const double *a, const double *e, int64_t n,
                                int64_t hv, double floor, double norm_floor) {
    const int64_t count = p->Dk * p->Dv, base = (n * p->HV + hv) * count;
    double diff2 = 0.0, ref2 = 0.0;
    for (int64_t i = base; i < base + count; ++i)
        accumulate(a[i], e[i], &diff2, &ref2);
    return relative_error(diff2, ref2, count, fmax(floor, magnitude_floor(EFLA_DTYPE_F32)),
                          norm_floor);
}

typedef double (*slice_error_fn)(const problem *, const double *, const double *, int64_t, int64_t,
                                 double, double);

/* Root mean square of the reference over the whole tensor. */
static double reference_rms(const double *e, int64_t count) {
    double sum = 0.0;
    for (int64_t i = 0; i < count; ++i)
        sum += e[i] * e[i];
    return count ? sqrt(sum / (double)count) : 0.0;
}

/* norm_floors [N,HV] (NULL: none) floor each slice's norm: a final state
 * that cancellation left far below its peak along the sequence (with
 * Dk = Dv = 1 the state is one number, a sum of terms of both signs) still
 * carries rounding error of the peak's size. */
static bool check_slices(const problem *p, const char *label, const char *what, slice_error_fn fn,
                         const double *a, const double *e, const double *norm_floors, int64_t count,
                         double tol) {
    /* A slice far smaller than the tensor's typical magnitude got there by
     * cancellation too, which amplifies rounding; such a slice is judged
     * against 10% of the typical magnitude instead of its own. */
    const double floor = 0.1 * reference_rms(e, count);
    slice_error worst = {0.0, 0, 0};
    int64_t failing = 0;
    for (int64_t n = 0; n < p->N; ++n)
        for (int64_t hv = 0; hv < p->HV; ++hv) {
            const double norm_floor = norm_floors ? norm_floors[n * p->HV + hv] : 0.0;
            const double error = fn(p, a, e, n, hv, floor, norm_floor);
            if (!(error <= tol)) ++failing;
            if (!(error <= worst.error)) worst = (slice_error){error, n, hv};
        }
    if (!failing) return true;
    cr_expect_fail("%s: %s relative error %.3g > %.1g in slice (sequence %lld, value head %lld); "
                   "%lld of %lld slices fail",
                   label, what, worst.error, tol, (long long)worst.n, (long long)worst.hv,
                   (long long)failing, (long long)(p->N * p->HV));
    return false;
}

bool harness_compare(const problem *p, const char *label, const double *out,
                     const double *final_state, const double *expected_out,
                     const double *expected_state, const double *state_peak, double tol) {
    bool ok = true;
    if (out && expected_out)
        ok &= check_slices(p, label, "out", out_slice_error, out, expected_out, NULL,
                           p->B * p->T * p->HV * p->Dv, tol);
    if (final_state && expected_state)
        ok &= check_slices(p, label, "final_state", state_slice_error, final_state, expected_state,
                           state_peak, p->N * p->HV * p->Dk * p->Dv, tol);
    return ok;
}

void harness_label(char *buf, size_t size, const harness_device *device, const run_result *r,
                   const problem *p, uint64_t seed, const char *what) {
    const char *planned =
        r && r->status == EFLA_SUCCESS ? efla_algorithm_name(r->plan.algorithm) : NULL;
    snprintf(buf, size, "[%s path=%s plan=%s] dtype=%s seed=%llu %s", device->text,
             r && r->plan.kernel_path[0] ? r->plan.kernel_path : device->info.kernel_path,
             planned ? planned : "?", efla_dtype_name(p->dtype), (unsigned long long)seed, what);
}

bool harness_run_refused(const harness_device *device, const problem *p, const run_result *r,
                         const char *label) {
    if (r->status == EFLA_ERROR_UNSUPPORTED && p->dtype == EFLA_DTYPE_F16 &&
        !(device->info.flags & EFLA_DEVICE_FP16)) {
        cr_log_info("%s: f16 refused by a device without fp16: %s", label, r->error);
        return true;
    }
    cr_expect_fail("%s: %s", label, r->error);
    return false;
}

/* ----- the case driver ----- */

static void variant_text(char *buf, size_t size, const char *name, const run_options *v) {
    snprintf(buf, size, "case=%s algorithm=%s layout=%s%s%s%s", name,
             efla_algorithm_name(v->algorithm), layout_name(v->layout),
             v->in_place ? " in-place-state" : "", v->no_final_state ? " no-final-state" : "",
             v->cu_dtype == EFLA_DTYPE_I32 ? " cu_seqlens=i32" : "");
}

static void check_one_problem(const harness_device *device, const char *name, const problem *p,
                              uint64_t seed, const run_options *variants, size_t variant_count) {
    double *ref_out, *ref_state, *ref_peak;
    problem_reference(p, &ref_out, &ref_state, &ref_peak);
    const double tol = harness_tolerance(p->dtype);
    run_result first = {0};
    bool have_first = false;
    for (size_t i = 0; i < variant_count; ++i) {
        run_result r;
        char what[256], label[768];
        variant_text(what, sizeof what, name, &variants[i]);
        bool ran = device_run(device->context, p, &variants[i], &r);
        harness_label(label, sizeof label, device, &r, p, seed, what);
        if (!ran) {
            if (r.stray_writes)
                cr_expect_fail("%s: %s", label, r.error);
            else if (harness_run_refused(device, p, &r, label)) {
                run_result_free(&r);
                break;
            }
            run_result_free(&r);
            continue;
        }
        harness_compare(p, label, r.out, r.final_state, ref_out, ref_state, ref_peak, tol);
        if (!have_first) {
            first = r;
            have_first = true;
            continue;
        }
        char against[900];
        snprintf(against, sizeof against, "%s vs the first variant (%s)", label,
                 efla_algorithm_name(variants[0].algorithm));
        harness_compare(p, against, r.out, r.final_state, first.out, first.final_state, ref_peak,
                        tol);
        run_result_free(&r);
    }
    run_result_free(&first);
    free(ref_out);
    free(ref_state);
    free(ref_peak);
}

void harness_check_case(const char *name, const problem_spec *spec, const efla_dtype *dtypes,
                        size_t dtype_count, const run_options *variants, size_t variant_count) {
    efla_backend backends[HARNESS_MAX_BACKENDS];
    uint64_t seeds[HARNESS_MAX_SEEDS];
    const size_t backend_count = harness_backends(backends, HARNESS_MAX_BACKENDS);
    if (!backend_count) cr_skip_test("no backend selected (EFLA_TEST_BACKENDS)");
    for (size_t b = 0; b < backend_count; ++b) {
        harness_device device;
        if (!harness_open(backends[b], 0, &device)) continue;
        const size_t seed_count = harness_device_seeds(&device, seeds, HARNESS_MAX_SEEDS);
        for (size_t s = 0; s < seed_count; ++s)
            for (size_t d = 0; d < dtype_count; ++d) {
                problem p;
                problem_create(&p, spec, dtypes[d], rng_derive(seeds[s], name, dtypes[d]));
                check_one_problem(&device, name, &p, seeds[s], variants, variant_count);
                problem_destroy(&p);
            }
        harness_close(&device);
    }
}
