/* The context hooks of the Vulkan backend table (vk_context.c). */
#ifndef EFLA_VK_CONTEXT_H
#define EFLA_VK_CONTEXT_H

#include "backends/vulkan/vk_internal.h"

efla_status efla_vk_context_create(const efla_backend_context_params *params,
                                   efla_backend_context **out);
efla_status efla_vk_context_create_native(efla_native_kind kind, const void *native_info,
                                          const efla_backend_context_params *params,
                                          efla_backend_context **out);
void efla_vk_context_destroy(efla_backend_context *ctx);
efla_status efla_vk_context_device_info(efla_backend_context *ctx, efla_device_info *info);
efla_status efla_vk_synchronize(efla_backend_context *ctx);

/* vk_buffer.c */
efla_status efla_vk_buffer_create(efla_backend_context *ctx, uint64_t size,
                                  efla_backend_buffer **out);
efla_status efla_vk_buffer_wrap_native(efla_backend_context *ctx, efla_native_kind kind,
                                       const void *native_buffer, uint64_t size,
                                       efla_backend_buffer **out);
void efla_vk_buffer_destroy(efla_backend_context *ctx, efla_backend_buffer *buf);
efla_status efla_vk_buffer_upload(efla_backend_context *ctx, efla_backend_buffer *buf,
                                  uint64_t offset, const void *src, uint64_t size);
efla_status efla_vk_buffer_download(efla_backend_context *ctx, efla_backend_buffer *buf,
                                    uint64_t offset, void *dst, uint64_t size);

/* vk_forward.c */
efla_status efla_vk_forward(efla_backend_context *ctx, const efla_forward_args *args);
efla_status efla_vk_forward_query(efla_backend_context *ctx, const efla_forward_args *args,
                                  efla_forward_plan *plan);
efla_status efla_vk_forward_record(efla_backend_context *ctx, efla_native_kind kind,
                                   const void *native_cmd, const efla_forward_args *args);
/* Scratch bytes a recorded forward needs (vk_forward.c). */
efla_status efla_vk_forward_scratch_bytes(efla_backend_context *ctx, const efla_forward_args *args,
                                          uint64_t *out_bytes);

#endif
