/*
 * Contexts: by default the device's primary context (the one the CUDA
 * runtime and PyTorch use, so their pointers work here) and a stream of our
 * own; or, through efla_cuda.h, the caller's context and stream. Every hook
 * makes the context current for its duration and restores the caller's.
 */
#include "backends/cuda/cuda_internal.h"

#include "core/context.h"
#include "core/error.h"
#include "efla/efla_cuda.h"

#include <stdio.h>
#include <string.h>

efla_status efla_cuda_enter(efla_backend_context *ctx) {
    CUresult result = efla_cu->CtxPushCurrent(ctx->cu);
    return result == CUDA_SUCCESS ? EFLA_SUCCESS : efla_cuda_fail(result, "cuCtxPushCurrent");
}

void efla_cuda_leave(efla_backend_context *ctx) {
    (void)ctx;
    CUcontext popped;
    efla_cu->CtxPopCurrent(&popped);
}

static efla_backend_context *new_context(const efla_backend_context_params *params) {
    efla_backend_context *ctx = efla_host_alloc(params->allocator, sizeof *ctx);
    if (ctx) {
        memset(ctx, 0, sizeof *ctx);
        ctx->params = *params;
    }
    return ctx;
}

/* Frees what the context holds; the CUDA context must be current. */
static void release_resources(efla_backend_context *ctx) {
    if (ctx->scratch) efla_cu->MemFree(ctx->scratch);
    if (ctx->table) efla_cu->MemFree(ctx->table);
    if (ctx->work_done) efla_cu->EventDestroy(ctx->work_done);
    if (ctx->timer_start) efla_cu->EventDestroy(ctx->timer_start);
    if (ctx->timer_stop) efla_cu->EventDestroy(ctx->timer_stop);
    efla_cuda_modules_unload(ctx);
    if (ctx->own_stream && ctx->stream) efla_cu->StreamDestroy(ctx->stream);
}

static void destroy(efla_backend_context *ctx, bool entered) {
    if (entered) {
        release_resources(ctx);
        efla_cuda_leave(ctx);
    }
    if (ctx->primary) efla_cu->DevicePrimaryCtxRelease(ctx->props.device);
    efla_host_free(ctx->params.allocator, ctx);
}

/* Everything after the CUDA context is known: stream, events, kernels. */
static efla_status finish_create(efla_backend_context *ctx) {
    CUresult result;
    if (!ctx->stream && ctx->own_stream) {
        result = efla_cu->StreamCreate(&ctx->stream, CU_STREAM_NON_BLOCKING);
        if (result != CUDA_SUCCESS) return efla_cuda_fail(result, "cuStreamCreate");
    }
    result = efla_cu->EventCreate(&ctx->work_done, CU_EVENT_DISABLE_TIMING);
    if (result != CUDA_SUCCESS) return efla_cuda_fail(result, "cuEventCreate");
    if (ctx->params.flags & EFLA_CONTEXT_PROFILING) {
        result = efla_cu->EventCreate(&ctx->timer_start, CU_EVENT_DEFAULT);
        if (result == CUDA_SUCCESS)
            result = efla_cu->EventCreate(&ctx->timer_stop, CU_EVENT_DEFAULT);
        if (result != CUDA_SUCCESS) return efla_cuda_fail(result, "cuEventCreate");
    }
    return efla_cuda_modules_load(ctx);
}

static efla_status create_common(efla_backend_context *ctx) {
    efla_status status = efla_cuda_enter(ctx);
    if (status != EFLA_SUCCESS) {
        destroy(ctx, false);
        return status;
    }
    status = finish_create(ctx);
    if (status != EFLA_SUCCESS) {
        destroy(ctx, true);
        return status;
    }
    efla_cuda_leave(ctx);
    return EFLA_SUCCESS;
}

efla_status efla_cuda_ctx_create(const efla_backend_context_params *params,
                                 efla_backend_context **out) {
    efla_cuda_path path;
    efla_status status = efla_cuda_path_from_env(&path);
    if (status != EFLA_SUCCESS) return status;
    CUdevice device;
    CUresult result = efla_cu->DeviceGet(&device, (int)params->device_index);
    if (result != CUDA_SUCCESS) return efla_cuda_fail(result, "cuDeviceGet");
    efla_backend_context *ctx = new_context(params);
    if (!ctx) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    ctx->path = path;
    ctx->own_stream = true;
    status = efla_cuda_device_props_get(device, (int)params->device_index, &ctx->props);
    if (status != EFLA_SUCCESS) {
        destroy(ctx, false);
        return status;
    }
    result = efla_cu->DevicePrimaryCtxRetain(&ctx->cu, device);
    if (result != CUDA_SUCCESS) {
        destroy(ctx, false);
        return efla_cuda_fail(result, "cuDevicePrimaryCtxRetain");
    }
    ctx->primary = true;
    status = create_common(ctx);
    if (status == EFLA_SUCCESS) *out = ctx;
    return status;
}

/* The device ordinal of `device` (CUdevice values are ordinals today, but
 * the API does not promise it). */
static int ordinal_of(CUdevice device) {
    int count = 0;
    if (efla_cu->DeviceGetCount(&count) != CUDA_SUCCESS) return 0;
    for (int i = 0; i < count; ++i) {
        CUdevice candidate;
        if (efla_cu->DeviceGet(&candidate, i) == CUDA_SUCCESS && candidate == device) return i;
    }
    return 0;
}

efla_status efla_cuda_ctx_create_native(efla_native_kind kind, const void *native_info,
                                        const efla_backend_context_params *params,
                                        efla_backend_context **out) {
    if (kind != EFLA_NATIVE_CUDA)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "not a CUDA interop description");
    const efla_cuda_context_info *info = native_info;
    if (info->struct_size < sizeof *info)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "efla_cuda_context_info struct_size %u is smaller than %zu "
                          "(use EFLA_CUDA_CONTEXT_INFO_INIT)",
                          info->struct_size, sizeof *info);
    if (!info->context)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "efla_cuda_context_info.context is NULL");
    efla_cuda_path path;
    efla_status status = efla_cuda_path_from_env(&path);
    if (status != EFLA_SUCCESS) return status;
    efla_backend_context *ctx = new_context(params);
    if (!ctx) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    ctx->path = path;
    ctx->cu = (CUcontext)info->context;
    ctx->stream = (CUstream)info->stream; /* NULL: the context's legacy default stream */
    ctx->own_stream = false;
    status = efla_cuda_enter(ctx);
    if (status != EFLA_SUCCESS) {
        destroy(ctx, false);
        return status;
    }
    CUdevice device;
    CUresult result = efla_cu->CtxGetDevice(&device);
    status = result == CUDA_SUCCESS
                 ? efla_cuda_device_props_get(device, ordinal_of(device), &ctx->props)
                 : efla_cuda_fail(result, "cuCtxGetDevice");
    efla_cuda_leave(ctx);
    if (status != EFLA_SUCCESS) {
        destroy(ctx, false);
        return status;
    }
    ctx->params.device_index = (uint32_t)ctx->props.ordinal;
    status = create_common(ctx);
    if (status == EFLA_SUCCESS) *out = ctx;
    return status;
}

void efla_cuda_ctx_destroy(efla_backend_context *ctx) {
    if (efla_cuda_enter(ctx) != EFLA_SUCCESS) {
        destroy(ctx, false);
        return;
    }
    /* Wait for our work; a caller's stream is the caller's to drain, but
     * the scratch it may still read is freed here, so wait for it too. */
    efla_cu->StreamSynchronize(ctx->stream);
    if (ctx->work_recorded) efla_cu->EventSynchronize(ctx->work_done);
    destroy(ctx, true);
}

efla_status efla_cuda_ctx_device_info(efla_backend_context *ctx, efla_device_info *info) {
    info->index = (uint32_t)ctx->props.ordinal;
    efla_status status = efla_cuda_fill_info(&ctx->props, info);
    if (status == EFLA_SUCCESS)
        snprintf(info->kernel_path, sizeof info->kernel_path, "%s", efla_cuda_path_name(ctx->path));
    return status;
}

efla_status efla_cuda_synchronize(efla_backend_context *ctx) {
    efla_status status = efla_cuda_enter(ctx);
    if (status != EFLA_SUCCESS) return status;
    CUresult result = efla_cu->StreamSynchronize(ctx->stream);
    if (result == CUDA_SUCCESS && ctx->work_recorded)
        result = efla_cu->EventSynchronize(ctx->work_done);
    efla_cuda_leave(ctx);
    return result == CUDA_SUCCESS ? EFLA_SUCCESS
                                  : efla_cuda_fail(result, "synchronizing the stream");
}

efla_status efla_cuda_last_forward_ms(efla_backend_context *ctx, double *out_ms) {
    if (!(ctx->params.flags & EFLA_CONTEXT_PROFILING))
        return efla_error(EFLA_ERROR_UNSUPPORTED,
                          "the context was created without EFLA_CONTEXT_PROFILING");
    if (!ctx->timed) return efla_error(EFLA_ERROR_UNSUPPORTED, "no forward has run yet");
    efla_status status = efla_cuda_enter(ctx);
    if (status != EFLA_SUCCESS) return status;
    float ms = 0.0f;
    CUresult result = efla_cu->EventSynchronize(ctx->timer_stop);
    if (result == CUDA_SUCCESS)
        result = efla_cu->EventElapsedTime(&ms, ctx->timer_start, ctx->timer_stop);
    efla_cuda_leave(ctx);
    if (result != CUDA_SUCCESS) return efla_cuda_fail(result, "timing the forward");
    *out_ms = ms;
    return EFLA_SUCCESS;
}
