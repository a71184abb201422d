/* The CUDA backend's table (core/backend.h). */
#include "backends/cuda/cuda_internal.h"

const efla_backend_ops efla_cuda_backend_ops = {
    .id = EFLA_BACKEND_CUDA,
    .name = "cuda",
    .probe = efla_cuda_probe,
    .device_count = efla_cuda_device_count,
    .device_info = efla_cuda_device_info,
    .context_create = efla_cuda_ctx_create,
    .context_create_native = efla_cuda_ctx_create_native,
    .context_destroy = efla_cuda_ctx_destroy,
    .context_device_info = efla_cuda_ctx_device_info,
    .synchronize = efla_cuda_synchronize,
    .last_forward_ms = efla_cuda_last_forward_ms,
    .buffer_create = efla_cuda_buffer_create,
    .buffer_wrap_native = efla_cuda_buffer_wrap_native,
    .buffer_destroy = efla_cuda_buffer_destroy,
    .buffer_upload = efla_cuda_buffer_upload,
    .buffer_download = efla_cuda_buffer_download,
    .forward = efla_cuda_forward,
    .forward_query = efla_cuda_forward_query,
    .forward_record = efla_cuda_record,
};
