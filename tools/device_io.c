#include "device_io.h"

#include "cli_util.h"
#include "storage.h"

#include <stdlib.h>

int cli_select_target(const char *backend_text, const char *device_text,
                      efla_context_create_info *info) {
    const char *names[EFLA_BACKEND_COUNT];
    for (int i = 0; i < EFLA_BACKEND_COUNT; ++i)
        names[i] = efla_backend_name((efla_backend)i);
    int backend = EFLA_BACKEND_AUTO;
    if (backend_text &&
        !cli_parse_choice("--backend", backend_text, names, EFLA_BACKEND_COUNT, &backend))
        return CLI_EXIT_USAGE;
    /* An explicit --backend auto means the best device, not $EFLA_BACKEND. */
    if (backend_text && backend == EFLA_BACKEND_AUTO) unsetenv("EFLA_BACKEND");
    info->backend = (efla_backend)backend;
    info->device_index = backend == EFLA_BACKEND_AUTO ? -1 : 0;
    int64_t device;
    if (device_text) {
        if (!cli_parse_int64("--device", device_text, 0, INT32_MAX, &device)) return CLI_EXIT_USAGE;
        info->device_index = (int32_t)device;
    }
    return CLI_EXIT_OK;
}

efla_status create_tensor_buffer(efla_context context, uint64_t count, efla_dtype dtype,
                                 efla_buffer *out) {
    uint64_t bytes = count * efla_dtype_size(dtype);
    return efla_buffer_create(context, bytes ? bytes : 16, out);
}

efla_status upload_f32(efla_context context, const float *data, uint64_t count, efla_dtype dtype,
                       efla_buffer *out) {
    *out = NULL;
    efla_status status = create_tensor_buffer(context, count, dtype, out);
    if (status != EFLA_SUCCESS || count == 0) return status;
    uint64_t bytes = count * efla_dtype_size(dtype);
    void *staging = dtype == EFLA_DTYPE_F32 ? (void *)data : malloc((size_t)bytes);
    if (!staging) return EFLA_ERROR_OUT_OF_HOST_MEMORY;
    if (dtype != EFLA_DTYPE_F32) storage_from_f32(dtype, data, count, staging);
    status = efla_buffer_upload(*out, 0, staging, bytes);
    if (staging != data) free(staging);
    return status;
}

efla_status download_f32(efla_buffer buffer, uint64_t count, efla_dtype dtype, float *out) {
    if (count == 0) return EFLA_SUCCESS;
    uint64_t bytes = count * efla_dtype_size(dtype);
    void *staging = dtype == EFLA_DTYPE_F32 ? (void *)out : malloc((size_t)bytes);
    if (!staging) return EFLA_ERROR_OUT_OF_HOST_MEMORY;
    efla_status status = efla_buffer_download(buffer, 0, staging, bytes);
    if (status == EFLA_SUCCESS && dtype != EFLA_DTYPE_F32)
        storage_to_f32(dtype, staging, count, out);
    if (staging != (void *)out) free(staging);
    return status;
}
