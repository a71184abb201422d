/* The public entry points of include/efla/efla_vulkan.h. */
#include "efla/efla_vulkan.h"

#include "backends/vulkan/vk_context.h"
#include "core/context.h"
#include "core/error.h"
#include "core/validate.h"

static const char *const required_extensions[] = {VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME};

efla_status efla_vulkan_required_device_extensions(uint32_t *out_count,
                                                   const char *const **out_names) {
    efla_error_clear();
    if (!out_count || !out_names)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "out_count or out_names is NULL");
    *out_count = sizeof required_extensions / sizeof required_extensions[0];
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
