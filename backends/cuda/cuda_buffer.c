/* Device buffers: cuMemAlloc'd, or a caller's device memory wrapped. */
#include "backends/cuda/cuda_internal.h"
#include "backends/cuda/cuda_native.h"

#include "core/context.h"
#include "core/error.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

static efla_status new_buffer(efla_backend_context *ctx, CUdeviceptr address, uint64_t size,
                              bool owned, efla_backend_buffer **out) {
    efla_backend_buffer *buf = efla_host_alloc(ctx->params.allocator, sizeof *buf);
    if (!buf) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    buf->address = address;
    buf->size = size;
    buf->owned = owned;
    *out = buf;
    return EFLA_SUCCESS;
}

uint64_t efla_cuda_backend_buffer_address(const efla_backend_buffer *buffer) {
    return (uint64_t)buffer->address;
}

efla_status efla_cuda_buffer_create(efla_backend_context *ctx, uint64_t size,
                                    efla_backend_buffer **out) {
    CUdeviceptr address = 0;
    if (size > 0) { /* cuMemAlloc rejects 0 bytes; an empty buffer needs no memory */
        if (size > SIZE_MAX)
            return efla_error(EFLA_ERROR_OUT_OF_DEVICE_MEMORY, "buffer of %llu bytes is too large",
                              (unsigned long long)size);
        efla_status status = efla_cuda_enter(ctx);
        if (status != EFLA_SUCCESS) return status;
        CUresult result = efla_cu->MemAlloc(&address, (size_t)size);
        efla_cuda_leave(ctx);
        if (result != CUDA_SUCCESS) {
            char what[96];
            snprintf(what, sizeof what, "cuMemAlloc(%llu bytes)", (unsigned long long)size);
            return efla_cuda_fail(result, what);
        }
    }
    efla_status status = new_buffer(ctx, address, size, true, out);
    if (status != EFLA_SUCCESS && address) {
        if (efla_cuda_enter(ctx) == EFLA_SUCCESS) {
            efla_cu->MemFree(address);
            efla_cuda_leave(ctx);
        }
    }
    return status;
}

efla_status efla_cuda_buffer_wrap_native(efla_backend_context *ctx, efla_native_kind kind,
                                         const void *native_buffer, uint64_t size,
                                         efla_backend_buffer **out) {
    if (kind != EFLA_NATIVE_CUDA)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "not a CUDA device address");
    const efla_cuda_native_buffer *native = native_buffer;
    return new_buffer(ctx, (CUdeviceptr)native->address, size, false, out);
}

void efla_cuda_buffer_destroy(efla_backend_context *ctx, efla_backend_buffer *buf) {
    if (buf->owned && buf->address && efla_cuda_enter(ctx) == EFLA_SUCCESS) {
        /* cuMemFree waits for work using the memory to finish. */
        efla_cu->MemFree(buf->address);
        efla_cuda_leave(ctx);
    }
    efla_host_free(ctx->params.allocator, buf);
}

/* Blocking copies wait for the context's work first (its own stream, and
 * the last forward recorded on any stream). */
static CUresult drain(efla_backend_context *ctx) {
    CUresult result = efla_cu->StreamSynchronize(ctx->stream);
    if (result == CUDA_SUCCESS && ctx->work_recorded)
        result = efla_cu->EventSynchronize(ctx->work_done);
    return result;
}

efla_status efla_cuda_buffer_upload(efla_backend_context *ctx, efla_backend_buffer *buf,
                                    uint64_t offset, const void *src, uint64_t size) {
    if (size == 0) return EFLA_SUCCESS;
    efla_status status = efla_cuda_enter(ctx);
    if (status != EFLA_SUCCESS) return status;
    /* Not cuMemcpyHtoD: from pageable memory it returns once the bytes are
     * staged, and its DMA, on the legacy stream, is not ordered with our
     * non-blocking stream: a forward could run first and have its outputs
     * overwritten when the DMA lands (seen on the H200 as NaN final states
     * of the last, quickest sequences). Copy on our stream and wait. */
    CUresult result = drain(ctx);
    if (result == CUDA_SUCCESS)
        result = efla_cu->MemcpyHtoDAsync(buf->address + offset, src, (size_t)size, ctx->stream);
    if (result == CUDA_SUCCESS) result = efla_cu->StreamSynchronize(ctx->stream);
    efla_cuda_leave(ctx);
    return result == CUDA_SUCCESS ? EFLA_SUCCESS
                                  : efla_cuda_fail(result, "uploading to the buffer");
}

efla_status efla_cuda_buffer_download(efla_backend_context *ctx, efla_backend_buffer *buf,
                                      uint64_t offset, void *dst, uint64_t size) {
    if (size == 0) return EFLA_SUCCESS;
    efla_status status = efla_cuda_enter(ctx);
    if (status != EFLA_SUCCESS) return status;
    CUresult result = drain(ctx);
    if (result == CUDA_SUCCESS)
        result = efla_cu->MemcpyDtoH(dst, buf->address + offset, (size_t)size);
    efla_cuda_leave(ctx);
    return result == CUDA_SUCCESS ? EFLA_SUCCESS
                                  : efla_cuda_fail(result, "downloading from the buffer");
}
