/* Device buffers: owned cl_mem objects, or host cl_mem wrapped at an offset. */
#include "backends/opencl/opencl_error.h"
#include "backends/opencl/opencl_internal.h"
#include "core/error.h"

static efla_status new_buffer(efla_backend_context *ctx, cl_mem memory, uint64_t offset, bool owned,
                              efla_backend_buffer **out) {
    efla_backend_buffer *buf =
        ctx->params.allocator->alloc(ctx->params.allocator->user, sizeof *buf, 64);
    if (!buf) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    buf->memory = memory;
    buf->offset = offset;
    buf->owned = owned;
    *out = buf;
    return EFLA_SUCCESS;
}

efla_status efla_cl_buffer_create(efla_backend_context *ctx, uint64_t size,
                                  efla_backend_buffer **out) {
    if (size > ctx->device.max_allocation)
        return efla_error(EFLA_ERROR_OUT_OF_DEVICE_MEMORY,
                          "a buffer of %llu bytes exceeds the device's largest allocation "
                          "(%llu bytes)",
                          (unsigned long long)size, (unsigned long long)ctx->device.max_allocation);
    cl_int err;
    cl_mem memory =
        efla_cl.clCreateBuffer(ctx->context, CL_MEM_READ_WRITE, (size_t)size, NULL, &err);
    if (err != CL_SUCCESS) return efla_cl_fail(err, "clCreateBuffer");
    efla_status status = new_buffer(ctx, memory, 0, true, out);
    if (status != EFLA_SUCCESS) efla_cl.clReleaseMemObject(memory);
    return status;
}

efla_status efla_cl_buffer_wrap(efla_backend_context *ctx, cl_mem memory, uint64_t offset,
                                efla_backend_buffer **out) {
    return new_buffer(ctx, memory, offset, false, out);
}

void efla_cl_buffer_destroy(efla_backend_context *ctx, efla_backend_buffer *buf) {
    /* Work still queued keeps the cl_mem alive (OpenCL reference counts). */
    if (buf->owned) efla_cl.clReleaseMemObject(buf->memory);
    ctx->params.allocator->free(ctx->params.allocator->user, buf);
}

/* Copies are blocking and ordered after the context's outstanding work. */
efla_status efla_cl_buffer_upload(efla_backend_context *ctx, efla_backend_buffer *buf,
                                  uint64_t offset, const void *src, uint64_t size) {
    cl_int err = efla_cl.clEnqueueWriteBuffer(
        ctx->queue, buf->memory, CL_TRUE, (size_t)(buf->offset + offset), (size_t)size, src,
        ctx->tail.count, ctx->tail.count ? ctx->tail.list : NULL, NULL);
    if (err != CL_SUCCESS) return efla_cl_fail(err, "clEnqueueWriteBuffer");
    return EFLA_SUCCESS;
}

efla_status efla_cl_buffer_download(efla_backend_context *ctx, efla_backend_buffer *buf,
                                    uint64_t offset, void *dst, uint64_t size) {
    cl_int err = efla_cl.clEnqueueReadBuffer(
        ctx->queue, buf->memory, CL_TRUE, (size_t)(buf->offset + offset), (size_t)size, dst,
        ctx->tail.count, ctx->tail.count ? ctx->tail.list : NULL, NULL);
    if (err != CL_SUCCESS) return efla_cl_fail(err, "clEnqueueReadBuffer");
    return EFLA_SUCCESS;
}
