/* State across calls: carrying the final state into the next call equals
 * one long call, token-by-token decode with the state updated in place on
 * the device, and varlen batches equal separate calls per sequence. */
#include "harness.h"
#include "rng.h"
#include "storage.h"

#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

static const efla_algorithm algorithms[] = {EFLA_ALGORITHM_RECURRENT, EFLA_ALGORITHM_CHUNKED,
                                            EFLA_ALGORITHM_AUTO};

typedef void (*problem_check)(const harness_device *device, const problem *p, uint64_t seed);

/* Calls check for every selected backend, seed and dtype. */
static void for_each_problem(const char *name, const problem_spec *spec, problem_check check) {
    efla_backend backends[HARNESS_MAX_BACKENDS];
    uint64_t seeds[HARNESS_MAX_SEEDS];
    const size_t backend_count = harness_backends(backends, HARNESS_MAX_BACKENDS);
    if (!backend_count) cr_skip_test("no backend selected (EFLA_TEST_BACKENDS)");
    for (size_t b = 0; b < backend_count; ++b) {
        harness_device device;
        if (!harness_open(backends[b], 0, &device)) continue;
        const size_t seed_count = harness_device_seeds(&device, seeds, HARNESS_MAX_SEEDS);
        for (size_t s = 0; s < seed_count; ++s)
            for (size_t d = 0; d < 3; ++d) {
                problem p;
                const efla_dtype dtype = harness_all_dtypes[d];
                problem_create(&p, spec, dtype, rng_derive(seeds[s], name, dtype));
                check(&device, &p, seeds[s]);
                problem_destroy(&p);
            }
        harness_close(&device);
    }
}

/* Runs p; on failure reports it (unless refused) and returns false. */
static bool run_checked(const harness_device *device, const problem *p, uint64_t seed,
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

/* ----- carry: call(x1, S0) -> S1, call(x2, S1) == call(x1 x2, S0) ----- */

/* dst[B, Ta+Tb, inner] = a[B, Ta, inner] followed by b[B, Tb, inner]. */
static void concat_tokens(const double *a, int64_t Ta, const double *b, int64_t Tb, int64_t B,
                          int64_t inner, double *dst) {
    for (int64_t row = 0; row < B; ++row) {
        memcpy(dst + row * (Ta + Tb) * inner, a + row * Ta * inner,
               sizeof *dst * (size_t)(Ta * inner));
        memcpy(dst + (row * (Ta + Tb) + Ta) * inner, b + row * Tb * inner,
               sizeof *dst * (size_t)(Tb * inner));
    }
}

static void check_split(const harness_device *device, const problem *p, uint64_t seed,
                        efla_algorithm algorithm, int64_t split, const run_result *whole,
                        const double *ref_out, const double *ref_state, const double *ref_peak) {
    char what[160], label[768];
    snprintf(what, sizeof what, "case=carry algorithm=%s split=%lld+%lld",
             efla_algorithm_name(algorithm), (long long)split, (long long)(p->T - split));
    const run_options options = {.algorithm = algorithm};
    problem first, second;
    run_result r1, r2;
    problem_slice_tokens(p, 0, split, p->initial_state, &first);
    if (run_checked(device, &first, seed, &options, what, &r1)) {
        problem_slice_tokens(p, split, p->T - split, r1.final_state, &second);
        if (run_checked(device, &second, seed, &options, what, &r2)) {
            double *out = malloc(sizeof *out * (size_t)(problem_v_count(p) + 1));
            concat_tokens(r1.out, split, r2.out, p->T - split, p->B, p->HV * p->Dv, out);
            harness_label(label, sizeof label, device, &r2, p, seed, what);
            const double tol = harness_tolerance(p->dtype);
            harness_compare(p, label, out, r2.final_state, ref_out, ref_state, ref_peak, tol);
            strncat(label, " vs one call", sizeof label - strlen(label) - 1);
            harness_compare(p, label, out, r2.final_state, whole->out, whole->final_state, ref_peak,
                            tol);
            free(out);
            run_result_free(&r2);
        }
        problem_destroy(&second);
        run_result_free(&r1);
    }
    problem_destroy(&first);
}

static void check_carry(const harness_device *device, const problem *p, uint64_t seed) {
    static const int64_t splits[] = {1, 37, 100};
    double *ref_out, *ref_state, *ref_peak;
    problem_reference(p, &ref_out, &ref_state, &ref_peak);
    for (size_t a = 0; a < COUNT(algorithms); ++a) {
        const run_options options = {.algorithm = algorithms[a]};
        run_result whole;
        if (!run_checked(device, p, seed, &options, "case=carry (one call)", &whole)) break;
        for (size_t s = 0; s < COUNT(splits); ++s)
            check_split(device, p, seed, algorithms[a], splits[s], &whole, ref_out, ref_state,
                        ref_peak);
        run_result_free(&whole);
    }
    free(ref_out);
    free(ref_state);
    free(ref_peak);
}

Test(state, carry_across_calls_equals_one_call) {
    const problem_spec spec = {.B = 2,
                               .T = 150,
                               .H = 2,
                               .HV = 2,
                               .Dk = 32,
                               .Dv = 24,
                               .keys = KEYS_GAUSSIAN,
                               .betas = BETA_UNIFORM,
                               .initial_state = true};
    for_each_problem("carry", &spec, check_carry);
}

/* ----- decode: one token per call, the state in place on the device ----- */

typedef struct decode_buffers {
    efla_buffer q, k, v, beta, out, state;
} decode_buffers;

static efla_status upload_array(efla_context context, efla_dtype dtype, const double *values,
                                int64_t count, efla_buffer *buffer) {
    const size_t size = dtype == EFLA_DTYPE_F32 ? 4 : 2, bytes = size * (size_t)count;
    unsigned char *image = malloc(bytes + 16);
    memset(image, 0xff, bytes + 16);
    for (int64_t i = 0; i < count; ++i)
        storage_encode(dtype, values[i], image + i * size);
    efla_status status = efla_buffer_create(context, bytes + 16, buffer);
    if (!status) status = efla_buffer_upload(*buffer, 0, image, bytes + 16);
    free(image);
    return status;
}

static efla_status download_array(efla_buffer buffer, efla_dtype dtype, int64_t count,
                                  double *values) {
    const size_t size = dtype == EFLA_DTYPE_F32 ? 4 : 2;
    unsigned char *image = malloc(size * (size_t)count + 1);
    efla_status status = efla_buffer_download(buffer, 0, image, size * (size_t)count);
    for (int64_t i = 0; !status && i < count; ++i)
        values[i] = storage_decode(dtype, image + i * size);
    free(image);
    return status;
}

/* Token t of a [B,T,heads,dim] (or [B,T,heads] when dim is 0) tensor. */
static efla_tensor token_view(efla_buffer buffer, efla_dtype dtype, const problem *p, int64_t t,
                              int64_t heads, int64_t dim) {
    const size_t size = dtype == EFLA_DTYPE_F32 ? 4 : 2;
    const int64_t inner = dim ? dim : 1;
    efla_tensor tensor;
    memset(&tensor, 0, sizeof tensor);
    tensor.buffer = buffer;
    tensor.offset = (uint64_t)(t * heads * inner) * size;
    tensor.dtype = dtype;
    tensor.rank = dim ? 4 : 3;
    const int64_t shape[4] = {p->B, 1, heads, dim};
    const int64_t strides[4] = {p->T * heads * inner, heads * inner, inner, 1};
    memcpy(tensor.shape, shape, sizeof shape);
    memcpy(tensor.strides, strides, sizeof strides);
    return tensor;
}

static efla_status decode_steps(efla_context context, const problem *p, efla_algorithm algorithm,
                                const decode_buffers *b) {
    const int64_t state_shape[4] = {p->N, p->HV, p->Dk, p->Dv};
    efla_forward_desc desc = EFLA_FORWARD_DESC_INIT;
    desc.initial_state = efla_tensor_contiguous(b->state, 0, EFLA_DTYPE_F32, 4, state_shape);
    desc.final_state = desc.initial_state;
    desc.algorithm = algorithm;
    efla_status status = EFLA_SUCCESS;
    for (int64_t t = 0; t < p->T && !status; ++t) {
        desc.q = token_view(b->q, p->dtype, p, t, p->H, p->Dk);
        desc.k = token_view(b->k, p->dtype, p, t, p->H, p->Dk);
        desc.v = token_view(b->v, p->dtype, p, t, p->HV, p->Dv);
        desc.beta = token_view(b->beta, p->dtype, p, t, p->HV, 0);
        desc.out = token_view(b->out, p->dtype, p, t, p->HV, p->Dv);
        status = efla_forward(context, &desc);
    }
    return status ? status : efla_context_synchronize(context);
}

static efla_status decode_in_place(efla_context context, const problem *p, efla_algorithm algorithm,
                                   double *out, double *state) {
    decode_buffers b = {0};
    const efla_dtype dtype = p->dtype;
    efla_status status = upload_array(context, dtype, p->q, problem_q_count(p), &b.q);
    if (!status) status = upload_array(context, dtype, p->k, problem_q_count(p), &b.k);
    if (!status) status = upload_array(context, dtype, p->v, problem_v_count(p), &b.v);
    if (!status) status = upload_array(context, dtype, p->beta, problem_beta_count(p), &b.beta);
    if (!status) status = upload_array(context, dtype, p->v, problem_v_count(p), &b.out);
    if (!status)
        status = upload_array(context, EFLA_DTYPE_F32, p->initial_state, problem_state_count(p),
                              &b.state);
    if (!status) status = decode_steps(context, p, algorithm, &b);
    if (!status) status = download_array(b.out, dtype, problem_v_count(p), out);
    if (!status) status = download_array(b.state, EFLA_DTYPE_F32, problem_state_count(p), state);
    efla_buffer *all[] = {&b.q, &b.k, &b.v, &b.beta, &b.out, &b.state};
    for (size_t i = 0; i < COUNT(all); ++i)
        efla_buffer_destroy(*all[i]);
    return status;
}

static void check_decode(const harness_device *device, const problem *p, uint64_t seed) {
    double *ref_out, *ref_state, *ref_peak;
    problem_reference(p, &ref_out, &ref_state, &ref_peak);
    double *out = calloc((size_t)problem_v_count(p), sizeof *out);
    double *state = calloc((size_t)problem_state_count(p), sizeof *state);
    for (size_t a = 0; a < COUNT(algorithms); ++a) {
        char what[128], label[768];
        snprintf(what, sizeof what, "case=decode-in-place algorithm=%s",
                 efla_algorithm_name(algorithms[a]));
        harness_label(label, sizeof label, device, NULL, p, seed, what);
        const efla_status status = decode_in_place(device->context, p, algorithms[a], out, state);
        if (status) {
            run_result r = {.status = status};
            snprintf(r.error, sizeof r.error, "%s: %s", efla_status_string(status),
                     efla_last_error_message());
            if (harness_run_refused(device, p, &r, label)) break;
            continue;
        }
        harness_compare(p, label, out, state, ref_out, ref_state, ref_peak,
                        harness_tolerance(p->dtype));
    }
    free(out);
    free(state);
    free(ref_out);
    free(ref_state);
    free(ref_peak);
}

Test(state, decode_token_by_token_in_place) {
    const problem_spec spec = {.B = 2,
                               .T = 24,
                               .H = 1,
                               .HV = 2,
                               .Dk = 16,
                               .Dv = 8,
                               .keys = KEYS_GAUSSIAN,
                               .betas = BETA_UNIFORM,
                               .initial_state = true};
    for_each_problem("decode", &spec, check_decode);
}

/* ----- varlen == one call per sequence ----- */

static const int64_t varlen_lengths[] = {0, 5, 70, 0, 1, 64, 65, 0};

/* Runs every sequence alone and gathers the results in varlen layout. */
static bool run_separately(const harness_device *device, const problem *p, uint64_t seed,
                           double *out, double *state) {
    const int64_t state_size = p->HV * p->Dk * p->Dv;
    for (int64_t n = 0; n < p->N; ++n) {
        const int64_t first = p->cu_seqlens[n], length = p->cu_seqlens[n + 1] - first;
        problem alone;
        run_result r;
        problem_slice_tokens(p, first, length,
                             p->initial_state ? p->initial_state + n * state_size : NULL, &alone);
        const run_options options = {.algorithm = EFLA_ALGORITHM_AUTO};
        const bool ok = run_checked(device, &alone, seed, &options, "case=varlen-separate", &r);
        problem_destroy(&alone);
        if (!ok) return false;
        memcpy(out + first * p->HV * p->Dv, r.out, sizeof *out * (size_t)(length * p->HV * p->Dv));
        memcpy(state + n * state_size, r.final_state, sizeof *state * (size_t)state_size);
        run_result_free(&r);
    }
    return true;
}

/* An empty sequence's final state is its initial state (or zeros), bit for bit. */
static void check_empty_sequences(const problem *p, const double *state, const char *label) {
    const int64_t size = p->HV * p->Dk * p->Dv;
    for (int64_t n = 0; n < p->N; ++n) {
        if (p->cu_seqlens[n + 1] != p->cu_seqlens[n]) continue;
        for (int64_t i = 0; i < size; ++i) {
            const double expected = p->initial_state ? p->initial_state[n * size + i] : 0.0;
            if (state[n * size + i] == expected) continue;
            cr_expect_fail("%s: empty sequence %lld changed its state (element %lld: %g, "
                           "expected %g)",
                           label, (long long)n, (long long)i, state[n * size + i], expected);
            break;
        }
    }
}

static void check_varlen(const harness_device *device, const problem *p, uint64_t seed) {
    const run_options options = {.algorithm = EFLA_ALGORITHM_AUTO, .cu_dtype = EFLA_DTYPE_I32};
    run_result together;
    if (!run_checked(device, p, seed, &options, "case=varlen", &together)) return;
    char label[768];
    harness_label(label, sizeof label, device, &together, p, seed,
                  p->initial_state ? "case=varlen vs separate calls"
                                   : "case=varlen-no-state vs separate calls");
    check_empty_sequences(p, together.final_state, label);
    double *out = calloc((size_t)problem_v_count(p) + 1, sizeof *out);
    double *state = calloc((size_t)problem_state_count(p) + 1, sizeof *state);
    if (run_separately(device, p, seed, out, state))
        harness_compare(p, label, together.out, together.final_state, out, state, NULL,
                        harness_tolerance(p->dtype));
    free(out);
    free(state);
    run_result_free(&together);
}

Test(varlen, equals_separate_calls) {
    problem_spec spec = {.B = 1,
                         .T = 205,
                         .H = 2,
                         .HV = 4,
                         .Dk = 16,
                         .Dv = 16,
                         .lengths = varlen_lengths,
                         .num_sequences = COUNT(varlen_lengths),
                         .keys = KEYS_GAUSSIAN,
                         .betas = BETA_UNIFORM,
                         .initial_state = true};
    for_each_problem("varlen-separate", &spec, check_varlen);
    spec.initial_state = false;
    for_each_problem("varlen-separate-no-state", &spec, check_varlen);
}
