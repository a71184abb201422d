/* The API around the forward: version, names, devices, contexts with a
 * counting allocator and a job-system hook, wrapped host memory, backend
 * choice through EFLA_BACKEND, NULL-tolerant destroys, thread-local errors
 * and contexts used from several threads. */
#include "harness.h"
#include "rng.h"

#include <criterion/criterion.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

Test(api, version) {
    cr_expect_eq(efla_version(), EFLA_VERSION);
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", EFLA_VERSION_MAJOR, EFLA_VERSION_MINOR,
             EFLA_VERSION_PATCH);
    cr_expect_str_eq(efla_version_string(), expected);
    cr_expect_eq(EFLA_VERSION,
                 EFLA_MAKE_VERSION(EFLA_VERSION_MAJOR, EFLA_VERSION_MINOR, EFLA_VERSION_PATCH));
}

Test(api, status_strings) {
    static const efla_status statuses[] = {
        EFLA_SUCCESS,
        EFLA_ERROR_INVALID_ARGUMENT,
        EFLA_ERROR_INVALID_TENSOR,
        EFLA_ERROR_OUT_OF_BOUNDS,
        EFLA_ERROR_OVERLAP,
        EFLA_ERROR_BACKEND_MISMATCH,
        EFLA_ERROR_UNSUPPORTED,
        EFLA_ERROR_BACKEND_UNAVAILABLE,
        EFLA_ERROR_DEVICE_NOT_FOUND,
        EFLA_ERROR_DEVICE,
        EFLA_ERROR_DEVICE_LOST,
        EFLA_ERROR_KERNEL_BUILD,
        EFLA_ERROR_DRIVER_TOO_OLD,
        EFLA_ERROR_OUT_OF_HOST_MEMORY,
        EFLA_ERROR_OUT_OF_DEVICE_MEMORY,
        EFLA_ERROR_INTERNAL,
    };
    const char *unknown = efla_status_string((efla_status)999);
    cr_assert(unknown && *unknown, "an unknown status has no string");
    for (size_t i = 0; i < COUNT(statuses); ++i) {
        const char *text = efla_status_string(statuses[i]);
        cr_assert(text && *text, "status %d has no string", (int)statuses[i]);
        cr_expect(strcmp(text, unknown) != 0, "status %d reads as unknown", (int)statuses[i]);
        for (size_t j = 0; j < i; ++j)
            cr_expect(strcmp(text, efla_status_string(statuses[j])) != 0,
                      "statuses %d and %d share the string \"%s\"", (int)statuses[i],
                      (int)statuses[j], text);
    }
}

Test(api, dtype_algorithm_and_backend_names) {
    static const struct {
        efla_dtype dtype;
        const char *name;
        size_t size;
    } dtypes[] = {{EFLA_DTYPE_F32, "f32", 4},
                  {EFLA_DTYPE_F16, "f16", 2},
                  {EFLA_DTYPE_BF16, "bf16", 2},
                  {EFLA_DTYPE_I32, "i32", 4},
                  {EFLA_DTYPE_I64, "i64", 8}};
    for (size_t i = 0; i < COUNT(dtypes); ++i) {
        cr_expect_str_eq(efla_dtype_name(dtypes[i].dtype), dtypes[i].name);
        cr_expect_eq(efla_dtype_size(dtypes[i].dtype), dtypes[i].size);
    }
    cr_expect_null(efla_dtype_name(EFLA_DTYPE_INVALID));
    cr_expect_eq(efla_dtype_size((efla_dtype)99), 0);
    cr_expect_str_eq(efla_algorithm_name(EFLA_ALGORITHM_AUTO), "auto");
    cr_expect_str_eq(efla_algorithm_name(EFLA_ALGORITHM_CHUNKED), "chunked");
    cr_expect_str_eq(efla_algorithm_name(EFLA_ALGORITHM_RECURRENT), "recurrent");
    cr_expect_null(efla_algorithm_name((efla_algorithm)5));
    static const char *const backends[] = {"auto", "cpu", "vulkan", "opencl", "cuda"};
    for (int b = 0; b < EFLA_BACKEND_COUNT; ++b) {
        cr_expect_str_eq(efla_backend_name((efla_backend)b), backends[b]);
        efla_backend parsed = (efla_backend)-1;
        cr_expect_eq(efla_backend_from_name(backends[b], &parsed), EFLA_SUCCESS);
        cr_expect_eq(parsed, (efla_backend)b);
    }
    efla_backend parsed;
    cr_expect_eq(efla_backend_from_name("CpU", &parsed), EFLA_SUCCESS,
                 "names are case-insensitive");
    cr_expect_eq(parsed, EFLA_BACKEND_CPU);
    cr_expect_null(efla_backend_name((efla_backend)EFLA_BACKEND_COUNT));
    cr_expect_eq(efla_backend_compiled(EFLA_BACKEND_CPU), 1);
}

Test(api, devices_of_every_selected_backend) {
    efla_backend backends[HARNESS_MAX_BACKENDS];
    const size_t count = harness_backends(backends, HARNESS_MAX_BACKENDS);
    for (size_t b = 0; b < count; ++b) {
        const char *name = efla_backend_name(backends[b]);
        uint32_t devices = 0;
        cr_expect_eq(efla_device_count(backends[b], &devices), EFLA_SUCCESS);
        cr_expect_geq(devices, 1, "%s has no device", name);
        efla_device_info info = EFLA_DEVICE_INFO_INIT;
        cr_assert_eq(efla_device_get_info(backends[b], 0, &info), EFLA_SUCCESS, "%s: %s", name,
                     efla_last_error_message());
        cr_expect_eq(info.backend, backends[b]);
        cr_expect_eq(info.index, 0);
        cr_expect(info.name[0] != '\0', "%s device 0 has no name", name);
        cr_expect(info.kernel_path[0] != '\0', "%s device 0 names no kernel path", name);
        if (backends[b] == EFLA_BACKEND_CPU) { /* GPU APIs may not expose a unit count */
            cr_expect_geq(info.compute_units, 1, "%s device 0 has no compute units", name);
            cr_expect_eq(info.type, EFLA_DEVICE_TYPE_CPU);
            cr_expect_eq(devices, 1);
        }
    }
}

/* ----- contexts ----- */

Test(api, context_basics) {
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = EFLA_BACKEND_CPU;
    info.threads = 3;
    info.flags = EFLA_CONTEXT_PROFILING;
    efla_context context;
    cr_assert_eq(efla_context_create(&info, &context), EFLA_SUCCESS, "%s",
                 efla_last_error_message());
    cr_expect_eq(efla_context_backend(context), EFLA_BACKEND_CPU);
    efla_device_info device = EFLA_DEVICE_INFO_INIT;
    cr_expect_eq(efla_context_device_info(context, &device), EFLA_SUCCESS);
    cr_expect_eq(device.backend, EFLA_BACKEND_CPU);
    cr_expect_eq(efla_context_synchronize(context), EFLA_SUCCESS);
    problem p;
    const problem_spec spec = {.B = 1, .T = 8, .H = 1, .HV = 1, .Dk = 4, .Dv = 4};
    problem_create(&p, &spec, EFLA_DTYPE_F32, 5);
    run_result r;
    const run_options options = {0};
    cr_expect(device_run(context, &p, &options, &r), "%s", r.error);
    double ms = -1.0;
    cr_expect_eq(efla_context_last_forward_ms(context, &ms), EFLA_SUCCESS, "%s",
                 efla_last_error_message());
    cr_expect(ms >= 0.0, "last forward took %g ms", ms);
    run_result_free(&r);
    problem_destroy(&p);
    efla_context_destroy(context);
}

/* The stage times of one backend's chunked forward: known names, a sum no
 * larger than the whole forward's time, and the count without storage. */
static void check_stage_times(efla_backend backend) {
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = backend;
    info.flags = EFLA_CONTEXT_PROFILING;
    efla_context context;
    cr_assert_eq(efla_context_create(&info, &context), EFLA_SUCCESS, "%s",
                 efla_last_error_message());
    problem p;
    const problem_spec spec = {.B = 1, .T = 130, .H = 2, .HV = 2, .Dk = 32, .Dv = 32};
    problem_create(&p, &spec, EFLA_DTYPE_F32, 9);
    run_result r;
    const run_options options = {.algorithm = EFLA_ALGORITHM_CHUNKED};
    cr_expect(device_run(context, &p, &options, &r), "%s", r.error);
    uint32_t count = 99;
    efla_status status = efla_context_last_forward_stages(context, NULL, 0, &count);
    if (status == EFLA_ERROR_UNSUPPORTED) {
        cr_expect(backend == EFLA_BACKEND_CPU || backend == EFLA_BACKEND_CUDA,
                  "only CPU and CUDA (timed by CUPTI) lack stage times");
        cr_expect(strlen(efla_last_error_message()) > 0);
    } else {
        cr_expect_eq(status, EFLA_SUCCESS, "%s", efla_last_error_message());
        cr_expect(count >= 1 && count <= 8, "%u stages", count);
        efla_stage_time stages[8];
        uint32_t written = 0;
        double total = 0.0, sum = 0.0;
        cr_expect_eq(efla_context_last_forward_stages(context, stages, 8, &written), EFLA_SUCCESS);
        cr_expect_eq(written, count);
        cr_expect_eq(efla_context_last_forward_ms(context, &total), EFLA_SUCCESS);
        for (uint32_t i = 0; i < written && i < 8; ++i) {
            const char *n = stages[i].name;
            cr_expect(!strcmp(n, "prepare") || !strcmp(n, "state") || !strcmp(n, "output") ||
                          !strcmp(n, "recurrent"),
                      "stage %u is '%s'", i, n);
            cr_expect(stages[i].ms >= 0.0 && stages[i].dispatches >= 1);
            sum += stages[i].ms;
        }
        cr_expect(sum <= total * 1.001 + 1e-6, "stages %g ms, forward %g ms", sum, total);
    }
    cr_expect_eq(efla_context_last_forward_stages(context, NULL, 1, &count),
                 EFLA_ERROR_INVALID_ARGUMENT);
    run_result_free(&r);
    problem_destroy(&p);
    efla_context_destroy(context);
}

Test(api, stage_times) {
    efla_backend backends[HARNESS_MAX_BACKENDS];
    const size_t count = harness_backends(backends, HARNESS_MAX_BACKENDS);
    if (!count) cr_skip_test("no backend selected (EFLA_TEST_BACKENDS)");
    for (size_t b = 0; b < count; ++b)
        check_stage_times(backends[b]);
}

Test(api, destroy_accepts_null) {
    efla_context_destroy(NULL);
    efla_buffer_destroy(NULL);
    cr_expect_eq(efla_buffer_size(NULL), 0);
    cr_expect_eq(efla_context_backend(NULL), EFLA_BACKEND_AUTO);
}

Test(api, contiguous_tensor_description) {
    const int64_t shape[4] = {2, 3, 0, 5};
    const efla_tensor t = efla_tensor_contiguous(NULL, 12, EFLA_DTYPE_F16, 4, shape);
    cr_expect_eq(t.offset, 12);
    cr_expect_eq(t.dtype, EFLA_DTYPE_F16);
    cr_expect_eq(t.rank, 4);
    cr_expect_arr_eq(t.shape, shape, sizeof shape);
    const int64_t strides[4] = {15, 5, 5, 1}; /* a zero dimension counts as one */
    cr_expect_arr_eq(t.strides, strides, sizeof strides);
}

Test(api, buffer_round_trip_with_offsets) {
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    efla_backend backends[HARNESS_MAX_BACKENDS];
    const size_t count = harness_backends(backends, HARNESS_MAX_BACKENDS);
    for (size_t b = 0; b < count; ++b) {
        info.backend = backends[b];
        efla_context context;
        efla_buffer buffer;
        cr_assert_eq(efla_context_create(&info, &context), EFLA_SUCCESS);
        cr_assert_eq(efla_buffer_create(context, 1000, &buffer), EFLA_SUCCESS);
        cr_expect_eq(efla_buffer_size(buffer), 1000);
        unsigned char data[1000], back[1000];
        for (int i = 0; i < 1000; ++i)
            data[i] = (unsigned char)(i * 7 + 3);
        cr_expect_eq(efla_buffer_upload(buffer, 0, data, 1000), EFLA_SUCCESS);
        cr_expect_eq(efla_buffer_upload(buffer, 3, data, 5), EFLA_SUCCESS); /* unaligned */
        cr_expect_eq(efla_buffer_download(buffer, 1, back, 998), EFLA_SUCCESS);
        memmove(data + 3, data, 5);
        cr_expect_arr_eq(back, data + 1, 998, "%s: buffer contents differ",
                         efla_backend_name(backends[b]));
        efla_buffer_destroy(buffer);
        efla_context_destroy(context);
    }
}

/* ----- a counting allocator ----- */

typedef struct counting_allocator {
    atomic_long allocations, frees, misaligned, live_bytes;
} counting_allocator;

typedef struct allocation_header {
    size_t size;
    size_t offset; /* from the malloc'd block to the returned pointer */
} allocation_header;

static void *counting_alloc(void *user, size_t size, size_t alignment) {
    counting_allocator *counts = user;
    if (alignment < sizeof(allocation_header)) alignment = sizeof(allocation_header);
    unsigned char *block = malloc(size + 2 * alignment);
    if (!block) return NULL;
    unsigned char *ptr = block + alignment;
    ptr += (alignment - (uintptr_t)ptr % alignment) % alignment;
    allocation_header header = {size, (size_t)(ptr - block)};
    memcpy(ptr - sizeof header, &header, sizeof header);
    atomic_fetch_add(&counts->allocations, 1);
    atomic_fetch_add(&counts->live_bytes, (long)size);
    if ((uintptr_t)ptr % alignment) atomic_fetch_add(&counts->misaligned, 1);
    return ptr;
}

static void counting_free(void *user, void *ptr) {
    counting_allocator *counts = user;
    if (!ptr) return;
    allocation_header header;
    memcpy(&header, (unsigned char *)ptr - sizeof header, sizeof header);
    atomic_fetch_add(&counts->frees, 1);
    atomic_fetch_sub(&counts->live_bytes, (long)header.size);
    free((unsigned char *)ptr - header.offset);
}

static void check_allocator_on(efla_backend backend) {
    counting_allocator counts = {0};
    const efla_allocator allocator = {&counts, counting_alloc, counting_free};
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = backend;
    info.allocator = &allocator;
    harness_device device = {.backend = backend};
    cr_assert_eq(efla_context_create(&info, &device.context), EFLA_SUCCESS, "%s",
                 efla_last_error_message());
    efla_context_device_info(device.context, &(efla_device_info)EFLA_DEVICE_INFO_INIT);
    snprintf(device.text, sizeof device.text, "%s with a counting allocator",
             efla_backend_name(backend));
    static const int64_t lengths[] = {3, 0, 70};
    const problem_spec spec = {.B = 1,
                               .T = 73,
                               .H = 1,
                               .HV = 2,
                               .Dk = 8,
                               .Dv = 8,
                               .lengths = lengths,
                               .num_sequences = 3,
                               .initial_state = true};
    problem p;
    problem_create(&p, &spec, EFLA_DTYPE_F32, 9);
    double *ref_out, *ref_state, *ref_peak;
    problem_reference(&p, &ref_out, &ref_state, &ref_peak);
    run_result r;
    const run_options options = {0};
    if (device_run(device.context, &p, &options, &r))
        harness_compare(&p, device.text, r.out, r.final_state, ref_out, ref_state, ref_peak, 2e-5);
    else
        cr_expect_fail("%s: %s", device.text, r.error);
    run_result_free(&r);
    efla_context_destroy(device.context);
    const char *name = efla_backend_name(backend);
    cr_expect_gt(counts.allocations, 0, "%s never used the allocator", name);
    cr_expect_eq(counts.allocations, counts.frees, "%s: %ld allocations but %ld frees", name,
                 (long)counts.allocations, (long)counts.frees);
    cr_expect_eq(counts.live_bytes, 0, "%s: %ld bytes never freed", name, (long)counts.live_bytes);
    cr_expect_eq(counts.misaligned, 0, "%s: misaligned allocations", name);
    free(ref_out);
    free(ref_state);
    free(ref_peak);
    problem_destroy(&p);
}

Test(api, custom_allocator_balances) {
    efla_backend backends[HARNESS_MAX_BACKENDS];
    const size_t count = harness_backends(backends, HARNESS_MAX_BACKENDS);
    for (size_t b = 0; b < count; ++b)
        check_allocator_on(backends[b]);
}

/* ----- the CPU backend on the caller's job system ----- */

typedef struct job_system {
    atomic_int calls;
    atomic_long tasks;
} job_system;

/* Runs the tasks backwards on the calling thread: any order must do. */
static void reverse_parallel_for(void *user, efla_task_fn fn, void *arg, uint32_t count) {
    job_system *jobs = user;
    atomic_fetch_add(&jobs->calls, 1);
    atomic_fetch_add(&jobs->tasks, (long)count);
    for (uint32_t i = count; i-- > 0;)
        fn(arg, i);
}

static bool run_on_cpu(const efla_context_create_info *info, const problem *p, run_result *r) {
    efla_context context;
    cr_assert_eq(efla_context_create(info, &context), EFLA_SUCCESS, "%s",
                 efla_last_error_message());
    const run_options options = {.algorithm = EFLA_ALGORITHM_AUTO};
    const bool ok = device_run(context, p, &options, r);
    cr_expect(ok, "%s", r->error);
    efla_context_destroy(context);
    return ok;
}

Test(api, parallel_for_hook_runs_the_work) {
    const problem_spec spec = {.B = 2,
                               .T = 100,
                               .H = 2,
                               .HV = 4,
                               .Dk = 16,
                               .Dv = 32,
                               .keys = KEYS_HARD,
                               .betas = BETA_MIXED,
                               .initial_state = true};
    problem p;
    problem_create(&p, &spec, EFLA_DTYPE_BF16, 13);
    job_system jobs = {0};
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = EFLA_BACKEND_CPU;
    info.parallel_for = reverse_parallel_for;
    info.parallel_for_user = &jobs;
    run_result hooked, pooled;
    const bool hooked_ok = run_on_cpu(&info, &p, &hooked);
    cr_expect_gt(jobs.calls, 0, "the parallel_for hook was never called");
    cr_expect_geq(jobs.tasks, 2, "the hook was given %ld tasks", (long)jobs.tasks);
    info.parallel_for = NULL;
    info.parallel_for_user = NULL;
    info.threads = 2;
    if (hooked_ok && run_on_cpu(&info, &p, &pooled)) {
        cr_expect_arr_eq(hooked.out, pooled.out, sizeof *pooled.out * (size_t)problem_v_count(&p),
                         "out depends on how tasks are scheduled");
        cr_expect_arr_eq(hooked.final_state, pooled.final_state,
                         sizeof *pooled.final_state * (size_t)problem_state_count(&p),
                         "final_state depends on how tasks are scheduled");
        run_result_free(&pooled);
    }
    if (hooked_ok) run_result_free(&hooked);
    problem_destroy(&p);
}

/* ----- wrapped host memory ----- */

typedef struct host_tensors {
    float *q, *k, *v, *beta, *out, *state;
} host_tensors;

static float *to_floats(const double *values, int64_t count) {
    float *floats = malloc(sizeof *floats * (size_t)count);
    for (int64_t i = 0; i < count; ++i)
        floats[i] = (float)values[i];
    return floats;
}

static efla_tensor wrap(efla_context context, float *memory, uint32_t rank, const int64_t *shape,
                        efla_status *status, efla_buffer *buffer) {
    uint64_t count = 1;
    for (uint32_t i = 0; i < rank; ++i)
        count *= (uint64_t)shape[i];
    if (!*status) *status = efla_buffer_wrap_host(context, memory, count * 4, buffer);
    return efla_tensor_contiguous(*buffer, 0, EFLA_DTYPE_F32, rank, shape);
}

/* Runs p on buffers wrapping h's memory; false when the backend cannot wrap
 * (allowed except on the CPU) or failed. Results end up in h: on the CPU in
 * place, elsewhere through downloads into separate memory. */
static bool run_wrapped(efla_backend backend, const problem *p, const host_tensors *h) {
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = backend;
    efla_context context;
    cr_assert_eq(efla_context_create(&info, &context), EFLA_SUCCESS);
    const int64_t qk[4] = {p->B, p->T, p->H, p->Dk}, vo[4] = {p->B, p->T, p->HV, p->Dv},
                  beta[3] = {p->B, p->T, p->HV}, state[4] = {p->N, p->HV, p->Dk, p->Dv};
    efla_buffer buffers[6] = {0};
    efla_status status = EFLA_SUCCESS;
    efla_forward_desc desc = EFLA_FORWARD_DESC_INIT;
    desc.q = wrap(context, h->q, 4, qk, &status, &buffers[0]);
    desc.k = wrap(context, h->k, 4, qk, &status, &buffers[1]);
    desc.v = wrap(context, h->v, 4, vo, &status, &buffers[2]);
    desc.beta = wrap(context, h->beta, 3, beta, &status, &buffers[3]);
    desc.out = wrap(context, h->out, 4, vo, &status, &buffers[4]);
    desc.initial_state = wrap(context, h->state, 4, state, &status, &buffers[5]);
    desc.final_state = desc.initial_state;
    const char *name = efla_backend_name(backend);
    bool ran = false;
    if (status == EFLA_ERROR_UNSUPPORTED && backend != EFLA_BACKEND_CPU) {
        cr_log_info("%s cannot wrap host memory: %s", name, efla_last_error_message());
    } else {
        cr_expect_eq(status, EFLA_SUCCESS, "%s: wrap: %s", name, efla_last_error_message());
        if (!status) status = efla_forward(context, &desc);
        if (!status) status = efla_context_synchronize(context);
        cr_expect_eq(status, EFLA_SUCCESS, "%s: %s", name, efla_last_error_message());
        const size_t out_bytes = sizeof *h->out * (size_t)problem_v_count(p);
        const size_t state_bytes = sizeof *h->state * (size_t)problem_state_count(p);
        if (!status && backend != EFLA_BACKEND_CPU) {
            float *out = malloc(out_bytes), *final = malloc(state_bytes);
            status = efla_buffer_download(buffers[4], 0, out, out_bytes);
            if (!status) status = efla_buffer_download(buffers[5], 0, final, state_bytes);
            cr_expect_eq(status, EFLA_SUCCESS, "%s: download: %s", name, efla_last_error_message());
            memcpy(h->out, out, out_bytes);
            memcpy(h->state, final, state_bytes);
            free(out), free(final);
        }
        ran = status == EFLA_SUCCESS;
    }
    for (int i = 0; i < 6; ++i)
        efla_buffer_destroy(buffers[i]);
    efla_context_destroy(context);
    return ran;
}

Test(api, wrapped_host_memory) {
    const problem_spec spec = {
        .B = 2, .T = 70, .H = 1, .HV = 2, .Dk = 8, .Dv = 8, .initial_state = true};
    problem p;
    problem_create(&p, &spec, EFLA_DTYPE_F32, 17);
    double *ref_out, *ref_state, *ref_peak;
    problem_reference(&p, &ref_out, &ref_state, &ref_peak);
    efla_backend backends[HARNESS_MAX_BACKENDS];
    const size_t count = harness_backends(backends, HARNESS_MAX_BACKENDS);
    for (size_t b = 0; b < count; ++b) {
        host_tensors h = {to_floats(p.q, problem_q_count(&p)),
                          to_floats(p.k, problem_q_count(&p)),
                          to_floats(p.v, problem_v_count(&p)),
                          to_floats(p.beta, problem_beta_count(&p)),
                          calloc((size_t)problem_v_count(&p), sizeof(float)),
                          to_floats(p.initial_state, problem_state_count(&p))};
        const bool ran = run_wrapped(backends[b], &p, &h);
        double *out = calloc((size_t)problem_v_count(&p), sizeof *out);
        double *state = calloc((size_t)problem_state_count(&p), sizeof *state);
        for (int64_t i = 0; i < problem_v_count(&p); ++i)
            out[i] = h.out[i];
        for (int64_t i = 0; i < problem_state_count(&p); ++i)
            state[i] = h.state[i];
        char label[64];
        snprintf(label, sizeof label, "%s wrapped host memory", efla_backend_name(backends[b]));
        if (ran) harness_compare(&p, label, out, state, ref_out, ref_state, ref_peak, 2e-5);
        free(out), free(state);
        free(h.q), free(h.k), free(h.v), free(h.beta), free(h.out), free(h.state);
    }
    free(ref_out), free(ref_state), free(ref_peak);
    problem_destroy(&p);
}

/* ----- choosing the backend from the environment ----- */

Test(api, efla_backend_environment_variable) {
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT; /* AUTO */
    efla_context context = NULL;
    setenv("EFLA_BACKEND", "cpu", 1);
    cr_assert_eq(efla_context_create(&info, &context), EFLA_SUCCESS, "%s",
                 efla_last_error_message());
    cr_expect_eq(efla_context_backend(context), EFLA_BACKEND_CPU);
    efla_context_destroy(context);
    setenv("EFLA_BACKEND", "CPU", 1);
    setenv("EFLA_DEVICE", "0", 1);
    cr_assert_eq(efla_context_create(&info, &context), EFLA_SUCCESS, "%s",
                 efla_last_error_message());
    cr_expect_eq(efla_context_backend(context), EFLA_BACKEND_CPU);
    efla_context_destroy(context);
    setenv("EFLA_DEVICE", "7", 1);
    cr_expect_eq(efla_context_create(&info, &context), EFLA_ERROR_DEVICE_NOT_FOUND, "%s",
                 efla_last_error_message());
    unsetenv("EFLA_DEVICE");
    setenv("EFLA_BACKEND", "abacus", 1);
    cr_expect_eq(efla_context_create(&info, &context), EFLA_ERROR_INVALID_ARGUMENT);
    cr_expect(strstr(efla_last_error_message(), "EFLA_BACKEND") != NULL,
              "the message does not name EFLA_BACKEND: %s", efla_last_error_message());
    unsetenv("EFLA_BACKEND");
}

/* ----- threads ----- */

static void *fail_on_another_thread(void *unused) {
    (void)unused;
    efla_backend backend;
    efla_backend_from_name("other-thread", &backend);
    return NULL;
}

Test(api, error_messages_are_per_thread) {
    efla_backend backend;
    cr_assert_neq(efla_backend_from_name("this-thread", &backend), EFLA_SUCCESS);
    pthread_t thread;
    cr_assert_eq(pthread_create(&thread, NULL, fail_on_another_thread, NULL), 0);
    pthread_join(thread, NULL);
    cr_expect(strstr(efla_last_error_message(), "this-thread") != NULL,
              "another thread's error replaced this thread's: %s", efla_last_error_message());
}

typedef struct thread_job {
    efla_backend backend;
    const problem *p;
    const double *ref_out, *ref_state;
    bool ok;
    char error[800];
} thread_job;

/* Its own context, several forwards, each checked against the reference. */
static void *run_own_context(void *opaque) {
    thread_job *job = opaque;
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = job->backend;
    info.threads = 2;
    efla_context context;
    job->ok = efla_context_create(&info, &context) == EFLA_SUCCESS;
    snprintf(job->error, sizeof job->error, "context: %s", efla_last_error_message());
    for (int i = 0; job->ok && i < 4; ++i) {
        const run_options options = {.algorithm =
                                         i % 2 ? EFLA_ALGORITHM_CHUNKED : EFLA_ALGORITHM_RECURRENT};
        run_result r;
        job->ok = device_run(context, job->p, &options, &r);
        snprintf(job->error, sizeof job->error, "%s", r.error);
        for (int64_t e = 0; job->ok && e < problem_v_count(job->p); ++e)
            job->ok = fabs(r.out[e] - job->ref_out[e]) <= 1e-4 * (1 + fabs(job->ref_out[e]));
        if (!job->ok && !r.error[0]) snprintf(job->error, sizeof job->error, "wrong out");
        run_result_free(&r);
    }
    if (job->ok) efla_context_destroy(context);
    return NULL;
}

Test(api, contexts_on_several_threads) {
    const problem_spec spec = {
        .B = 2, .T = 90, .H = 2, .HV = 2, .Dk = 16, .Dv = 16, .initial_state = true};
    problem p;
    problem_create(&p, &spec, EFLA_DTYPE_F32, 23);
    double *ref_out, *ref_state;
    problem_reference(&p, &ref_out, &ref_state, NULL);
    efla_backend backends[HARNESS_MAX_BACKENDS];
    const size_t count = harness_backends(backends, HARNESS_MAX_BACKENDS);
    for (size_t b = 0; b < count; ++b) {
        thread_job jobs[3];
        pthread_t threads[3];
        for (int i = 0; i < 3; ++i) {
            jobs[i] = (thread_job){backends[b], &p, ref_out, ref_state, false, {0}};
            cr_assert_eq(pthread_create(&threads[i], NULL, run_own_context, &jobs[i]), 0);
        }
        for (int i = 0; i < 3; ++i) {
            pthread_join(threads[i], NULL);
            cr_expect(jobs[i].ok, "%s thread %d: %s", efla_backend_name(backends[b]), i,
                      jobs[i].error);
        }
    }
    free(ref_out), free(ref_state);
    problem_destroy(&p);
}
