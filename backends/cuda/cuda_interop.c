/*
 * The functions of include/efla/efla_cuda.h. They need no CUDA header, so
 * they exist whenever this folder is configured, even when the backend was
 * not built (they then report the backend unavailable).
 */
#include "efla/efla_cuda.h"

#include "backends/cuda/cuda_native.h"
#include "core/context.h"
#include "core/error.h"

#ifdef EFLA_HAVE_CUDA
uint64_t efla_cuda_backend_buffer_address(const efla_backend_buffer *buffer);
#endif

static efla_status check_cuda_context(efla_context context) {
    if (!context) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "context is NULL");
    if (context->ops->id != EFLA_BACKEND_CUDA)
        return efla_error(EFLA_ERROR_BACKEND_MISMATCH, "the context is a %s context, not CUDA",
                          context->ops->name);
    return EFLA_SUCCESS;
}

efla_status efla_cuda_context_create(const efla_cuda_context_info *cuda,
                                     const efla_context_create_info *info,
                                     efla_context *out_context) {
    return efla_context_create_native(EFLA_BACKEND_CUDA, EFLA_NATIVE_CUDA, cuda, info, out_context);
}

efla_status efla_cuda_buffer_wrap(efla_context context, uint64_t device_address,
                                  uint64_t size_bytes, efla_buffer *out_buffer) {
    efla_error_clear();
    efla_status status = check_cuda_context(context);
    if (status != EFLA_SUCCESS) return status;
    if (!device_address && size_bytes)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "device address is 0");
    efla_cuda_native_buffer native = {device_address};
    return efla_buffer_wrap_native(context, EFLA_NATIVE_CUDA, &native, size_bytes, out_buffer);
}

efla_status efla_cuda_buffer_address(efla_buffer buffer, uint64_t *out_device_address) {
    efla_error_clear();
    if (!buffer || !out_device_address)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "buffer or out_device_address is NULL");
    efla_status status = check_cuda_context(buffer->context);
    if (status != EFLA_SUCCESS) return status;
#ifdef EFLA_HAVE_CUDA
    *out_device_address = efla_cuda_backend_buffer_address(buffer->impl);
    return EFLA_SUCCESS;
#else
    return efla_error(EFLA_ERROR_BACKEND_UNAVAILABLE, "cuda backend not compiled in");
#endif
}

efla_status efla_cuda_forward_record(efla_context context, struct CUstream_st *stream,
                                     const efla_forward_desc *desc) {
    efla_error_clear();
    efla_status status = check_cuda_context(context);
    if (status != EFLA_SUCCESS) return status;
    efla_cuda_native_stream native = {stream};
    return efla_forward_record_native(context, EFLA_NATIVE_CUDA, &native, desc);
}
