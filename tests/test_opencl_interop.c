/*
 * OpenCL interop (include/efla/efla_opencl.h): an efla context on the
 * host's own cl_context, device and queue; host cl_mem objects wrapped at
 * offsets; a forward recorded on the host's queue behind a host event, with
 * a completion event; and the refusals of foreign objects. Skipped without
 * an OpenCL device unless EFLA_REQUIRE_BACKENDS names opencl.
 */
#include <CL/cl.h>

#include "efla/efla_opencl.h"
#include "harness.h"
#include "problem.h"

#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

typedef struct host_cl {
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
} host_cl;

/* The first GPU of any platform, else the first device: a host's choice. */
static bool pick_device(host_cl *h) {
    cl_platform_id platforms[16];
    cl_uint count = 0;
    if (clGetPlatformIDs(16, platforms, &count) != CL_SUCCESS || count == 0) return false;
    for (int want_gpu = 1; want_gpu >= 0; --want_gpu)
        for (cl_uint p = 0; p < count && p < 16; ++p) {
            cl_device_type type = want_gpu ? CL_DEVICE_TYPE_GPU : CL_DEVICE_TYPE_ALL;
            if (clGetDeviceIDs(platforms[p], type, 1, &h->device, NULL) == CL_SUCCESS) {
                h->platform = platforms[p];
                return true;
            }
        }
    return false;
}

static void host_open(host_cl *h) {
    memset(h, 0, sizeof *h);
    if (efla_backend_probe(EFLA_BACKEND_OPENCL) != EFLA_SUCCESS || !pick_device(h)) {
        const char *required = getenv("EFLA_REQUIRE_BACKENDS");
        if (required && strstr(required, "opencl"))
            cr_assert_fail("EFLA_REQUIRE_BACKENDS names opencl, which is unavailable: %s",
                           efla_last_error_message());
        cr_skip_test("opencl unavailable: %s", efla_last_error_message());
    }
    cl_int err;
    h->context = clCreateContext(NULL, 1, &h->device, NULL, NULL, &err);
    cr_assert_eq(err, CL_SUCCESS, "clCreateContext: %d", err);
    cl_command_queue_properties supported = 0;
    clGetDeviceInfo(h->device, CL_DEVICE_QUEUE_PROPERTIES, sizeof supported, &supported, NULL);
    h->queue = clCreateCommandQueue(h->context, h->device,
                                    supported & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE, &err);
    cr_assert_eq(err, CL_SUCCESS, "clCreateCommandQueue: %d", err);
}

static void host_close(host_cl *h) {
    clReleaseCommandQueue(h->queue);
    clReleaseContext(h->context);
}

static efla_context efla_on_host(const host_cl *h) {
    efla_opencl_context_info native = EFLA_OPENCL_CONTEXT_INFO_INIT;
    native.context = h->context;
    native.device = h->device;
    native.queue = h->queue;
    efla_context context = NULL;
    cr_assert_eq(efla_opencl_context_create(&native, NULL, &context), EFLA_SUCCESS, "%s",
                 efla_last_error_message());
    cr_assert_eq(efla_context_backend(context), EFLA_BACKEND_OPENCL);
    return context;
}

/* The problem's tensors packed into one host cl_mem, each at its own
 * offset, the whole wrapped by efla from a non-zero offset. */
typedef struct arena {
    cl_mem memory;
    uint64_t wrap_offset;
    uint64_t offsets[6]; /* q, k, v, beta, out, state: bytes from wrap_offset */
    int64_t counts[6];
    uint64_t size;
} arena;

static void arena_fill(const host_cl *h, const problem *p, arena *a) {
    const double *inputs[6] = {p->q, p->k, p->v, p->beta, NULL, p->initial_state};
    a->counts[0] = a->counts[1] = problem_q_count(p);
    a->counts[2] = a->counts[4] = problem_v_count(p);
    a->counts[3] = problem_beta_count(p);
    a->counts[5] = problem_state_count(p);
    a->wrap_offset = 12; /* not a sub-buffer alignment: efla passes element offsets */
    uint64_t at = 0;
    for (int i = 0; i < 6; ++i) {
        a->offsets[i] = at + 4 * (uint64_t)i; /* odd placements, multiples of 4 */
        at = a->offsets[i] + 4 * (uint64_t)a->counts[i] + 64;
    }
    a->size = at;
    cl_int err;
    a->memory = clCreateBuffer(h->context, CL_MEM_READ_WRITE, a->wrap_offset + a->size, NULL, &err);
    cr_assert_eq(err, CL_SUCCESS);
    for (int i = 0; i < 6; ++i) {
        float *values = calloc((size_t)a->counts[i], sizeof *values);
        for (int64_t j = 0; inputs[i] && j < a->counts[i]; ++j)
            values[j] = (float)inputs[i][j];
        err = clEnqueueWriteBuffer(h->queue, a->memory, CL_TRUE, a->wrap_offset + a->offsets[i],
                                   4 * (size_t)a->counts[i], values, 0, NULL, NULL);
        cr_assert_eq(err, CL_SUCCESS);
        free(values);
    }
}

static double *arena_read(const host_cl *h, const arena *a, int which) {
    float *values = calloc((size_t)a->counts[which], sizeof *values);
    cl_int err =
        clEnqueueReadBuffer(h->queue, a->memory, CL_TRUE, a->wrap_offset + a->offsets[which],
                            4 * (size_t)a->counts[which], values, 0, NULL, NULL);
    cr_assert_eq(err, CL_SUCCESS);
    double *out = calloc((size_t)a->counts[which], sizeof *out);
    for (int64_t j = 0; j < a->counts[which]; ++j)
        out[j] = values[j];
    free(values);
    return out;
}

static efla_forward_desc describe(const problem *p, efla_buffer buffer, const arena *a) {
    const int64_t qk[4] = {p->B, p->T, p->H, p->Dk}, vo[4] = {p->B, p->T, p->HV, p->Dv},
                  beta[3] = {p->B, p->T, p->HV}, state[4] = {p->N, p->HV, p->Dk, p->Dv};
    efla_forward_desc d = EFLA_FORWARD_DESC_INIT;
    d.q = efla_tensor_contiguous(buffer, a->offsets[0], EFLA_DTYPE_F32, 4, qk);
    d.k = efla_tensor_contiguous(buffer, a->offsets[1], EFLA_DTYPE_F32, 4, qk);
    d.v = efla_tensor_contiguous(buffer, a->offsets[2], EFLA_DTYPE_F32, 4, vo);
    d.beta = efla_tensor_contiguous(buffer, a->offsets[3], EFLA_DTYPE_F32, 3, beta);
    d.out = efla_tensor_contiguous(buffer, a->offsets[4], EFLA_DTYPE_F32, 4, vo);
    d.initial_state = efla_tensor_contiguous(buffer, a->offsets[5], EFLA_DTYPE_F32, 4, state);
    d.final_state = d.initial_state; /* in place */
    return d;
}

static const problem_spec spec = {
    .B = 2, .T = 90, .H = 2, .HV = 4, .Dk = 16, .Dv = 12, .initial_state = true};

Test(opencl_interop, record_behind_a_host_event) {
    host_cl h;
    host_open(&h);
    problem p;
    problem_create(&p, &spec, EFLA_DTYPE_F32, 7);
    double *ref_out, *ref_state, *ref_peak;
    problem_reference(&p, &ref_out, &ref_state, &ref_peak);
    arena a;
    arena_fill(&h, &p, &a);

    efla_context context = efla_on_host(&h);
    efla_buffer buffer;
    cr_assert_eq(efla_opencl_buffer_wrap(context, a.memory, a.wrap_offset, a.size, &buffer),
                 EFLA_SUCCESS, "%s", efla_last_error_message());
    cl_mem memory = NULL;
    uint64_t offset = 0;
    cr_assert_eq(efla_opencl_buffer_get(buffer, &memory, &offset), EFLA_SUCCESS);
    cr_expect_eq(memory, a.memory);
    cr_expect_eq(offset, a.wrap_offset);

    cl_int err;
    cl_event gate = clCreateUserEvent(h.context, &err), done = NULL;
    cr_assert_eq(err, CL_SUCCESS);
    efla_opencl_command command = EFLA_OPENCL_COMMAND_INIT;
    command.queue = h.queue;
    command.wait_list_count = 1;
    command.wait_list = &gate;
    command.event = &done;
    const efla_forward_desc desc = describe(&p, buffer, &a);
    cr_assert_eq(efla_opencl_forward_record(context, &command, &desc), EFLA_SUCCESS, "%s",
                 efla_last_error_message());
    cr_assert_not_null(done);
    cl_int state = CL_COMPLETE;
    clGetEventInfo(done, CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof state, &state, NULL);
    cr_expect_neq(state, CL_COMPLETE, "the forward finished before its wait list");
    clSetUserEventStatus(gate, CL_COMPLETE);
    cr_assert_eq(clWaitForEvents(1, &done), CL_SUCCESS);

    double *out = arena_read(&h, &a, 4), *final_state = arena_read(&h, &a, 5);
    harness_compare(&p, "opencl interop record", out, final_state, ref_out, ref_state, ref_peak,
                    harness_tolerance(EFLA_DTYPE_F32));
    free(out), free(final_state);
    clReleaseEvent(done), clReleaseEvent(gate);
    efla_buffer_destroy(buffer);
    efla_context_destroy(context);
    /* The host's objects outlive the efla context. */
    cr_expect_eq(clFinish(h.queue), CL_SUCCESS);
    cl_mem after = clCreateBuffer(h.context, CL_MEM_READ_WRITE, 64, NULL, &err);
    cr_expect_eq(err, CL_SUCCESS, "the host context died with the efla context");
    clReleaseMemObject(after);
    clReleaseMemObject(a.memory);
    free(ref_out), free(ref_state), free(ref_peak);
    problem_destroy(&p);
    host_close(&h);
}

Test(opencl_interop, plain_calls_use_the_host_queue) {
    host_cl h;
    host_open(&h);
    problem p;
    problem_create(&p, &spec, EFLA_DTYPE_F32, 8);
    double *ref_out, *ref_state;
    problem_reference(&p, &ref_out, &ref_state, NULL);
    arena a;
    arena_fill(&h, &p, &a);
    efla_context context = efla_on_host(&h);
    efla_buffer buffer;
    cr_assert_eq(efla_opencl_buffer_wrap(context, a.memory, a.wrap_offset, a.size, &buffer),
                 EFLA_SUCCESS);
    const efla_forward_desc desc = describe(&p, buffer, &a);
    cr_assert_eq(efla_forward(context, &desc), EFLA_SUCCESS, "%s", efla_last_error_message());
    cr_assert_eq(efla_context_synchronize(context), EFLA_SUCCESS, "%s", efla_last_error_message());
    float *values = malloc(4 * (size_t)a.counts[4]);
    cr_assert_eq(efla_buffer_download(buffer, a.offsets[4], values, 4 * (uint64_t)a.counts[4]),
                 EFLA_SUCCESS);
    double *out = calloc((size_t)a.counts[4], sizeof *out);
    for (int64_t i = 0; i < a.counts[4]; ++i)
        out[i] = values[i];
    harness_compare(&p, "opencl interop forward", out, NULL, ref_out, NULL, NULL,
                    harness_tolerance(EFLA_DTYPE_F32));
    free(values), free(out);
    efla_buffer_destroy(buffer);
    efla_context_destroy(context);
    clReleaseMemObject(a.memory);
    free(ref_out), free(ref_state);
    problem_destroy(&p);
    host_close(&h);
}

Test(opencl_interop, foreign_objects_are_refused) {
    host_cl h, other;
    host_open(&h);
    host_open(&other);
    efla_context context = efla_on_host(&h);
    cl_int err;
    cl_mem mine = clCreateBuffer(h.context, CL_MEM_READ_WRITE, 256, NULL, &err);
    cl_mem theirs = clCreateBuffer(other.context, CL_MEM_READ_WRITE, 256, NULL, &err);
    efla_buffer buffer = NULL;
    cr_expect_eq(efla_opencl_buffer_wrap(context, theirs, 0, 256, &buffer),
                 EFLA_ERROR_BACKEND_MISMATCH);
    cr_expect_eq(efla_opencl_buffer_wrap(context, mine, 2, 128, &buffer),
                 EFLA_ERROR_INVALID_ARGUMENT);
    cr_expect_eq(efla_opencl_buffer_wrap(context, mine, 128, 132, &buffer),
                 EFLA_ERROR_OUT_OF_BOUNDS);
    cr_expect_eq(efla_opencl_buffer_wrap(context, NULL, 0, 128, &buffer),
                 EFLA_ERROR_INVALID_ARGUMENT);
    cr_expect_null(buffer);

    efla_opencl_context_info mixed = EFLA_OPENCL_CONTEXT_INFO_INIT;
    mixed.context = h.context;
    mixed.device = h.device;
    mixed.queue = other.queue;
    efla_context refused = NULL;
    cr_expect_eq(efla_opencl_context_create(&mixed, NULL, &refused), EFLA_ERROR_INVALID_ARGUMENT);
    cr_expect_null(refused);

    efla_opencl_command command = EFLA_OPENCL_COMMAND_INIT;
    command.queue = other.queue;
    efla_forward_desc desc = EFLA_FORWARD_DESC_INIT; /* rejected before or after: never run */
    cr_expect_neq(efla_opencl_forward_record(context, &command, &desc), EFLA_SUCCESS);

    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = EFLA_BACKEND_CPU;
    efla_context cpu;
    cr_assert_eq(efla_context_create(&info, &cpu), EFLA_SUCCESS);
    cr_expect_eq(efla_opencl_buffer_wrap(cpu, mine, 0, 128, &buffer), EFLA_ERROR_BACKEND_MISMATCH);
    efla_context_destroy(cpu);

    clReleaseMemObject(mine), clReleaseMemObject(theirs);
    efla_context_destroy(context);
    host_close(&other);
    host_close(&h);
}
