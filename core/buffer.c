#include "core/context.h"

#include "core/error.h"

#include <string.h>

static efla_status wrap_backend_buffer(efla_context context, efla_backend_buffer *impl,
                                       uint64_t size, efla_buffer *out_buffer) {
    efla_buffer buffer = efla_host_alloc(&context->allocator, sizeof *buffer);
    if (!buffer) {
        context->ops->buffer_destroy(context->impl, impl);
        return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    }
    buffer->context = context;
    buffer->impl = impl;
    buffer->size = size;
    context->live_buffers++;
    *out_buffer = buffer;
    return EFLA_SUCCESS;
}

static efla_status check_new_buffer(efla_context context, uint64_t size, const void *out) {
    if (!context) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "context is NULL");
    if (!out) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "out_buffer is NULL");
    if (size == 0) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "buffer size is 0");
    return EFLA_SUCCESS;
}

efla_status efla_buffer_create(efla_context context, uint64_t size_bytes, efla_buffer *out_buffer) {
    efla_error_clear();
    efla_status status = check_new_buffer(context, size_bytes, out_buffer);
    if (status != EFLA_SUCCESS) return status;
    efla_backend_buffer *impl = NULL;
    status = context->ops->buffer_create(context->impl, size_bytes, &impl);
    if (status != EFLA_SUCCESS) return status;
    return wrap_backend_buffer(context, impl, size_bytes, out_buffer);
}

efla_status efla_buffer_wrap_host(efla_context context, void *memory, uint64_t size_bytes,
                                  efla_buffer *out_buffer) {
    efla_error_clear();
    efla_status status = check_new_buffer(context, size_bytes, out_buffer);
    if (status != EFLA_SUCCESS) return status;
    if (!memory) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "host memory is NULL");
    if (!context->ops->buffer_wrap_host)
        return efla_error(EFLA_ERROR_UNSUPPORTED, "%s backend cannot wrap host memory",
                          context->ops->name);
    efla_backend_buffer *impl = NULL;
    status = context->ops->buffer_wrap_host(context->impl, memory, size_bytes, &impl);
    if (status != EFLA_SUCCESS) return status;
    return wrap_backend_buffer(context, impl, size_bytes, out_buffer);
}

efla_status efla_buffer_wrap_native(efla_context context, efla_native_kind kind,
                                    const void *native_buffer, uint64_t size_bytes,
                                    efla_buffer *out_buffer) {
    efla_error_clear();
    efla_status status = check_new_buffer(context, size_bytes, out_buffer);
    if (status != EFLA_SUCCESS) return status;
    if (!native_buffer) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "native buffer is NULL");
    if (!context->ops->buffer_wrap_native)
        return efla_error(EFLA_ERROR_UNSUPPORTED, "%s backend cannot wrap native buffers",
                          context->ops->name);
    efla_backend_buffer *impl = NULL;
    status = context->ops->buffer_wrap_native(context->impl, kind, native_buffer, size_bytes, &impl);
    if (status != EFLA_SUCCESS) return status;
    return wrap_backend_buffer(context, impl, size_bytes, out_buffer);
}

void efla_buffer_destroy(efla_buffer buffer) {
    if (!buffer) return;
    efla_context context = buffer->context;
    context->ops->buffer_destroy(context->impl, buffer->impl);
    context->live_buffers--;
    efla_host_free(&context->allocator, buffer);
}

uint64_t efla_buffer_size(efla_buffer buffer) { return buffer ? buffer->size : 0; }

static efla_status check_copy(efla_buffer buffer, uint64_t offset, const void *host,
                              uint64_t size, const char *what) {
    if (!buffer) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "%s: buffer is NULL", what);
    if (!host && size) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "%s: host pointer is NULL", what);
    if (offset > buffer->size || size > buffer->size - offset)
        return efla_error(EFLA_ERROR_OUT_OF_BOUNDS,
                          "%s of %llu bytes at offset %llu exceeds the buffer's %llu bytes", what,
                          (unsigned long long)size, (unsigned long long)offset,
                          (unsigned long long)buffer->size);
    return EFLA_SUCCESS;
}

efla_status efla_buffer_upload(efla_buffer buffer, uint64_t offset_bytes, const void *source,
                               uint64_t size_bytes) {
    efla_error_clear();
    efla_status status = check_copy(buffer, offset_bytes, source, size_bytes, "upload");
    if (status != EFLA_SUCCESS || size_bytes == 0) return status;
    efla_context context = buffer->context;
    return context->ops->buffer_upload(context->impl, buffer->impl, offset_bytes, source, size_bytes);
}

efla_status efla_buffer_download(efla_buffer buffer, uint64_t offset_bytes, void *destination,
                                 uint64_t size_bytes) {
    efla_error_clear();
    efla_status status = check_copy(buffer, offset_bytes, destination, size_bytes, "download");
    if (status != EFLA_SUCCESS || size_bytes == 0) return status;
    efla_context context = buffer->context;
    return context->ops->buffer_download(context->impl, buffer->impl, offset_bytes, destination,
                                         size_bytes);
}
