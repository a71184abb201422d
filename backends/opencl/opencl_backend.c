/* The OpenCL backend's table: probe, devices, contexts, synchronisation. */
#include "backends/opencl/opencl_error.h"
#include "backends/opencl/opencl_internal.h"
#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static efla_status cl_probe(void) {
    const efla_cl_device *devices;
    uint32_t count;
    efla_status status = efla_cl_devices(&devices, &count);
    if (status != EFLA_SUCCESS) return status;
    if (count == 0)
        return efla_error(EFLA_ERROR_BACKEND_UNAVAILABLE,
                          "no OpenCL device found (no ICD installed in /etc/OpenCL/vendors?)");
    return EFLA_SUCCESS;
}

static efla_status cl_device_count(uint32_t *out_count) {
    const efla_cl_device *devices;
    efla_status status = efla_cl_devices(&devices, out_count);
    if (status != EFLA_SUCCESS) *out_count = 0;
    return status;
}

static efla_status cl_backend_device_info(uint32_t index, efla_device_info *info) {
    const efla_cl_device *devices;
    uint32_t count;
    efla_status status = efla_cl_devices(&devices, &count);
    if (status != EFLA_SUCCESS) return status;
    if (index >= count)
        return efla_error(EFLA_ERROR_DEVICE_NOT_FOUND, "opencl has %u device(s); no device %u",
                          count, index);
    uint32_t struct_size = info->struct_size;
    *info = devices[index].info;
    info->struct_size = struct_size;
    return EFLA_SUCCESS;
}

void efla_cl_events_clear(efla_cl_events *events) {
    for (cl_uint i = 0; i < events->count; ++i)
        efla_cl.clReleaseEvent(events->list[i]);
    events->count = 0;
}

void efla_cl_events_set(efla_cl_events *events, const cl_event *list, cl_uint count) {
    efla_cl_events_clear(events);
    for (cl_uint i = 0; i < count && i < EFLA_CL_MAX_EVENTS; ++i)
        events->list[i] = list[i];
    events->count = count;
}

efla_status efla_cl_context_init(const efla_backend_context_params *params,
                                 const efla_cl_device *device, cl_context context,
                                 cl_command_queue queue, bool native, efla_backend_context **out) {
    efla_cl_path path;
    bool forced;
    efla_status status = efla_cl_path_choose(device, &path, &forced);
    if (status != EFLA_SUCCESS) return status;
    cl_command_queue_properties properties = 0;
    cl_int err = efla_cl.clGetCommandQueueInfo(queue, CL_QUEUE_PROPERTIES, sizeof properties,
                                               &properties, NULL);
    if (err != CL_SUCCESS) return efla_cl_fail(err, "clGetCommandQueueInfo");
    efla_backend_context *ctx = params->allocator->alloc(params->allocator->user, sizeof *ctx, 64);
    if (!ctx) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    memset(ctx, 0, sizeof *ctx);
    ctx->params = *params;
    ctx->device = *device;
    ctx->context = context;
    ctx->queue = queue;
    efla_cl.clRetainContext(context);
    efla_cl.clRetainCommandQueue(queue);
    ctx->out_of_order = (properties & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) != 0;
    ctx->profiling = (properties & CL_QUEUE_PROFILING_ENABLE) != 0;
    ctx->native = native;
    ctx->path = path;
    ctx->path_forced = forced;
    ctx->tiles = efla_cl_tiles_for(device);
    snprintf(ctx->device.info.kernel_path, sizeof ctx->device.info.kernel_path, "%s",
             efla_cl_path_name(path));
    *out = ctx;
    return EFLA_SUCCESS;
}

static cl_command_queue_properties queue_properties(const efla_cl_device *device, uint32_t flags) {
    cl_command_queue_properties properties = 0;
    const char *in_order = getenv("EFLA_OPENCL_IN_ORDER");
    if ((device->queue_properties & CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE) &&
        !(in_order && strcmp(in_order, "1") == 0))
        properties |= CL_QUEUE_OUT_OF_ORDER_EXEC_MODE_ENABLE;
    if (flags & EFLA_CONTEXT_PROFILING) properties |= CL_QUEUE_PROFILING_ENABLE;
    return properties;
}

static efla_status cl_context_create(const efla_backend_context_params *params,
                                     efla_backend_context **out) {
    const efla_cl_device *devices;
    uint32_t count;
    efla_status status = efla_cl_devices(&devices, &count);
    if (status != EFLA_SUCCESS) return status;
    if (params->device_index >= count)
        return efla_error(EFLA_ERROR_DEVICE_NOT_FOUND, "opencl has %u device(s); no device %u",
                          count, params->device_index);
    const efla_cl_device *device = &devices[params->device_index];
    efla_cl_path path;
    bool forced;
    status = efla_cl_path_choose(device, &path, &forced); /* fail before creating anything */
    if (status != EFLA_SUCCESS) return status;
    cl_context_properties properties[] = {CL_CONTEXT_PLATFORM,
                                          (cl_context_properties)device->platform, 0};
    cl_int err;
    cl_context context = efla_cl.clCreateContext(properties, 1, &device->device, NULL, NULL, &err);
    if (err != CL_SUCCESS) return efla_cl_fail(err, "clCreateContext");
    cl_command_queue queue = efla_cl.clCreateCommandQueue(
        context, device->device, queue_properties(device, params->flags), &err);
    if (err != CL_SUCCESS) {
        efla_cl.clReleaseContext(context);
        return efla_cl_fail(err, "clCreateCommandQueue");
    }
    status = efla_cl_context_init(params, device, context, queue, false, out);
    efla_cl.clReleaseCommandQueue(queue); /* the context holds its own references */
    efla_cl.clReleaseContext(context);
    return status;
}

void efla_cl_context_destroy(efla_backend_context *ctx) {
    efla_cl.clFinish(ctx->queue);
    efla_cl_events_clear(&ctx->tail);
    efla_cl_events_clear(&ctx->timed);
    for (size_t i = 0; i < sizeof ctx->programs / sizeof ctx->programs[0]; ++i)
        efla_cl_program_release(&ctx->programs[i]);
    if (ctx->scratch) efla_cl.clReleaseMemObject(ctx->scratch);
    if (ctx->call) efla_cl.clReleaseMemObject(ctx->call);
    if (ctx->call_block) ctx->params.allocator->free(ctx->params.allocator->user, ctx->call_block);
    efla_cl.clReleaseCommandQueue(ctx->queue);
    efla_cl.clReleaseContext(ctx->context);
    ctx->params.allocator->free(ctx->params.allocator->user, ctx);
}

static efla_status cl_context_device_info(efla_backend_context *ctx, efla_device_info *info) {
    uint32_t struct_size = info->struct_size;
    *info = ctx->device.info;
    info->struct_size = struct_size;
    return EFLA_SUCCESS;
}

/* Device errors of finished commands show as negative execution states. */
static efla_status check_events(const efla_cl_events *events) {
    for (cl_uint i = 0; i < events->count; ++i) {
        cl_int state = CL_COMPLETE;
        efla_cl.clGetEventInfo(events->list[i], CL_EVENT_COMMAND_EXECUTION_STATUS, sizeof state,
                               &state, NULL);
        if (state < 0) return efla_cl_fail(state, "an efla OpenCL command");
    }
    return EFLA_SUCCESS;
}

static efla_status cl_synchronize(efla_backend_context *ctx) {
    cl_int err = efla_cl.clFinish(ctx->queue);
    if (err != CL_SUCCESS) return efla_cl_fail(err, "clFinish");
    /* The tail may hold events of a host queue (forward_record). */
    if (ctx->tail.count) {
        err = efla_cl.clWaitForEvents(ctx->tail.count, ctx->tail.list);
        if (err != CL_SUCCESS && err != CL_EXEC_STATUS_ERROR_FOR_EVENTS_IN_WAIT_LIST)
            return efla_cl_fail(err, "clWaitForEvents");
    }
    efla_status status = check_events(&ctx->tail);
    efla_cl_events_clear(&ctx->tail);
    return status;
}

/* Start and end of each kernel of the last timed forward (ns). */
static efla_status timed_spans(efla_backend_context *ctx, cl_ulong *start, cl_ulong *end) {
    if (!ctx->profiling)
        return efla_error(EFLA_ERROR_UNSUPPORTED,
                          "forward timing needs a context created with EFLA_CONTEXT_PROFILING "
                          "(or a host queue with CL_QUEUE_PROFILING_ENABLE)");
    if (ctx->timed.count == 0) return EFLA_SUCCESS;
    cl_int err = efla_cl.clWaitForEvents(ctx->timed.count, ctx->timed.list);
    if (err != CL_SUCCESS) return efla_cl_fail(err, "clWaitForEvents");
    for (cl_uint i = 0; i < ctx->timed.count && err == CL_SUCCESS; ++i) {
        err = efla_cl.clGetEventProfilingInfo(ctx->timed.list[i], CL_PROFILING_COMMAND_START,
                                              sizeof start[i], &start[i], NULL);
        if (err == CL_SUCCESS)
            err = efla_cl.clGetEventProfilingInfo(ctx->timed.list[i], CL_PROFILING_COMMAND_END,
                                                  sizeof end[i], &end[i], NULL);
    }
    return err == CL_SUCCESS ? EFLA_SUCCESS : efla_cl_fail(err, "clGetEventProfilingInfo");
}

static efla_status cl_last_forward_ms(efla_backend_context *ctx, double *out_ms) {
    cl_ulong start[EFLA_CL_MAX_EVENTS], end[EFLA_CL_MAX_EVENTS];
    efla_status status = timed_spans(ctx, start, end);
    if (status != EFLA_SUCCESS) return status;
    cl_ulong first = UINT64_MAX, last = 0;
    for (cl_uint i = 0; i < ctx->timed.count; ++i) {
        if (start[i] < first) first = start[i];
        if (end[i] > last) last = end[i];
    }
    *out_ms = last > first ? (double)(last - first) * 1e-6 : 0.0;
    return EFLA_SUCCESS;
}

/* One stage per kernel launch, in enqueue order. */
static efla_status cl_last_forward_stages(efla_backend_context *ctx, efla_stage_time *stages,
                                          uint32_t capacity, uint32_t *out_count) {
    cl_ulong start[EFLA_CL_MAX_EVENTS], end[EFLA_CL_MAX_EVENTS];
    efla_status status = timed_spans(ctx, start, end);
    if (status != EFLA_SUCCESS) return status;
    for (cl_uint i = 0; i < ctx->timed.count && i < capacity; ++i) {
        stages[i] = (efla_stage_time){.dispatches = 1};
        snprintf(stages[i].name, sizeof stages[i].name, "%s", ctx->timed_names[i]);
        stages[i].ms = end[i] > start[i] ? (double)(end[i] - start[i]) * 1e-6 : 0.0;
    }
    *out_count = ctx->timed.count;
    return EFLA_SUCCESS;
}

static efla_status cl_forward(efla_backend_context *ctx, const efla_forward_args *args) {
    efla_status status = efla_cl_forward_enqueue(ctx, args, ctx->queue, NULL, 0);
    if (status != EFLA_SUCCESS) return status;
    efla_cl.clFlush(ctx->queue);
    return EFLA_SUCCESS;
}

const efla_backend_ops efla_opencl_backend_ops = {
    .id = EFLA_BACKEND_OPENCL,
    .name = "opencl",
    .probe = cl_probe,
    .device_count = cl_device_count,
    .device_info = cl_backend_device_info,
    .context_create = cl_context_create,
    .context_create_native = efla_cl_context_create_native,
    .context_destroy = efla_cl_context_destroy,
    .context_device_info = cl_context_device_info,
    .synchronize = cl_synchronize,
    .last_forward_ms = cl_last_forward_ms,
    .last_forward_stages = cl_last_forward_stages,
    .buffer_create = efla_cl_buffer_create,
    .buffer_wrap_native = efla_cl_buffer_wrap_native,
    .buffer_destroy = efla_cl_buffer_destroy,
    .buffer_upload = efla_cl_buffer_upload,
    .buffer_download = efla_cl_buffer_download,
    .forward = cl_forward,
    .forward_query = efla_cl_forward_query,
    .forward_record = efla_cl_forward_record,
};
