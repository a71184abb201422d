/* Choosing a backend/device from the command line, and moving f32 host
 * arrays to and from device buffers in a storage dtype. */
#ifndef EFLA_TOOLS_DEVICE_IO_H
#define EFLA_TOOLS_DEVICE_IO_H

#include <efla/efla.h>

#include <stdint.h>

/* Fills info->backend and info->device_index from --backend and --device
 * (either may be NULL). An explicit backend wins over EFLA_BACKEND; without
 * --device an explicit backend uses its first device and AUTO passes -1.
 * Returns a CLI exit code, printing the problem. */
int cli_select_target(const char *backend_text, const char *device_text,
                      efla_context_create_info *info);

/* A buffer for `count` elements of `dtype`; at least a few bytes even when
 * count is 0, since empty tensors still name a buffer. */
efla_status create_tensor_buffer(efla_context context, uint64_t count, efla_dtype dtype,
                                 efla_buffer *out);
/* Creates a buffer and uploads `data` converted to `dtype`. */
efla_status upload_f32(efla_context context, const float *data, uint64_t count, efla_dtype dtype,
                       efla_buffer *out);
/* Downloads `count` elements of `dtype` and converts them to f32. */
efla_status download_f32(efla_buffer buffer, uint64_t count, efla_dtype dtype, float *out);

#endif
