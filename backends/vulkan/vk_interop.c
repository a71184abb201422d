/* The public entry points of include/efla/efla_vulkan.h. */
#include "efla/efla_vulkan.h"

#include "backends/vulkan/vk_context.h"
#include "backends/vulkan/vk_loader.h"
#include "core/context.h"
#include "core/error.h"
#include "core/validate.h"

/* Nothing is required: push descriptors are used when the host enabled them. */
static const char *const required_extensions[1] = {NULL};

efla_status efla_vulkan_required_device_extensions(uint32_t *out_count,
                                                   const char *const **out_names) {
    efla_error_clear();
    if (!out_count || !out_names)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "out_count or out_names is NULL");
    *out_count = 0;
    *out_names = required_extensions;
    return EFLA_SUCCESS;
}

efla_status efla_vulkan_context_create(const efla_vulkan_device_info *vulkan,
                                       const efla_context_create_info *info,
                                       efla_context *out_context) {
    return efla_context_create_native(EFLA_BACKEND_VULKAN, EFLA_NATIVE_VULKAN, vulkan, info,
                                      out_context);
}

static efla_status check_vulkan_context(efla_context context) {
    if (!context) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "context is NULL");
    if (context->ops->id != EFLA_BACKEND_VULKAN)
        return efla_error(EFLA_ERROR_BACKEND_MISMATCH,
                          "the context uses the %s backend, not vulkan", context->ops->name);
    return EFLA_SUCCESS;
}

efla_status efla_vulkan_buffer_wrap(efla_context context, VkBuffer buffer, VkDeviceSize offset,
                                    VkDeviceSize size, efla_buffer *out_buffer) {
    efla_error_clear();
    efla_status status = check_vulkan_context(context);
    if (status != EFLA_SUCCESS) return status;
    efla_vk_native_buffer native = {buffer, offset};
    return efla_buffer_wrap_native(context, EFLA_NATIVE_VULKAN, &native, size, out_buffer);
}

efla_status efla_vulkan_forward_scratch_size(efla_context context, const efla_forward_desc *desc,
                                             uint64_t *out_bytes) {
    efla_error_clear();
    efla_status status = check_vulkan_context(context);
    if (status != EFLA_SUCCESS) return status;
    if (!out_bytes) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "out_bytes is NULL");
    efla_forward_args args;
    int64_t *seqlens;
    status = efla_forward_validate(context, desc, &args, &seqlens);
    if (status != EFLA_SUCCESS) return status;
    status = efla_vk_forward_scratch_bytes(context->impl, &args, out_bytes);
    efla_forward_args_release(context, seqlens);
    return status;
}

efla_status efla_vulkan_forward_record(efla_context context, const efla_vulkan_record_info *record,
                                       const efla_forward_desc *desc) {
    efla_error_clear();
    efla_status status = check_vulkan_context(context);
    if (status != EFLA_SUCCESS) return status;
    return efla_forward_record_native(context, EFLA_NATIVE_VULKAN, record, desc);
}

efla_status efla_vulkan_recording_mark(efla_context context, uint64_t *out_mark) {
    efla_error_clear();
    efla_status status = check_vulkan_context(context);
    if (status != EFLA_SUCCESS) return status;
    if (!out_mark) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "out_mark is NULL");
    *out_mark = context->impl->recordings;
    return EFLA_SUCCESS;
}

efla_status efla_vulkan_release_recordings(efla_context context, uint64_t mark) {
    efla_error_clear();
    efla_status status = check_vulkan_context(context);
    if (status != EFLA_SUCCESS) return status;
    return efla_vk_release_recordings(context->impl, mark);
}

static uint32_t feature_flags(bool push_descriptors, bool storage_16bit) {
    return (push_descriptors ? EFLA_VULKAN_USES_PUSH_DESCRIPTORS : 0) |
           (storage_16bit ? EFLA_VULKAN_USES_16BIT_STORAGE : 0);
}

efla_status efla_vulkan_device_features(uint32_t device_index, uint32_t *out_flags) {
    efla_error_clear();
    if (!out_flags) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "out_flags is NULL");
    efla_status status = efla_vk_runtime_init();
    if (status != EFLA_SUCCESS) return status;
    const efla_vk_physical *device = efla_vk_runtime_device(device_index);
    if (!device)
        return efla_error(EFLA_ERROR_DEVICE_NOT_FOUND, "no Vulkan device %u", device_index);
    bool push, storage16;
    status = efla_vk_features_select(&device->caps, &push, &storage16);
    if (status == EFLA_SUCCESS) *out_flags = feature_flags(push, storage16);
    return status;
}

efla_status efla_vulkan_context_features(efla_context context, uint32_t *out_flags) {
    efla_error_clear();
    efla_status status = check_vulkan_context(context);
    if (status != EFLA_SUCCESS) return status;
    if (!out_flags) return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "out_flags is NULL");
    const efla_vk_limits *limits = &context->impl->limits;
    *out_flags = feature_flags(limits->push_descriptors, limits->storage_16bit);
    return EFLA_SUCCESS;
}
