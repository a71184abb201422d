/* Bitwise reproducibility (repeated runs; CPU thread counts) and what
 * efla_forward_query reports (the AUTO rule, the kernel path). */
#include "harness.h"
#include "rng.h"

#include <criterion/criterion.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

static const efla_algorithm algorithms[] = {EFLA_ALGORITHM_RECURRENT, EFLA_ALGORITHM_CHUNKED,
                                            EFLA_ALGORITHM_AUTO};

/* Enough (row, head) tasks and chunks to spread over threads; small enough
 * for software devices. */
static const problem_spec determinism_spec = {
    .B = 2,
    .T = 130,
    .H = 2,
    .HV = 4,
    .Dk = 24,
    .Dv = 40,
    .keys = KEYS_HARD,
    .betas = BETA_MIXED,
    .initial_state = true,
};

static const int64_t varlen_lengths[] = {3, 0, 100, 64, 65};

static problem_spec varlen_spec(void) {
    problem_spec spec = determinism_spec;
    spec.B = 1;
    spec.T = 232;
    spec.lengths = varlen_lengths;
    spec.num_sequences = COUNT(varlen_lengths);
    return spec;
}

/* The first element where two runs differ, or -1. */
static int64_t first_difference(const double *a, const double *b, int64_t count) {
    for (int64_t i = 0; i < count; ++i)
        if (memcmp(&a[i], &b[i], sizeof *a) != 0) return i;
    return -1;
}

static void expect_identical(const problem *p, const run_result *a, const run_result *b,
                             const char *label) {
    const int64_t out_at = first_difference(a->out, b->out, problem_v_count(p));
    cr_expect(out_at < 0, "%s: out differs at element %lld (%.9g vs %.9g)", label,
              (long long)out_at, out_at < 0 ? 0.0 : a->out[out_at],
              out_at < 0 ? 0.0 : b->out[out_at]);
    const int64_t state_at =
        first_difference(a->final_state, b->final_state, problem_state_count(p));
    cr_expect(state_at < 0, "%s: final_state differs at element %lld (%.9g vs %.9g)", label,
              (long long)state_at, state_at < 0 ? 0.0 : a->final_state[state_at],
              state_at < 0 ? 0.0 : b->final_state[state_at]);
}

static bool run_or_report(const harness_device *device, const problem *p, uint64_t seed,
                          const run_options *options, const char *what, run_result *r) {
    if (device_run(device->context, p, options, r)) return true;
    char label[768];
    harness_label(label, sizeof label, device, r, p, seed, what);
    if (r->stray_writes)
        cr_expect_fail("%s: %s", label, r->error);
    else
        harness_run_refused(device, p, r, label);
    run_result_free(r);
    return false;
}

/* EFLA_TEST_SEED when replaying, else this run's fresh seed: one is enough
 * for bitwise comparisons, which do not depend on the data's luck. */
static uint64_t one_seed(void) {
    uint64_t seeds[HARNESS_MAX_SEEDS];
    const size_t count = harness_seeds(seeds, HARNESS_MAX_SEEDS);
    return seeds[count - 1];
}

static void check_repeatable(const harness_device *device, const problem *p, uint64_t seed) {
    for (size_t a = 0; a < COUNT(algorithms); ++a) {
        char what[128], label[768];
        snprintf(what, sizeof what, "case=repeat algorithm=%s%s",
                 efla_algorithm_name(algorithms[a]), p->cu_seqlens ? " varlen" : "");
        const run_options options = {.algorithm = algorithms[a]};
        run_result first, second;
        if (!run_or_report(device, p, seed, &options, what, &first)) return;
        if (run_or_report(device, p, seed, &options, what, &second)) {
            harness_label(label, sizeof label, device, &second, p, seed, what);
            expect_identical(p, &first, &second, label);
            run_result_free(&second);
        }
        run_result_free(&first);
    }
}

Test(determinism, repeated_runs_are_bitwise_identical) {
    efla_backend backends[HARNESS_MAX_BACKENDS];
    const size_t backend_count = harness_backends(backends, HARNESS_MAX_BACKENDS);
    const uint64_t seed = one_seed();
    const problem_spec specs[] = {determinism_spec, varlen_spec()};
    for (size_t b = 0; b < backend_count; ++b) {
        harness_device device;
        if (!harness_open(backends[b], 0, &device)) continue;
        for (size_t s = 0; s < COUNT(specs); ++s)
            for (size_t d = 0; d < 3; ++d) {
                problem p;
                problem_create(&p, &specs[s], harness_all_dtypes[d],
                               rng_derive(seed, "repeat", harness_all_dtypes[d]));
                check_repeatable(&device, &p, seed);
                problem_destroy(&p);
            }
        harness_close(&device);
    }
}

/* Every thread count gives the bits of the single-threaded run. */
static void check_thread_counts(const problem *p, uint64_t seed, efla_algorithm algorithm) {
    static const uint32_t thread_counts[] = {1, 2, 3, 8};
    const run_options options = {.algorithm = algorithm};
    run_result baseline;
    harness_device device;
    if (!harness_open(EFLA_BACKEND_CPU, 1, &device)) return;
    const bool ok = run_or_report(&device, p, seed, &options, "threads=1", &baseline);
    harness_close(&device);
    if (!ok) return;
    for (size_t i = 1; i < COUNT(thread_counts); ++i) {
        char what[128], label[768];
        snprintf(what, sizeof what, "case=threads algorithm=%s%s threads=%u vs 1",
                 efla_algorithm_name(algorithm), p->cu_seqlens ? " varlen" : "", thread_counts[i]);
        run_result r;
        if (!harness_open(EFLA_BACKEND_CPU, thread_counts[i], &device)) continue;
        if (run_or_report(&device, p, seed, &options, what, &r)) {
            harness_label(label, sizeof label, &device, &r, p, seed, what);
            expect_identical(p, &baseline, &r, label);
            run_result_free(&r);
        }
        harness_close(&device);
    }
    run_result_free(&baseline);
}

Test(determinism, cpu_thread_counts_give_identical_bits) {
    if (!harness_backend_selected(EFLA_BACKEND_CPU))
        cr_skip_test("the CPU backend is not selected");
    const uint64_t seed = one_seed();
    const problem_spec specs[] = {determinism_spec, varlen_spec()};
    for (size_t s = 0; s < COUNT(specs); ++s)
        for (size_t d = 0; d < 3; ++d) {
            problem p;
            problem_create(&p, &specs[s], harness_all_dtypes[d],
                           rng_derive(seed, "threads", harness_all_dtypes[d]));
            for (size_t a = 0; a < COUNT(algorithms); ++a)
                check_thread_counts(&p, seed, algorithms[a]);
            problem_destroy(&p);
        }
}

/* ----- efla_forward_query ----- */

typedef struct plan_case {
    int64_t T;
    const int64_t *lengths;
    int64_t num_sequences;
    efla_algorithm asked, expected;
} plan_case;

static const int64_t short_lengths[] = {10, 20}, long_lengths[] = {100, 70},
                     mixed_lengths[] = {10, 100};

static const plan_case plan_cases[] = {
    {40, NULL, 0, EFLA_ALGORITHM_RECURRENT, EFLA_ALGORITHM_RECURRENT},
    {40, NULL, 0, EFLA_ALGORITHM_CHUNKED, EFLA_ALGORITHM_CHUNKED},
    {150, NULL, 0, EFLA_ALGORITHM_RECURRENT, EFLA_ALGORITHM_RECURRENT},
    {150, NULL, 0, EFLA_ALGORITHM_CHUNKED, EFLA_ALGORITHM_CHUNKED},
    {1, NULL, 0, EFLA_ALGORITHM_AUTO, EFLA_ALGORITHM_RECURRENT},
    {64, NULL, 0, EFLA_ALGORITHM_AUTO, EFLA_ALGORITHM_RECURRENT},
    {65, NULL, 0, EFLA_ALGORITHM_AUTO, EFLA_ALGORITHM_CHUNKED},
    {30, short_lengths, 2, EFLA_ALGORITHM_AUTO, EFLA_ALGORITHM_RECURRENT},
    {170, long_lengths, 2, EFLA_ALGORITHM_AUTO, EFLA_ALGORITHM_CHUNKED},
    {110, mixed_lengths, 2, EFLA_ALGORITHM_AUTO, EFLA_ALGORITHM_AUTO},
};

static void check_plan(const harness_device *device, const plan_case *c) {
    problem_spec spec = {.B = c->lengths ? 1 : 2,
                         .T = c->T,
                         .H = 1,
                         .HV = 2,
                         .Dk = 8,
                         .Dv = 8,
                         .lengths = c->lengths,
                         .num_sequences = c->num_sequences};
    problem p;
    problem_create(&p, &spec, EFLA_DTYPE_F32, 1);
    const run_options options = {.algorithm = c->asked};
    run_result r;
    char what[128], label[768];
    snprintf(what, sizeof what, "case=plan T=%lld%s asked=%s", (long long)c->T,
             c->lengths ? " varlen" : "", efla_algorithm_name(c->asked));
    if (run_or_report(device, &p, 1, &options, what, &r)) {
        harness_label(label, sizeof label, device, &r, &p, 1, what);
        cr_expect(
            r.plan.algorithm == c->expected, "%s: efla_forward_query says %s, expected %s", label,
            efla_algorithm_name(r.plan.algorithm) ? efla_algorithm_name(r.plan.algorithm) : "?",
            efla_algorithm_name(c->expected));
        cr_expect(r.plan.kernel_path[0] != '\0', "%s: empty kernel_path", label);
        run_result_free(&r);
    }
    problem_destroy(&p);
}

/* The path EFLA_PATH forces on `backend` ("path" or "backend:path" entries,
 * comma-separated; the last that applies wins), or NULL. */
static const char *forced_path(const char *backend, char *buffer, size_t size) {
    const char *text = getenv("EFLA_PATH");
    const char *found = NULL;
    char entry[64];
    while (text && *text) {
        size_t length = strcspn(text, ",");
        snprintf(entry, sizeof entry, "%.*s", (int)length, text);
        text += length + (text[length] == ',');
        const char *colon = strchr(entry, ':');
        const char *path = colon ? colon + 1 : entry;
        bool applies = !colon || ((size_t)(colon - entry) == strlen(backend) &&
                                  strncasecmp(entry, backend, strlen(backend)) == 0);
        if (!applies || !*path) continue;
        snprintf(buffer, size, "%s", path);
        found = buffer;
    }
    return found;
}

Test(plan, query_reports_the_algorithm_and_kernel_path) {
    efla_backend backends[HARNESS_MAX_BACKENDS];
    const size_t backend_count = harness_backends(backends, HARNESS_MAX_BACKENDS);
    for (size_t b = 0; b < backend_count; ++b) {
        harness_device device;
        if (!harness_open(backends[b], 0, &device)) continue;
        cr_expect(device.info.kernel_path[0] != '\0', "%s: device info has no kernel_path",
                  device.text);
        char buffer[64];
        const char *forced = forced_path(efla_backend_name(backends[b]), buffer, sizeof buffer);
        if (forced && *forced && strcasecmp(forced, "auto") != 0)
            cr_expect(strcasecmp(device.info.kernel_path, forced) == 0,
                      "%s: EFLA_PATH=%s but the context reports kernel path %s", device.text,
                      forced, device.info.kernel_path);
        for (size_t i = 0; i < COUNT(plan_cases); ++i)
            check_plan(&device, &plan_cases[i]);
        harness_close(&device);
    }
}
