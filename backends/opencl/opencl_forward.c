/*
 * Enqueuing a forward: the recurrent kernel for short sequences; for long
 * ones the chunk-parallel prepare, the serial state scan and the
 * chunk-parallel output. On out-of-order queues events order them:
 * recurrent and prepare wait for the previous operation (the context's
 * tail, plus a host wait list), each chunk kernel for the one before, and
 * the tail becomes {recurrent, output}.
 */
#include "backends/opencl/opencl_error.h"
#include "backends/opencl/opencl_internal.h"
#include "backends/opencl/opencl_plan.h"
#include "core/error.h"
#include "shaders/opencl/efla_params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct kernel_arg {
    size_t size;
    const void *value; /* NULL with a size: a __local buffer of that size */
} kernel_arg;

static efla_status set_args(cl_kernel kernel, const char *name, const kernel_arg *args,
                            cl_uint count) {
    for (cl_uint i = 0; i < count; ++i) {
        cl_int err = efla_cl.clSetKernelArg(kernel, i, args[i].size, args[i].value);
        if (err != CL_SUCCESS) {
            char what[64];
            snprintf(what, sizeof what, "%s: clSetKernelArg(%u)", name, i);
            return efla_cl_fail(err, what);
        }
    }
    return EFLA_SUCCESS;
}

static efla_status launch(cl_command_queue queue, cl_kernel kernel, const char *name, size_t groups,
                          size_t group_size, const cl_event *wait, cl_uint wait_count,
                          cl_event *event) {
    const size_t global = groups * group_size;
    cl_int err = efla_cl.clEnqueueNDRangeKernel(queue, kernel, 1, NULL, &global, &group_size,
                                                wait_count, wait_count ? wait : NULL, event);
    if (err != CL_SUCCESS) {
        efla_status status = efla_cl_fail(err, "clEnqueueNDRangeKernel");
        efla_error_prefix(name);
        return status;
    }
    return EFLA_SUCCESS;
}

static efla_status ensure_scratch(efla_backend_context *ctx, uint64_t bytes) {
    if (bytes <= ctx->scratch_bytes) return EFLA_SUCCESS;
    if (bytes > ctx->device.max_allocation)
        return efla_error(EFLA_ERROR_OUT_OF_DEVICE_MEMORY,
                          "the chunked forward needs %llu bytes of scratch but '%s' allocates at "
                          "most %llu bytes at once; split the call",
                          (unsigned long long)bytes, ctx->device.info.name,
                          (unsigned long long)ctx->device.max_allocation);
    cl_int err;
    cl_mem grown =
        efla_cl.clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, (size_t)bytes, NULL, &err);
    if (err != CL_SUCCESS) return efla_cl_fail(err, "clCreateBuffer (scratch)");
    /* Queued work that still uses the old scratch keeps it alive. */
    if (ctx->scratch) efla_cl.clReleaseMemObject(ctx->scratch);
    ctx->scratch = grown;
    ctx->scratch_bytes = bytes;
    return EFLA_SUCCESS;
}

/* What one forward's kernels need. */
typedef struct launch_state {
    efla_backend_context *ctx;
    const efla_forward_args *args;
    const efla_cl_plan *plan;
    cl_command_queue queue;
    cl_mem call;
    const cl_event *wait;
    cl_uint wait_count;
} launch_state;

static cl_mem memory_of(const efla_tensor_view *view) {
    return view->buffer ? view->buffer->memory : NULL;
}

static efla_status run_recurrent(const launch_state *s, cl_event *event) {
    const efla_forward_args *a = s->args;
    const efla_cl_plan *p = s->plan;
    cl_kernel kernel = p->program->kernels[EFLA_CL_RECURRENT];
    cl_mem q = memory_of(&a->q), k = memory_of(&a->k), v = memory_of(&a->v),
           beta = memory_of(&a->beta), out = memory_of(&a->out), s0 = memory_of(&a->initial_state),
           s1 = memory_of(&a->final_state);
    cl_int table = p->recurrent_table, columns = (cl_int)p->recurrent_columns,
           row_groups = (cl_int)p->recurrent_row_groups;
    const kernel_arg args[] = {{sizeof(cl_mem), &s->call},
                               {sizeof table, &table},
                               {sizeof(cl_mem), &q},
                               {sizeof(cl_mem), &k},
                               {sizeof(cl_mem), &v},
                               {sizeof(cl_mem), &beta},
                               {sizeof(cl_mem), &out},
                               {sizeof(cl_mem), &s0},
                               {sizeof(cl_mem), &s1},
                               {sizeof columns, &columns},
                               {sizeof row_groups, &row_groups},
                               {p->recurrent_local_bytes, NULL}};
    efla_status status = set_args(kernel, "efla_recurrent", args, 12);
    if (status != EFLA_SUCCESS) return status;
    const size_t tiles = (size_t)((a->dv + columns - 1) / columns);
    const size_t groups = (size_t)p->recurrent_count * (size_t)a->value_heads * tiles;
    return launch(s->queue, kernel, "efla_recurrent", groups, p->program->tiles.work_group, s->wait,
                  s->wait_count, event);
}

static efla_status run_prepare(const launch_state *s, cl_event *event) {
    const efla_forward_args *a = s->args;
    const efla_cl_plan *p = s->plan;
    cl_kernel kernel = p->program->kernels[p->nvmma ? EFLA_CL_NVMMA_PREPARE : EFLA_CL_PREPARE];
    cl_mem q = memory_of(&a->q), k = memory_of(&a->k), v = memory_of(&a->v),
           beta = memory_of(&a->beta), scratch = s->ctx->scratch;
    cl_int table = p->chunk_table;
    const kernel_arg args[] = {{sizeof(cl_mem), &s->call}, {sizeof table, &table},
                               {sizeof(cl_mem), &q},       {sizeof(cl_mem), &k},
                               {sizeof(cl_mem), &v},       {sizeof(cl_mem), &beta},
                               {sizeof(cl_mem), &scratch}};
    efla_status status = set_args(kernel, "efla_chunk_prepare", args, 7);
    if (status != EFLA_SUCCESS) return status;
    const size_t groups = (size_t)p->chunk_count * (size_t)a->value_heads;
    const size_t items = p->nvmma ? EFLA_NV_PREPARE_ITEMS : p->program->tiles.work_group;
    return launch(s->queue, kernel, "efla_chunk_prepare", groups, items, s->wait, s->wait_count,
                  event);
}

static efla_status run_state(const launch_state *s, cl_event prepared, cl_event *event) {
    const efla_forward_args *a = s->args;
    const efla_cl_plan *p = s->plan;
    cl_kernel kernel = p->program->kernels[p->scan_kernel];
    cl_mem k = memory_of(&a->k), s0 = memory_of(&a->initial_state), s1 = memory_of(&a->final_state),
           scratch = s->ctx->scratch;
    cl_int table = p->scan_table, first_chunks = p->first_chunk_table;
    const cl_int columns = (cl_int)p->scan_columns;
    const kernel_arg portable[] = {{sizeof(cl_mem), &s->call},
                                   {sizeof table, &table},
                                   {sizeof first_chunks, &first_chunks},
                                   {sizeof(cl_mem), &k},
                                   {sizeof(cl_mem), &s0},
                                   {sizeof(cl_mem), &s1},
                                   {sizeof(cl_mem), &scratch},
                                   {p->scan_local_bytes, NULL}};
    /* The nvmma scan reads no keys, and its local memory is all static. */
    const kernel_arg nvmma[] = {
        {sizeof(cl_mem), &s->call}, {sizeof table, &table}, {sizeof first_chunks, &first_chunks},
        {sizeof(cl_mem), &s0},      {sizeof(cl_mem), &s1},  {sizeof(cl_mem), &scratch}};
    efla_status status = p->nvmma ? set_args(kernel, "efla_nvmma_state", nvmma, 6)
                                  : set_args(kernel, "efla_chunk_state", portable, 8);
    if (status != EFLA_SUCCESS) return status;
    const size_t tiles = (size_t)((a->dv + columns - 1) / columns);
    const size_t groups = (size_t)p->scan_count * (size_t)a->value_heads * tiles;
    /* With no chunk to prepare (only empty sequences), wait like prepare. */
    const cl_event *wait = prepared ? &prepared : s->wait;
    cl_uint wait_count = prepared ? 1 : s->wait_count;
    return launch(s->queue, kernel, "efla_chunk_state", groups, p->scan_items, wait, wait_count,
                  event);
}

static efla_status run_output(const launch_state *s, cl_event scanned, cl_event *event) {
    const efla_forward_args *a = s->args;
    const efla_cl_plan *p = s->plan;
    cl_kernel kernel = p->program->kernels[p->nvmma ? EFLA_CL_NVMMA_OUTPUT : EFLA_CL_OUTPUT];
    cl_mem q = memory_of(&a->q), out = memory_of(&a->out), scratch = s->ctx->scratch;
    cl_int table = p->chunk_table;
    const kernel_arg portable[] = {{sizeof(cl_mem), &s->call},
                                   {sizeof table, &table},
                                   {sizeof(cl_mem), &q},
                                   {sizeof(cl_mem), &out},
                                   {sizeof(cl_mem), &scratch}};
    /* The nvmma output reads q from the scratch. */
    const kernel_arg nvmma[] = {{sizeof(cl_mem), &s->call},
                                {sizeof table, &table},
                                {sizeof(cl_mem), &out},
                                {sizeof(cl_mem), &scratch}};
    efla_status status = p->nvmma ? set_args(kernel, "efla_nvmma_output", nvmma, 4)
                                  : set_args(kernel, "efla_chunk_output", portable, 5);
    if (status != EFLA_SUCCESS) return status;
    const int64_t tile = p->nvmma ? EFLA_NV_OUT_TILE : EFLA_CL_OUT_TILE;
    const int64_t width = p->nvmma ? (a->dv + 15) / 16 * 16 : a->dv;
    const size_t tiles = (size_t)((width + tile - 1) / tile);
    const size_t groups = (size_t)p->chunk_count * (size_t)a->value_heads * tiles;
    const size_t items = p->nvmma ? EFLA_NV_OUTPUT_ITEMS : 4 * (size_t)p->program->tiles.chunk;
    return launch(s->queue, kernel, "efla_chunk_output", groups, items, &scanned, 1, event);
}

/* Profiling aid: EFLA_OPENCL_STOP_AFTER=prepare|state enqueues the chunk
 * kernels only up to that one (the output is then wrong), so that timing
 * a forward with and without each gives the kernels' shares. */
static int chunk_stages(void) {
    const char *text = getenv("EFLA_OPENCL_STOP_AFTER");
    if (!text) return 3;
    return strcmp(text, "prepare") == 0 ? 1 : strcmp(text, "state") == 0 ? 2 : 3;
}

/* The wait list: the context's tail, then the caller's events. */
static cl_event *merge_wait(efla_backend_context *ctx, const cl_event *extra, cl_uint extra_count,
                            cl_uint *out_count) {
    cl_uint count = ctx->tail.count + extra_count;
    *out_count = count;
    cl_event *list = ctx->params.allocator->alloc(ctx->params.allocator->user,
                                                  sizeof *list * (count ? count : 1), 64);
    if (!list) return NULL;
    memcpy(list, ctx->tail.list, sizeof *list * ctx->tail.count);
    if (extra_count) memcpy(list + ctx->tail.count, extra, sizeof *list * extra_count);
    return list;
}

static efla_status enqueue_planned(efla_backend_context *ctx, const efla_forward_args *args,
                                   const efla_cl_plan *plan, cl_command_queue queue, cl_mem call,
                                   const cl_event *wait, cl_uint wait_count) {
    launch_state s = {ctx, args, plan, queue, call, wait, wait_count};
    cl_event recurrent = NULL, prepared = NULL, scanned = NULL, output = NULL;
    efla_status status = EFLA_SUCCESS;
    if (plan->recurrent_count) status = run_recurrent(&s, &recurrent);
    const int stages = chunk_stages();
    if (status == EFLA_SUCCESS && plan->chunk_count) status = run_prepare(&s, &prepared);
    if (status == EFLA_SUCCESS && plan->scan_count && stages >= 2)
        status = run_state(&s, prepared, &scanned);
    if (status == EFLA_SUCCESS && plan->chunk_count && scanned && stages >= 3)
        status = run_output(&s, scanned, &output);

    /* Whatever was enqueued becomes the tail, even after a failure: the
     * last of each chain (recurrent; prepare -> state -> output). */
    cl_event last[2];
    cl_uint count = 0;
    if (recurrent) last[count++] = recurrent;
    cl_event chunked = output ? output : scanned ? scanned : prepared;
    if (chunked) last[count++] = chunked;
    if (ctx->profiling && queue == ctx->queue) {
        const cl_event events[] = {recurrent, prepared, scanned, output};
        static const char *const names[] = {"recurrent", "prepare", "state", "output"};
        cl_event timed[EFLA_CL_MAX_EVENTS];
        cl_uint n = 0;
        for (int i = 0; i < 4; ++i)
            if (events[i]) {
                ctx->timed_names[n] = names[i];
                efla_cl.clRetainEvent(timed[n++] = events[i]);
            }
        efla_cl_events_set(&ctx->timed, timed, n);
    }
    if (prepared && prepared != chunked) efla_cl.clReleaseEvent(prepared);
    if (scanned && scanned != chunked) efla_cl.clReleaseEvent(scanned);
    if (count == 0 && status == EFLA_SUCCESS) {
        /* Nothing to run: a marker keeps "the forward is done" an event
         * that follows the wait list, for the next operation and interop. */
        cl_int err = efla_cl.clEnqueueMarkerWithWaitList(queue, wait_count,
                                                         wait_count ? wait : NULL, &last[0]);
        if (err != CL_SUCCESS) return efla_cl_fail(err, "clEnqueueMarkerWithWaitList");
        count = 1;
    }
    if (count) efla_cl_events_set(&ctx->tail, last, count);
    return status;
}

/* The parameter block on the device, retained for the caller: the last
 * call's buffer when the block is the same (a repeated shape: no
 * allocation, no copy), else a new one that becomes the context's. Takes
 * the plan's block. */
static efla_status parameter_buffer(efla_backend_context *ctx, efla_cl_plan *plan, cl_mem *out) {
    if (ctx->call && ctx->call_bytes == plan->block_bytes &&
        memcmp(ctx->call_block, plan->block, plan->block_bytes) == 0) {
        efla_cl_plan_free(ctx, plan);
        efla_cl.clRetainMemObject(ctx->call);
        *out = ctx->call;
        return EFLA_SUCCESS;
    }
    cl_int err;
    cl_mem call = efla_cl.clCreateBuffer(ctx->context, CL_MEM_READ_ONLY | CL_MEM_COPY_HOST_PTR,
                                         plan->block_bytes, plan->block, &err);
    if (err != CL_SUCCESS) {
        efla_cl_plan_free(ctx, plan);
        return efla_cl_fail(err, "clCreateBuffer (parameters)");
    }
    /* Queued kernels keep the old buffer alive. */
    if (ctx->call) efla_cl.clReleaseMemObject(ctx->call);
    if (ctx->call_block) ctx->params.allocator->free(ctx->params.allocator->user, ctx->call_block);
    ctx->call = call;
    ctx->call_block = plan->block;
    ctx->call_bytes = plan->block_bytes;
    plan->block = NULL;
    efla_cl.clRetainMemObject(call);
    *out = call;
    return EFLA_SUCCESS;
}

efla_status efla_cl_forward_enqueue(efla_backend_context *ctx, const efla_forward_args *args,
                                    cl_command_queue queue, const cl_event *wait,
                                    cl_uint wait_count) {
    const efla_cl_program *program;
    efla_status status = efla_cl_program_get(ctx, args->storage, &program);
    if (status != EFLA_SUCCESS) return status;
    efla_cl_plan plan;
    status = efla_cl_plan_make(ctx, args, program, &plan);
    if (status == EFLA_SUCCESS && plan.scan_count) status = ensure_scratch(ctx, plan.scratch_bytes);
    if (status != EFLA_SUCCESS) {
        efla_cl_plan_free(ctx, &plan);
        return status;
    }
    cl_mem call = NULL;
    status = parameter_buffer(ctx, &plan, &call);
    if (status != EFLA_SUCCESS) return status;
    cl_uint merged_count;
    cl_event *merged = merge_wait(ctx, wait, wait_count, &merged_count);
    if (!merged) {
        efla_cl.clReleaseMemObject(call);
        return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    status = enqueue_planned(ctx, args, &plan, queue, call, merged, merged_count);
    ctx->params.allocator->free(ctx->params.allocator->user, merged);
    efla_cl.clReleaseMemObject(call); /* queued kernels keep it alive */
    return status;
}

efla_status efla_cl_forward_query(efla_backend_context *ctx, const efla_forward_args *args,
                                  efla_forward_plan *plan) {
    int64_t recurrent = 0, chunked = 0;
    for (int64_t n = 0; n < args->sequences; ++n) {
        int64_t b, first, length;
        efla_forward_sequence(args, n, &b, &first, &length);
        if (efla_cl_runs_recurrent(args, length))
            recurrent++;
        else
            chunked++;
    }
    plan->algorithm = chunked == 0     ? EFLA_ALGORITHM_RECURRENT
                      : recurrent == 0 ? EFLA_ALGORITHM_CHUNKED
                                       : EFLA_ALGORITHM_AUTO;
    snprintf(plan->kernel_path, sizeof plan->kernel_path, "%s", efla_cl_path_name(ctx->path));
    return EFLA_SUCCESS;
}
