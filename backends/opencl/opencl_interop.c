/* Interop with the host's OpenCL objects (include/efla/efla_opencl.h). */
#include "backends/opencl/opencl_error.h"
#include "backends/opencl/opencl_internal.h"
#include "core/context.h"
#include "core/error.h"

#include "efla/efla_opencl.h"

static efla_status check_kind(efla_native_kind kind) {
    if (kind != EFLA_NATIVE_OPENCL)
        return efla_error(EFLA_ERROR_BACKEND_MISMATCH,
                          "the OpenCL backend was given a non-OpenCL native object");
    return EFLA_SUCCESS;
}

static efla_status check_opencl_context(efla_context context) {
    if (!context) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "context is NULL");
    if (efla_context_backend(context) != EFLA_BACKEND_OPENCL)
        return efla_error(EFLA_ERROR_BACKEND_MISMATCH, "the context is a %s context, not opencl",
                          efla_backend_name(efla_context_backend(context)));
    return EFLA_SUCCESS;
}

/* ---- public entry points ---- */

efla_status efla_opencl_context_create(const efla_opencl_context_info *native,
                                       const efla_context_create_info *info,
                                       efla_context *out_context) {
    if (!native || native->struct_size < sizeof *native) {
        efla_error_clear();
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "native info is NULL or its struct_size is too small "
                          "(use EFLA_OPENCL_CONTEXT_INFO_INIT)");
    }
    return efla_context_create_native(EFLA_BACKEND_OPENCL, EFLA_NATIVE_OPENCL, native, info,
                                      out_context);
}

efla_status efla_opencl_buffer_wrap(efla_context context, cl_mem memory, uint64_t offset_bytes,
                                    uint64_t size_bytes, efla_buffer *out_buffer) {
    efla_error_clear();
    efla_status status = check_opencl_context(context);
    if (status != EFLA_SUCCESS) return status;
    efla_opencl_buffer_info info = EFLA_OPENCL_BUFFER_INFO_INIT;
    info.memory = memory;
    info.offset_bytes = offset_bytes;
    return efla_buffer_wrap_native(context, EFLA_NATIVE_OPENCL, memory ? &info : NULL, size_bytes,
                                   out_buffer);
}

efla_status efla_opencl_buffer_get(efla_buffer buffer, cl_mem *out_memory,
                                   uint64_t *out_offset_bytes) {
    efla_error_clear();
    if (!buffer || !out_memory || !out_offset_bytes)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "efla_opencl_buffer_get: NULL argument");
    efla_status status = check_opencl_context(buffer->context);
    if (status != EFLA_SUCCESS) return status;
    *out_memory = buffer->impl->memory;
    *out_offset_bytes = buffer->impl->offset;
    return EFLA_SUCCESS;
}

efla_status efla_opencl_forward_record(efla_context context, const efla_opencl_command *command,
                                       const efla_forward_desc *desc) {
    efla_error_clear();
    efla_status status = check_opencl_context(context);
    if (status != EFLA_SUCCESS) return status;
    if (command && command->struct_size < sizeof *command)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "command struct_size is too small (use EFLA_OPENCL_COMMAND_INIT)");
    return efla_forward_record_native(context, EFLA_NATIVE_OPENCL, command, desc);
}

/* ---- backend hooks ---- */

static efla_status queue_belongs(cl_command_queue queue, cl_context context, cl_device_id device) {
    cl_context queue_context = NULL;
    cl_device_id queue_device = NULL;
    cl_int err = efla_cl.clGetCommandQueueInfo(queue, CL_QUEUE_CONTEXT, sizeof queue_context,
                                               &queue_context, NULL);
    if (err == CL_SUCCESS)
        err = efla_cl.clGetCommandQueueInfo(queue, CL_QUEUE_DEVICE, sizeof queue_device,
                                            &queue_device, NULL);
    if (err != CL_SUCCESS) return efla_cl_fail(err, "clGetCommandQueueInfo (host queue)");
    if (queue_context != context || (device && queue_device != device))
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "the command queue belongs to another cl_context or device");
    return EFLA_SUCCESS;
}

efla_status efla_cl_context_create_native(efla_native_kind kind, const void *native_info,
                                          const efla_backend_context_params *params,
                                          efla_backend_context **out) {
    efla_status status = check_kind(kind);
    if (status != EFLA_SUCCESS) return status;
    const efla_opencl_context_info *native = native_info;
    if (!native->context || !native->device || !native->queue)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "the OpenCL context, device and queue are all required");
    status = queue_belongs(native->queue, native->context, native->device);
    if (status != EFLA_SUCCESS) return status;
    cl_platform_id platform = NULL;
    cl_int err = efla_cl.clGetDeviceInfo(native->device, CL_DEVICE_PLATFORM, sizeof platform,
                                         &platform, NULL);
    if (err != CL_SUCCESS) return efla_cl_fail(err, "clGetDeviceInfo (host device)");
    efla_cl_device device;
    status = efla_cl_describe(platform, native->device, &device);
    if (status != EFLA_SUCCESS) return status;
    return efla_cl_context_init(params, &device, native->context, native->queue, true, out);
}

efla_status efla_cl_buffer_wrap_native(efla_backend_context *ctx, efla_native_kind kind,
                                       const void *native_buffer, uint64_t size,
                                       efla_backend_buffer **out) {
    efla_status status = check_kind(kind);
    if (status != EFLA_SUCCESS) return status;
    const efla_opencl_buffer_info *info = native_buffer;
    if (info->offset_bytes % 4)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "the cl_mem offset %llu is not a multiple of 4 bytes",
                          (unsigned long long)info->offset_bytes);
    cl_context owner = NULL;
    size_t mem_size = 0;
    cl_int err =
        efla_cl.clGetMemObjectInfo(info->memory, CL_MEM_CONTEXT, sizeof owner, &owner, NULL);
    if (err == CL_SUCCESS)
        err =
            efla_cl.clGetMemObjectInfo(info->memory, CL_MEM_SIZE, sizeof mem_size, &mem_size, NULL);
    if (err != CL_SUCCESS) return efla_cl_fail(err, "clGetMemObjectInfo (host cl_mem)");
    if (owner != ctx->context)
        return efla_error(EFLA_ERROR_BACKEND_MISMATCH,
                          "the cl_mem belongs to another cl_context than the efla context's");
    if (info->offset_bytes > mem_size || size > mem_size - info->offset_bytes)
        return efla_error(
            EFLA_ERROR_OUT_OF_BOUNDS, "%llu bytes at offset %llu exceed the cl_mem's %zu bytes",
            (unsigned long long)size, (unsigned long long)info->offset_bytes, mem_size);
    return efla_cl_buffer_wrap(ctx, info->memory, info->offset_bytes, out);
}

efla_status efla_cl_forward_record(efla_backend_context *ctx, efla_native_kind kind,
                                   const void *native_cmd, const efla_forward_args *args) {
    efla_status status = check_kind(kind);
    if (status != EFLA_SUCCESS) return status;
    const efla_opencl_command *command = native_cmd;
    cl_command_queue queue = command->queue ? command->queue : ctx->queue;
    if (command->queue && (status = queue_belongs(queue, ctx->context, NULL)) != EFLA_SUCCESS)
        return status;
    if (command->wait_list_count && !command->wait_list)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "wait_list_count is %u but wait_list is NULL", command->wait_list_count);
    status =
        efla_cl_forward_enqueue(ctx, args, queue, command->wait_list, command->wait_list_count);
    if (status != EFLA_SUCCESS) return status;
    if (command->event) {
        /* The tail holds the forward's last commands (a marker when there
         * was nothing to run). */
        cl_int err = efla_cl.clEnqueueMarkerWithWaitList(queue, ctx->tail.count, ctx->tail.list,
                                                         command->event);
        if (err != CL_SUCCESS) return efla_cl_fail(err, "clEnqueueMarkerWithWaitList");
    }
    efla_cl.clFlush(queue);
    return EFLA_SUCCESS;
}
