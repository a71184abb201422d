/* The CPU forward: tasks over (sequence, value head, Dv tile), each running
 * its sequence with the recurrent or the chunked algorithm. */
#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_plan.h"
#include "backends/cpu/cpu_pool.h"
#include "backends/cpu/cpu_scratch.h"

#include "core/context.h"
#include "core/error.h"

#include <stdlib.h>

typedef struct sequence_length {
    int64_t length, index;
} sequence_length;

typedef struct forward_job {
    const efla_forward_args *args;
    efla_backend_context *ctx;
    const efla_cpu_plan *plan;
    const sequence_length *order; /* sequences longest first, or NULL for 0..N-1 */
    atomic_int failed;
} forward_job;

static void forward_task(void *opaque, uint32_t index) {
    forward_job *job = opaque;
    const efla_forward_args *a = job->args;
    const efla_cpu_plan *plan = job->plan;
    const int64_t tile = index % plan->tiles, pair = index / plan->tiles;
    const int64_t rank = pair / a->value_heads, hv = pair % a->value_heads;
    efla_cpu_task task = {.args = a, .kernels = job->ctx->kernels, .plan = plan};
    task.sequence = job->order ? job->order[rank].index : rank;
    efla_forward_sequence(a, task.sequence, &task.batch_row, &task.first, &task.length);
    task.value_head = hv;
    task.head = hv / (a->value_heads / a->heads);
    task.col0 = tile * plan->tile_width;
    task.width = a->dv - task.col0 < plan->tile_width ? a->dv - task.col0 : plan->tile_width;
    task.panels = (task.width + EFLA_CPU_NR - 1) / EFLA_CPU_NR;
    int slot;
    void *scratch = efla_cpu_scratch_acquire(job->ctx, plan->scratch_bytes, &slot);
    if (!scratch) {
        atomic_store(&job->failed, 1);
        return;
    }
    if (efla_cpu_use_chunked(a, task.length))
        efla_cpu_chunked_run(&task, scratch);
    else
        efla_cpu_recurrent_run(&task, scratch);
    efla_cpu_scratch_release(job->ctx, slot, scratch);
}

static int longest_first(const void *x, const void *y) {
    const sequence_length *a = x, *b = y;
    if (a->length != b->length) return a->length > b->length ? -1 : 1;
    return a->index < b->index ? -1 : a->index > b->index;
}

/* Varlen sequences in a fixed longest-first order, so that long sequences
 * start early and short ones fill in behind them. */
static efla_status sequence_order(const efla_forward_args *a, const efla_allocator *allocator,
                                  sequence_length **out) {
    *out = NULL;
    if (!a->cu_seqlens || a->sequences < 2) return EFLA_SUCCESS;
    sequence_length *items = efla_host_alloc(allocator, sizeof *items * (size_t)a->sequences);
    if (!items) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int64_t n = 0; n < a->sequences; ++n)
        items[n] = (sequence_length){a->cu_seqlens[n + 1] - a->cu_seqlens[n], n};
    qsort(items, (size_t)a->sequences, sizeof *items, longest_first);
    *out = items;
    return EFLA_SUCCESS;
}

efla_algorithm efla_cpu_forward_algorithm(const efla_forward_args *args) {
    if (args->algorithm != EFLA_ALGORITHM_AUTO) return args->algorithm;
    bool chunked = false, recurrent = false;
    for (int64_t n = 0; n < args->sequences; ++n) {
        int64_t batch_row, first, length;
        efla_forward_sequence(args, n, &batch_row, &first, &length);
        if (efla_cpu_use_chunked(args, length))
            chunked = true;
        else
            recurrent = true;
    }
    if (chunked && recurrent) return EFLA_ALGORITHM_AUTO;
    return chunked ? EFLA_ALGORITHM_CHUNKED : EFLA_ALGORITHM_RECURRENT;
}

efla_status efla_cpu_forward_run(efla_backend_context *ctx, const efla_forward_args *args) {
    efla_cpu_plan plan;
    efla_cpu_plan_make(args, &plan);
    if (plan.task_count > UINT32_MAX)
        return efla_error(EFLA_ERROR_UNSUPPORTED, "%lld CPU tasks exceed 2^32",
                          (long long)plan.task_count);
    efla_status status = efla_cpu_scratch_reserve(ctx, plan.scratch_bytes);
    if (status != EFLA_SUCCESS) return status;
    sequence_length *order;
    status = sequence_order(args, ctx->params.allocator, &order);
    if (status != EFLA_SUCCESS) return status;
    forward_job job = {args, ctx, &plan, order, 0};
    efla_cpu_parallel_for(ctx, forward_task, &job, (uint32_t)plan.task_count);
    efla_host_free(ctx->params.allocator, order);
    if (atomic_load(&job.failed))
        return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory for CPU scratch");
    return EFLA_SUCCESS;
}
