/* One test per validation rule (core/validate.c and the API around it):
 * each checks the status, that efla_last_error_message() names the
 * problem, and that no buffer changed. Validation runs in the core before
 * any backend, so these use the CPU backend. */
#include "reference.h"
#include "rng.h"

#include "efla/efla.h"

#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define COUNT(array) (sizeof(array) / sizeof((array)[0]))

/* A valid request: B=1, T=4, H=1, HV=2, Dk=4, Dv=3, f32, both states. */
enum { B = 1, T = 4, H = 1, HV = 2, DK = 4, DV = 3 };
enum { BUFFER_BYTES = 1 << 16, SENTINEL = 0x5a };
enum { Q, K, V, BETA, OUT, S0, ST, BUFFERS };

static efla_context context;
static efla_buffer buffers[BUFFERS];
static unsigned char *images[BUFFERS]; /* what each buffer must still hold */
static efla_forward_desc valid;

static efla_context cpu_context(void) {
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = EFLA_BACKEND_CPU;
    info.threads = 1;
    efla_context created = NULL;
    cr_assert_eq(efla_context_create(&info, &created), EFLA_SUCCESS, "%s",
                 efla_last_error_message());
    return created;
}

static void fill_buffer(int which, test_rng *rng) {
    images[which] = malloc(BUFFER_BYTES);
    if (which == OUT || which == ST) {
        memset(images[which], SENTINEL, BUFFER_BYTES);
    } else {
        float *values = (float *)images[which];
        for (size_t i = 0; i < BUFFER_BYTES / sizeof(float); ++i)
            values[i] = (float)(which == BETA ? rng_uniform(rng) : rng_normal(rng));
    }
    cr_assert_eq(efla_buffer_create(context, BUFFER_BYTES, &buffers[which]), EFLA_SUCCESS);
    cr_assert_eq(efla_buffer_upload(buffers[which], 0, images[which], BUFFER_BYTES), EFLA_SUCCESS);
}

static efla_tensor contiguous(int which, uint32_t rank, int64_t d0, int64_t d1, int64_t d2,
                              int64_t d3) {
    const int64_t shape[4] = {d0, d1, d2, d3};
    return efla_tensor_contiguous(buffers[which], 0, EFLA_DTYPE_F32, rank, shape);
}

/* All dimensions `value` with implicit (contiguous) strides. */
static void set_all_dims(efla_tensor *t, int64_t value) {
    for (uint32_t i = 0; i < t->rank; ++i)
        t->shape[i] = value;
    memset(t->strides, 0, sizeof t->strides);
}

static void setup(void) {
    context = cpu_context();
    test_rng rng = {42};
    for (int i = 0; i < BUFFERS; ++i)
        fill_buffer(i, &rng);
    valid = (efla_forward_desc)EFLA_FORWARD_DESC_INIT;
    valid.q = contiguous(Q, 4, B, T, H, DK);
    valid.k = contiguous(K, 4, B, T, H, DK);
    valid.v = contiguous(V, 4, B, T, HV, DV);
    valid.beta = contiguous(BETA, 3, B, T, HV, 0);
    valid.out = contiguous(OUT, 4, B, T, HV, DV);
    valid.initial_state = contiguous(S0, 4, B, HV, DK, DV);
    valid.final_state = contiguous(ST, 4, B, HV, DK, DV);
}

static void teardown(void) {
    for (int i = 0; i < BUFFERS; ++i) {
        efla_buffer_destroy(buffers[i]);
        free(images[i]);
    }
    efla_context_destroy(context);
}

/* Every buffer still holds what was uploaded. */
static void expect_buffers_untouched(const char *call) {
    unsigned char *now = malloc(BUFFER_BYTES);
    for (int i = 0; i < BUFFERS; ++i) {
        cr_assert_eq(efla_buffer_download(buffers[i], 0, now, BUFFER_BYTES), EFLA_SUCCESS);
        cr_expect(memcmp(now, images[i], BUFFER_BYTES) == 0,
                  "%s was rejected but changed buffer %d", call, i);
    }
    free(now);
}

static void expect_error(efla_status got, efla_status expected, const char *needle,
                         const char *call) {
    const char *message = efla_last_error_message();
    cr_expect_eq(got, expected, "%s returned %d (%s), expected %d (%s); message: %s", call,
                 (int)got, efla_status_string(got), (int)expected, efla_status_string(expected),
                 message);
    cr_expect(strstr(message, needle) != NULL, "%s: message \"%s\" does not mention \"%s\"", call,
              message, needle);
}

/* Both efla_forward and efla_forward_query refuse, and nothing is written. */
static void expect_rejected_on(efla_context ctx, const efla_forward_desc *desc, efla_status status,
                               const char *needle) {
    efla_forward_plan plan = EFLA_FORWARD_PLAN_INIT, untouched_plan;
    plan.algorithm = (efla_algorithm)77;
    untouched_plan = plan;
    expect_error(efla_forward_query(ctx, desc, &plan), status, needle, "efla_forward_query");
    cr_expect(memcmp(&plan, &untouched_plan, sizeof plan) == 0,
              "a rejected efla_forward_query wrote its plan");
    expect_error(efla_forward(ctx, desc), status, needle, "efla_forward");
    expect_buffers_untouched("efla_forward");
}

static void expect_rejected(const efla_forward_desc *desc, efla_status status, const char *needle) {
    expect_rejected_on(context, desc, status, needle);
}

TestSuite(validation, .init = setup, .fini = teardown);

Test(validation, the_fixture_itself_is_valid) {
    cr_assert_eq(efla_forward(context, &valid), EFLA_SUCCESS, "%s", efla_last_error_message());
    cr_assert_eq(efla_context_synchronize(context), EFLA_SUCCESS);
}

/* ----- the descriptor ----- */

Test(validation, null_context) {
    expect_rejected_on(NULL, &valid, EFLA_ERROR_INVALID_ARGUMENT, "context is NULL");
}

Test(validation, null_desc) { expect_rejected(NULL, EFLA_ERROR_INVALID_ARGUMENT, "desc is NULL"); }

Test(validation, struct_size_too_small) {
    efla_forward_desc desc = valid;
    desc.struct_size = sizeof desc - 4;
    expect_rejected(&desc, EFLA_ERROR_INVALID_ARGUMENT, "struct_size");
}

Test(validation, next_must_be_null) {
    efla_forward_desc desc = valid;
    desc.next = &valid;
    expect_rejected(&desc, EFLA_ERROR_INVALID_ARGUMENT, "next must be NULL");
}

Test(validation, unknown_mode) {
    efla_forward_desc desc = valid;
    desc.mode = (efla_mode)7;
    expect_rejected(&desc, EFLA_ERROR_INVALID_ARGUMENT, "unknown mode");
}

Test(validation, unknown_algorithm) {
    efla_forward_desc desc = valid;
    desc.algorithm = (efla_algorithm)9;
    expect_rejected(&desc, EFLA_ERROR_INVALID_ARGUMENT, "unknown algorithm");
}

Test(validation, unknown_flags) {
    efla_forward_desc desc = valid;
    desc.flags = 1u << 20;
    expect_rejected(&desc, EFLA_ERROR_INVALID_ARGUMENT, "unknown forward flags");
}

Test(validation, non_finite_scale) {
    efla_forward_desc desc = valid;
    desc.scale = NAN;
    expect_rejected(&desc, EFLA_ERROR_INVALID_ARGUMENT, "not finite");
    desc.scale = -INFINITY;
    expect_rejected(&desc, EFLA_ERROR_INVALID_ARGUMENT, "not finite");
}

Test(validation, missing_required_tensor) {
    static const char *const names[] = {"q", "k", "v", "beta", "out"};
    for (size_t i = 0; i < COUNT(names); ++i) {
        efla_forward_desc desc = valid;
        efla_tensor *tensors[] = {&desc.q, &desc.k, &desc.v, &desc.beta, &desc.out};
        tensors[i]->buffer = NULL;
        char needle[32];
        snprintf(needle, sizeof needle, "%s is required", names[i]);
        expect_rejected(&desc, EFLA_ERROR_INVALID_ARGUMENT, needle);
    }
}

/* ----- one tensor ----- */

Test(validation, buffer_from_another_context) {
    efla_context other = cpu_context();
    efla_buffer foreign;
    cr_assert_eq(efla_buffer_create(other, BUFFER_BYTES, &foreign), EFLA_SUCCESS);
    efla_forward_desc desc = valid;
    desc.k.buffer = foreign;
    expect_rejected(&desc, EFLA_ERROR_BACKEND_MISMATCH, "k's buffer belongs to another context");
    desc = valid;
    desc.final_state.buffer = foreign;
    expect_rejected(&desc, EFLA_ERROR_BACKEND_MISMATCH, "final_state's buffer belongs");
    efla_buffer_destroy(foreign);
    efla_context_destroy(other);
}

Test(validation, unknown_dtype) {
    efla_forward_desc desc = valid;
    desc.v.dtype = (efla_dtype)42;
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "v has an unknown dtype");
}

Test(validation, wrong_rank) {
    efla_forward_desc desc = valid;
    desc.beta.rank = 4;
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "beta has rank 4");
    desc = valid;
    desc.q.rank = 3;
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "q has rank 3");
}

Test(validation, negative_dimension) {
    efla_forward_desc desc = valid;
    desc.k.shape[1] = -1;
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "k has a negative dimension");
}

Test(validation, negative_stride) {
    efla_forward_desc desc = valid;
    desc.v.strides[2] = -3;
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "v has negative stride");
}

Test(validation, misaligned_offset) {
    efla_forward_desc desc = valid;
    desc.q.offset = 2;
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "not a multiple of its element size");
}

Test(validation, out_of_bounds) {
    efla_forward_desc desc = valid;
    desc.out.offset = BUFFER_BYTES - 8;
    expect_rejected(&desc, EFLA_ERROR_OUT_OF_BOUNDS, "but its buffer has");
    desc = valid;
    desc.initial_state.strides[1] = BUFFER_BYTES / 4; /* head 1 starts past the end */
    expect_rejected(&desc, EFLA_ERROR_OUT_OF_BOUNDS, "initial_state");
}

Test(validation, sizes_that_overflow_64_bits) {
    efla_forward_desc desc = valid;
    desc.q.strides[1] = INT64_C(1) << 62; /* 3 * 2^62 elements away */
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "q's extent overflows 64 bits");
    desc = valid;
    set_all_dims(&desc.v, INT64_C(1) << 20); /* 2^80 elements */
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "v's size overflows 64 bits");
}

/* ----- dtypes ----- */

Test(validation, mixed_storage_dtypes) {
    efla_forward_desc desc = valid;
    desc.v.dtype = EFLA_DTYPE_F16;
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "share one storage dtype");
    desc = valid;
    desc.out.dtype = EFLA_DTYPE_BF16;
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "out has dtype bf16 but q has f32");
}

Test(validation, integer_storage) {
    efla_forward_desc desc = valid;
    efla_tensor *tensors[] = {&desc.q, &desc.k, &desc.v, &desc.beta, &desc.out};
    for (size_t i = 0; i < COUNT(tensors); ++i)
        tensors[i]->dtype = EFLA_DTYPE_I32;
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "storage must be f32, f16 or bf16");
}

Test(validation, states_must_be_f32) {
    efla_forward_desc desc = valid;
    desc.initial_state.dtype = EFLA_DTYPE_F16;
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "initial_state has dtype f16");
    desc = valid;
    desc.final_state.dtype = EFLA_DTYPE_BF16;
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "final_state has dtype bf16");
}

/* ----- shapes ----- */

static void set_dim(efla_tensor *t, int dim, int64_t value) {
    t->shape[dim] = value;
    memset(t->strides, 0, sizeof t->strides); /* contiguous for the new shape */
}

Test(validation, k_shape_differs_from_q) {
    efla_forward_desc desc = valid;
    set_dim(&desc.k, 3, DK + 1);
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "k has shape [1,4,1,5]");
}

static void set_key_dim(efla_forward_desc *desc, int64_t dk) {
    set_dim(&desc->q, 3, dk);
    set_dim(&desc->k, 3, dk);
    set_dim(&desc->initial_state, 2, dk);
    set_dim(&desc->final_state, 2, dk);
}

static void set_value_dim(efla_forward_desc *desc, int64_t dv) {
    set_dim(&desc->v, 3, dv);
    set_dim(&desc->out, 3, dv);
    set_dim(&desc->initial_state, 3, dv);
    set_dim(&desc->final_state, 3, dv);
}

Test(validation, key_dim_out_of_range) {
    efla_forward_desc desc = valid;
    set_key_dim(&desc, 0);
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "Dk=0");
    set_key_dim(&desc, 257);
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "Dk=257");
    set_key_dim(&desc, 256); /* the largest is fine */
    cr_expect_eq(efla_forward(context, &desc), EFLA_SUCCESS, "%s", efla_last_error_message());
}

Test(validation, value_dim_out_of_range) {
    efla_forward_desc desc = valid;
    set_value_dim(&desc, 0);
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "Dv=0");
    set_value_dim(&desc, 257);
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "Dv=257");
}

Test(validation, zero_heads) {
    efla_forward_desc desc = valid;
    set_dim(&desc.q, 2, 0);
    set_dim(&desc.k, 2, 0);
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "H=0");
}

Test(validation, value_heads_not_a_multiple_of_heads) {
    efla_forward_desc desc = valid;
    set_dim(&desc.q, 2, 2);
    set_dim(&desc.k, 2, 2);
    set_dim(&desc.v, 2, 3);
    set_dim(&desc.beta, 2, 3);
    set_dim(&desc.out, 2, 3);
    set_dim(&desc.initial_state, 1, 3);
    set_dim(&desc.final_state, 1, 3);
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "HV=3 value heads");
}

Test(validation, v_batch_or_time_mismatch) {
    efla_forward_desc desc = valid;
    set_dim(&desc.v, 1, T + 1);
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "v has B=1, T=5");
    desc = valid;
    set_dim(&desc.v, 0, 2);
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "v has B=2, T=4");
}

Test(validation, beta_shape) {
    efla_forward_desc desc = valid;
    set_dim(&desc.beta, 2, 1);
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "beta has shape [1,4,1]");
}

Test(validation, out_shape) {
    efla_forward_desc desc = valid;
    set_dim(&desc.out, 3, DV + 1);
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "out has shape [1,4,2,4]");
}

Test(validation, state_shapes) {
    efla_forward_desc desc = valid;
    set_dim(&desc.initial_state, 0, 2);
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "initial_state has shape [2,2,4,3]");
    desc = valid;
    set_dim(&desc.final_state, 2, DK + 1);
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "final_state has shape [1,2,5,3]");
}

/* ----- cu_seqlens ----- */

/* valid with `sequences` varlen states (their shapes follow N). */
static efla_forward_desc varlen_desc(const void *offsets, efla_dtype dtype, int64_t sequences) {
    efla_forward_desc desc = valid;
    desc.cu_seqlens = offsets;
    desc.cu_seqlens_dtype = dtype;
    desc.num_sequences = sequences;
    set_dim(&desc.initial_state, 0, sequences);
    set_dim(&desc.final_state, 0, sequences);
    return desc;
}

Test(validation, cu_seqlens_valid_forms_pass) {
    const int64_t offsets64[] = {0, 1, 1, 4};
    const int32_t offsets32[] = {0, 3, 4};
    efla_forward_desc desc = varlen_desc(offsets64, EFLA_DTYPE_I64, 3);
    cr_expect_eq(efla_forward(context, &desc), EFLA_SUCCESS, "%s", efla_last_error_message());
    desc = varlen_desc(offsets32, EFLA_DTYPE_I32, 2);
    cr_expect_eq(efla_forward(context, &desc), EFLA_SUCCESS, "%s", efla_last_error_message());
}

Test(validation, cu_seqlens_must_start_at_zero) {
    const int64_t offsets[] = {1, 2, 4};
    efla_forward_desc desc = varlen_desc(offsets, EFLA_DTYPE_I64, 2);
    expect_rejected(&desc, EFLA_ERROR_INVALID_ARGUMENT, "must start at 0");
}

Test(validation, cu_seqlens_must_not_decrease) {
    const int32_t offsets[] = {0, 3, 2, 4};
    efla_forward_desc desc = varlen_desc(offsets, EFLA_DTYPE_I32, 3);
    expect_rejected(&desc, EFLA_ERROR_INVALID_ARGUMENT, "must not decrease");
}

Test(validation, cu_seqlens_must_end_at_t) {
    const int64_t offsets[] = {0, 1, 3};
    efla_forward_desc desc = varlen_desc(offsets, EFLA_DTYPE_I64, 2);
    expect_rejected(&desc, EFLA_ERROR_INVALID_ARGUMENT, "must end at T");
    const int64_t beyond[] = {0, 1, 5};
    desc = varlen_desc(beyond, EFLA_DTYPE_I64, 2);
    expect_rejected(&desc, EFLA_ERROR_INVALID_ARGUMENT, "must end at T");
}

Test(validation, cu_seqlens_needs_batch_one) {
    const int64_t offsets[] = {0, 1, 2};
    efla_forward_desc desc = varlen_desc(offsets, EFLA_DTYPE_I64, 2);
    efla_tensor *tensors[] = {&desc.q, &desc.k, &desc.v, &desc.beta, &desc.out};
    for (size_t i = 0; i < COUNT(tensors); ++i)
        set_dim(tensors[i], 0, 2);
    for (size_t i = 0; i < COUNT(tensors); ++i)
        set_dim(tensors[i], 1, 2);
    expect_rejected(&desc, EFLA_ERROR_INVALID_TENSOR, "requires B = 1");
}

Test(validation, cu_seqlens_dtype) {
    const float offsets[] = {0, 4};
    efla_forward_desc desc = varlen_desc(offsets, EFLA_DTYPE_F32, 1);
    expect_rejected(&desc, EFLA_ERROR_INVALID_ARGUMENT, "cu_seqlens dtype must be i32 or i64");
}

Test(validation, num_sequences_without_cu_seqlens) {
    efla_forward_desc desc = varlen_desc(NULL, EFLA_DTYPE_I64, 2);
    expect_rejected(&desc, EFLA_ERROR_INVALID_ARGUMENT, "cu_seqlens is NULL");
}

Test(validation, negative_num_sequences) {
    const int64_t offsets[] = {0, 4};
    efla_forward_desc desc = varlen_desc(offsets, EFLA_DTYPE_I64, 1);
    desc.num_sequences = -1;
    expect_rejected(&desc, EFLA_ERROR_INVALID_ARGUMENT, "num_sequences -1 is out of range");
}

/* ----- overlap ----- */

Test(validation, out_overlaps_an_input) {
    efla_forward_desc desc = valid;
    desc.out.buffer = buffers[Q];
    desc.out.offset = 16;
    expect_rejected(&desc, EFLA_ERROR_OVERLAP, "out overlaps q");
    desc = valid;
    desc.out.buffer = buffers[S0];
    expect_rejected(&desc, EFLA_ERROR_OVERLAP, "out overlaps initial_state");
}

Test(validation, outputs_overlap_each_other) {
    efla_forward_desc desc = valid;
    desc.final_state.buffer = buffers[OUT];
    desc.final_state.offset = 4;
    expect_rejected(&desc, EFLA_ERROR_OVERLAP, "out overlaps final_state");
}

Test(validation, final_state_partially_overlaps_initial_state) {
    efla_forward_desc desc = valid;
    desc.final_state = valid.initial_state;
    desc.final_state.offset = 4 * DV; /* one state row further */
    expect_rejected(&desc, EFLA_ERROR_OVERLAP, "in-place needs the very same offset");
    desc.final_state.offset = 0;
    desc.final_state.strides[2] = DV + 1; /* same start, different layout */
    desc.final_state.strides[1] = DK * (DV + 1);
    desc.final_state.strides[0] = HV * DK * (DV + 1);
    expect_rejected(&desc, EFLA_ERROR_OVERLAP, "final_state overlaps initial_state");
}

Test(validation, self_overlapping_output_strides) {
    efla_forward_desc desc = valid;
    desc.out.strides[3] = 0; /* every value column on one element */
    expect_rejected(&desc, EFLA_ERROR_OVERLAP, "out's strides make elements overlap");
    desc = valid;
    desc.out.strides[2] = 1; /* value heads interleave with Dv */
    expect_rejected(&desc, EFLA_ERROR_OVERLAP, "out's strides make elements overlap");
    desc = valid;
    desc.final_state.strides[1] = DV; /* heads overlap within Dk x Dv */
    expect_rejected(&desc, EFLA_ERROR_OVERLAP, "final_state's strides make elements overlap");
}

/* The allowed alias: final_state is exactly initial_state, updated in place. */
Test(validation, exact_state_alias_runs_in_place) {
    efla_forward_desc desc = valid;
    desc.final_state = desc.initial_state;
    cr_assert_eq(efla_forward(context, &desc), EFLA_SUCCESS, "%s", efla_last_error_message());
    cr_assert_eq(efla_context_synchronize(context), EFLA_SUCCESS);
    double q[B * T * H * DK], k[B * T * H * DK], v[B * T * HV * DV], beta[B * T * HV];
    double s0[B * HV * DK * DV], out[B * T * HV * DV], state[B * HV * DK * DV];
    const float *image[] = {(float *)images[Q], (float *)images[K], (float *)images[V],
                            (float *)images[BETA], (float *)images[S0]};
    double *host[] = {q, k, v, beta, s0};
    const size_t counts[] = {COUNT(q), COUNT(k), COUNT(v), COUNT(beta), COUNT(s0)};
    for (size_t a = 0; a < COUNT(host); ++a)
        for (size_t i = 0; i < counts[a]; ++i)
            host[a][i] = image[a][i];
    const ref_problem problem = {.B = B,
                                 .T = T,
                                 .H = H,
                                 .HV = HV,
                                 .Dk = DK,
                                 .Dv = DV,
                                 .N = B,
                                 .q = q,
                                 .k = k,
                                 .v = v,
                                 .beta = beta,
                                 .initial_state = s0,
                                 .scale = 0.5};
    ref_forward(&problem, out, state, NULL);
    float got[B * HV * DK * DV];
    cr_assert_eq(efla_buffer_download(buffers[S0], 0, got, sizeof got), EFLA_SUCCESS);
    for (size_t i = 0; i < COUNT(got); ++i)
        cr_expect(fabs(got[i] - state[i]) <= 1e-5 * (1 + fabs(state[i])),
                  "in-place state element %zu: %.9g, reference %.9g", i, got[i], state[i]);
}

/* ----- buffers ----- */

Test(validation, buffer_copies_out_of_range) {
    unsigned char bytes[16] = {0};
    expect_error(efla_buffer_upload(buffers[OUT], BUFFER_BYTES - 8, bytes, 16),
                 EFLA_ERROR_OUT_OF_BOUNDS, "exceeds the buffer", "efla_buffer_upload");
    expect_error(efla_buffer_upload(buffers[OUT], UINT64_MAX, bytes, 1), EFLA_ERROR_OUT_OF_BOUNDS,
                 "exceeds the buffer", "efla_buffer_upload");
    expect_error(efla_buffer_download(buffers[OUT], BUFFER_BYTES, bytes, 1),
                 EFLA_ERROR_OUT_OF_BOUNDS, "exceeds the buffer", "efla_buffer_download");
    expect_error(efla_buffer_upload(buffers[OUT], 0, NULL, 4), EFLA_ERROR_INVALID_ARGUMENT,
                 "host pointer is NULL", "efla_buffer_upload");
    expect_error(efla_buffer_download(NULL, 0, bytes, 4), EFLA_ERROR_INVALID_ARGUMENT,
                 "buffer is NULL", "efla_buffer_download");
    expect_buffers_untouched("a buffer copy");
}

Test(validation, buffer_creation) {
    efla_buffer buffer = (efla_buffer)(uintptr_t)0x1234;
    expect_error(efla_buffer_create(context, 0, &buffer), EFLA_ERROR_INVALID_ARGUMENT, "size is 0",
                 "efla_buffer_create");
    expect_error(efla_buffer_create(NULL, 64, &buffer), EFLA_ERROR_INVALID_ARGUMENT,
                 "context is NULL", "efla_buffer_create");
    expect_error(efla_buffer_create(context, 64, NULL), EFLA_ERROR_INVALID_ARGUMENT,
                 "out_buffer is NULL", "efla_buffer_create");
    expect_error(efla_buffer_wrap_host(context, NULL, 64, &buffer), EFLA_ERROR_INVALID_ARGUMENT,
                 "host memory is NULL", "efla_buffer_wrap_host");
    cr_expect(buffer == (efla_buffer)(uintptr_t)0x1234, "a failed create wrote its handle");
}

/* ----- contexts, backends, devices ----- */

static void expect_context_rejected(const efla_context_create_info *info, efla_status status,
                                    const char *needle) {
    efla_context created = (efla_context)(uintptr_t)0x1234;
    expect_error(efla_context_create(info, &created), status, needle, "efla_context_create");
    cr_expect(created == (efla_context)(uintptr_t)0x1234, "a failed create wrote its handle");
}

static void *only_alloc(void *user, size_t size, size_t alignment) {
    (void)user, (void)size, (void)alignment;
    return NULL;
}

Test(validation, context_create_info) {
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    expect_context_rejected(NULL, EFLA_ERROR_INVALID_ARGUMENT, "info is NULL");
    expect_error(efla_context_create(&info, NULL), EFLA_ERROR_INVALID_ARGUMENT,
                 "out_context is NULL", "efla_context_create");
    info.struct_size = 8;
    expect_context_rejected(&info, EFLA_ERROR_INVALID_ARGUMENT, "struct_size");
    info = (efla_context_create_info)EFLA_CONTEXT_CREATE_INFO_INIT;
    info.next = &info;
    expect_context_rejected(&info, EFLA_ERROR_INVALID_ARGUMENT, "next must be NULL");
    info = (efla_context_create_info)EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = (efla_backend)17;
    expect_context_rejected(&info, EFLA_ERROR_INVALID_ARGUMENT, "unknown backend");
    info = (efla_context_create_info)EFLA_CONTEXT_CREATE_INFO_INIT;
    info.flags = 1u << 9;
    expect_context_rejected(&info, EFLA_ERROR_INVALID_ARGUMENT, "unknown context flags");
    info = (efla_context_create_info)EFLA_CONTEXT_CREATE_INFO_INIT;
    const efla_allocator half = {NULL, only_alloc, NULL};
    info.allocator = &half;
    expect_context_rejected(&info, EFLA_ERROR_INVALID_ARGUMENT, "both alloc and free");
    info = (efla_context_create_info)EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = EFLA_BACKEND_CPU;
    info.device_index = 5;
    expect_context_rejected(&info, EFLA_ERROR_DEVICE_NOT_FOUND, "no device 5");
}

Test(validation, backend_names_and_probes) {
    efla_backend backend = EFLA_BACKEND_CUDA;
    expect_error(efla_backend_from_name("metal", &backend), EFLA_ERROR_INVALID_ARGUMENT,
                 "unknown backend 'metal'", "efla_backend_from_name");
    cr_expect_eq(backend, EFLA_BACKEND_CUDA, "a failed parse wrote its result");
    expect_error(efla_backend_from_name(NULL, &backend), EFLA_ERROR_INVALID_ARGUMENT, "NULL",
                 "efla_backend_from_name");
    expect_error(efla_backend_probe(EFLA_BACKEND_AUTO), EFLA_ERROR_INVALID_ARGUMENT,
                 "not a concrete backend", "efla_backend_probe");
    expect_error(efla_backend_probe((efla_backend)99), EFLA_ERROR_INVALID_ARGUMENT,
                 "not a concrete backend", "efla_backend_probe");
}

Test(validation, device_queries) {
    efla_device_info info = EFLA_DEVICE_INFO_INIT;
    expect_error(efla_device_get_info(EFLA_BACKEND_CPU, 3, &info), EFLA_ERROR_DEVICE_NOT_FOUND,
                 "no device 3", "efla_device_get_info");
    info.struct_size = 4;
    expect_error(efla_device_get_info(EFLA_BACKEND_CPU, 0, &info), EFLA_ERROR_INVALID_ARGUMENT,
                 "struct_size", "efla_device_get_info");
    expect_error(efla_device_count(EFLA_BACKEND_CPU, NULL), EFLA_ERROR_INVALID_ARGUMENT,
                 "out_count is NULL", "efla_device_count");
    expect_error(efla_context_device_info(NULL, &info), EFLA_ERROR_INVALID_ARGUMENT,
                 "context is NULL", "efla_context_device_info");
}

Test(validation, forward_query_plan) {
    expect_error(efla_forward_query(context, &valid, NULL), EFLA_ERROR_INVALID_ARGUMENT,
                 "struct_size", "efla_forward_query");
    efla_forward_plan plan = {.struct_size = 4};
    expect_error(efla_forward_query(context, &valid, &plan), EFLA_ERROR_INVALID_ARGUMENT,
                 "struct_size", "efla_forward_query");
    expect_error(efla_context_synchronize(NULL), EFLA_ERROR_INVALID_ARGUMENT, "context is NULL",
                 "efla_context_synchronize");
}
