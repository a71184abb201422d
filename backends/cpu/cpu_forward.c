/* The CPU forward: one task per (sequence, value head). */
#include "backends/cpu/cpu_internal.h"
#include "backends/cpu/cpu_pool.h"
#include "backends/cpu/cpu_tensor.h"

#include "core/alpha.h"
#include "core/context.h"
#include "core/error.h"

#include <math.h>
#include <string.h>

typedef struct forward_job {
    const efla_forward_args *args;
    efla_backend_context *ctx;
    _Atomic int failed;
} forward_job;

static void l2_normalize(float *x, int64_t n) {
    float sum = 0.0f;
    for (int64_t i = 0; i < n; ++i) sum += x[i] * x[i];
    float inv = 1.0f / sqrtf(sum + 1e-6f);
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

static void load_state(const efla_forward_args *a, int64_t n, int64_t hv, float *state) {
    if (!a->initial_state.buffer) {
        memset(state, 0, sizeof *state * (size_t)(a->dk * a->dv));
        return;
    }
    for (int64_t i = 0; i < a->dk; ++i)
        efla_view_load_row(&a->initial_state, n, hv, i, a->dv, state + i * a->dv);
}

static void store_state(const efla_forward_args *a, int64_t n, int64_t hv, const float *state) {
    const efla_tensor_view *s = &a->final_state;
    for (int64_t i = 0; i < a->dk; ++i)
        for (int64_t j = 0; j < a->dv; ++j)
            efla_view_store(s, efla_view_index(s, n, hv, i, j), state[i * a->dv + j]);
}

/* Token-by-token recurrence (ALGORITHM.md §2.1) over one sequence. */
static void recurrent_sequence(const efla_forward_args *a, int64_t b, int64_t first,
                               int64_t length, int64_t hv, float *state, float *scratch) {
    const int64_t dk = a->dk, dv = a->dv;
    const int64_t h = hv / (a->value_heads / a->heads);
    float *q = scratch, *k = q + dk, *v = k + dk, *u = v + dv;
    for (int64_t t = first; t < first + length; ++t) {
        efla_view_load_row(&a->q, b, t, h, dk, q);
        efla_view_load_row(&a->k, b, t, h, dk, k);
        efla_view_load_row(&a->v, b, t, hv, dv, v);
        float beta = efla_view_load(&a->beta, efla_view_index(&a->beta, b, t, hv, 0));
        if (a->l2norm_q) l2_normalize(q, dk);
        if (a->l2norm_k) l2_normalize(k, dk);
        float lambda = 0.0f;
        for (int64_t i = 0; i < dk; ++i) lambda += k[i] * k[i];
        float alpha = a->mode == EFLA_MODE_DELTA ? beta : efla_alpha(beta, lambda);
        memcpy(u, v, sizeof *u * (size_t)dv);
        for (int64_t i = 0; i < dk; ++i)
            for (int64_t j = 0; j < dv; ++j) u[j] -= state[i * dv + j] * k[i];
        for (int64_t i = 0; i < dk; ++i) {
            float ak = alpha * k[i];
            for (int64_t j = 0; j < dv; ++j) state[i * dv + j] += ak * u[j];
        }
        int64_t out = efla_view_index(&a->out, b, t, hv, 0);
        for (int64_t j = 0; j < dv; ++j) {
            float o = 0.0f;
            for (int64_t i = 0; i < dk; ++i) o += state[i * dv + j] * q[i];
            efla_view_store(&a->out, out + j * a->out.strides[3], a->scale * o);
        }
    }
}

static void forward_task(void *opaque, uint32_t index) {
    forward_job *job = opaque;
    const efla_forward_args *a = job->args;
    const int64_t n = index / a->value_heads, hv = index % a->value_heads;
    int64_t b, first, length;
    efla_forward_sequence(a, n, &b, &first, &length);
    const efla_allocator *allocator = job->ctx->params.allocator;
    size_t floats = (size_t)(a->dk * a->dv + 2 * a->dk + 2 * a->dv);
    float *state = efla_host_alloc(allocator, floats * sizeof(float));
    if (!state) {
        job->failed = 1;
        return;
    }
    load_state(a, n, hv, state);
    recurrent_sequence(a, b, first, length, hv, state, state + a->dk * a->dv);
    if (a->final_state.buffer) store_state(a, n, hv, state);
    efla_host_free(allocator, state);
}

efla_algorithm efla_cpu_forward_algorithm(const efla_forward_args *args) {
    (void)args;
    return EFLA_ALGORITHM_RECURRENT;
}

const char *efla_cpu_kernel_path(void) { return "portable"; }

efla_status efla_cpu_forward_run(efla_backend_context *ctx, const efla_forward_args *args) {
    const int64_t tasks = args->sequences * args->value_heads;
    if (tasks > UINT32_MAX)
        return efla_error(EFLA_ERROR_UNSUPPORTED, "%lld (sequence, head) pairs exceed 2^32",
                          (long long)tasks);
    forward_job job = {args, ctx, 0};
    efla_cpu_parallel_for(ctx, forward_task, &job, (uint32_t)tasks);
    if (job.failed) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    return EFLA_SUCCESS;
}
