/* The CPU forward: tasks over (sequence, value head, Dv tile), each running
 * its sequence with the recurrent or the chunked algorithm. */
#include "backends/cpu/cpu_kernels.h"
#include "backends/cpu/cpu_plan.h"
#include "backends/cpu/cpu_pool.h"
#include "backends/cpu/cpu_scratch.h"
#include "backends/cpu/cpu_share.h"

#include "core/context.h"
#include "core/error.h"

typedef struct forward_job {
    const efla_forward_args *args;
    efla_backend_context *ctx;
    const efla_cpu_plan *plan;
    const int64_t *order; /* sequences, longest classes first; NULL for 0..N-1 */
    const efla_cpu_shares *shares;
    atomic_int failed;
} forward_job;

static void forward_task(void *opaque, uint32_t index) {
    forward_job *job = opaque;
    const efla_forward_args *a = job->args;
    const efla_cpu_plan *plan = job->plan;
    const int64_t tile = index % plan->tiles, pair = index / plan->tiles;
    const int64_t rank = pair / a->value_heads, hv = pair % a->value_heads;
    efla_cpu_task task = {.args = a, .kernels = job->ctx->kernels, .plan = plan};
    task.sequence = job->order ? job->order[rank] : rank;
    efla_forward_sequence(a, task.sequence, &task.batch_row, &task.first, &task.length);
    task.value_head = hv;
    task.share = job->shares->pair ? &job->shares->pair[task.sequence * a->value_heads + hv] : NULL;
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

/* Length class: floor(log2(length + 1)), 0..63. */
static int length_class(int64_t length) {
    int c = 0;
    for (uint64_t x = (uint64_t)length + 1; x > 1; x >>= 1)
        ++c;
    return c;
}

#define LENGTH_CLASSES 64

/* Varlen sequences ordered by length class, longest first (stable within a
 * class: a counting sort, linear in N), so that long sequences start early
 * and short ones fill in behind them. NULL when all share one class. */
static efla_status sequence_order(const efla_forward_args *a, const efla_allocator *allocator,
                                  int64_t **out) {
    *out = NULL;
    if (!a->cu_seqlens || a->sequences < 2) return EFLA_SUCCESS;
    int64_t start[LENGTH_CLASSES + 1] = {0};
    for (int64_t n = 0; n < a->sequences; ++n)
        start[LENGTH_CLASSES - 1 - length_class(a->cu_seqlens[n + 1] - a->cu_seqlens[n]) + 1]++;
    for (int c = 0; c < LENGTH_CLASSES; ++c) {
        if (start[c + 1] == a->sequences) return EFLA_SUCCESS; /* one class: keep 0..N-1 */
        start[c + 1] += start[c];
    }
    int64_t *order = efla_host_alloc(allocator, sizeof *order * (size_t)a->sequences);
    if (!order) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    for (int64_t n = 0; n < a->sequences; ++n)
        order[start[LENGTH_CLASSES - 1 - length_class(a->cu_seqlens[n + 1] - a->cu_seqlens[n])]++] =
            n;
    *out = order;
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
    int64_t *order;
    status = sequence_order(args, ctx->params.allocator, &order);
    if (status != EFLA_SUCCESS) return status;
    efla_cpu_shares shares;
    status = efla_cpu_shares_create(args, &plan, ctx->params.allocator, &shares);
    if (status != EFLA_SUCCESS) {
        efla_host_free(ctx->params.allocator, order);
        return status;
    }
    forward_job job = {args, ctx, &plan, order, &shares, 0};
    efla_cpu_parallel_for(ctx, forward_task, &job, (uint32_t)plan.task_count);
    efla_cpu_shares_destroy(ctx->params.allocator, &shares);
    efla_host_free(ctx->params.allocator, order);
    if (atomic_load(&job.failed))
        return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory for CPU scratch");
    return EFLA_SUCCESS;
}
