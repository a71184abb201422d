/* The Vulkan backend's table. */
#include "backends/vulkan/vk_context.h"
#include "backends/vulkan/vk_loader.h"
#include "backends/vulkan/vk_profile.h"

#include "core/error.h"

static efla_status vk_probe(void) { return efla_vk_runtime_init(); }

static efla_status vk_device_count(uint32_t *out_count) {
    *out_count = efla_vk_runtime_device_count();
    return EFLA_SUCCESS;
}

static efla_status vk_device_info(uint32_t index, efla_device_info *info) {
    const efla_vk_physical *device = efla_vk_runtime_device(index);
    if (!device) return efla_error(EFLA_ERROR_DEVICE_NOT_FOUND, "no Vulkan device %u", index);
    efla_vk_caps_describe(&device->caps, info);
    return EFLA_SUCCESS;
}

const efla_backend_ops efla_vulkan_backend_ops = {
    .id = EFLA_BACKEND_VULKAN,
    .name = "vulkan",
    .probe = vk_probe,
    .device_count = vk_device_count,
    .device_info = vk_device_info,
    .context_create = efla_vk_context_create,
    .context_create_native = efla_vk_context_create_native,
    .context_destroy = efla_vk_context_destroy,
    .context_device_info = efla_vk_context_device_info,
    .synchronize = efla_vk_synchronize,
    .last_forward_ms = efla_vk_last_forward_ms,
    .last_forward_stages = efla_vk_last_forward_stages,
    .buffer_create = efla_vk_buffer_create,
    .buffer_wrap_native = efla_vk_buffer_wrap_native,
    .buffer_destroy = efla_vk_buffer_destroy,
    .buffer_upload = efla_vk_buffer_upload,
    .buffer_download = efla_vk_buffer_download,
    .forward = efla_vk_forward,
    .forward_query = efla_vk_forward_query,
    .forward_record = efla_vk_forward_record,
};
