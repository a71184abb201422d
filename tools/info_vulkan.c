/* See info_vulkan.h. Only this file of the CLI needs the Vulkan headers. */
#include "info_vulkan.h"

#ifdef EFLA_CLI_VULKAN
#include "efla/efla_vulkan.h"

bool info_vulkan_device(uint32_t index, info_vulkan *out) {
    uint32_t flags = 0;
    if (efla_vulkan_device_features(index, &flags) != EFLA_SUCCESS) return false;
    out->bindings =
        flags & EFLA_VULKAN_USES_PUSH_DESCRIPTORS ? "push descriptors" : "descriptor sets";
    out->storage_16bit = (flags & EFLA_VULKAN_USES_16BIT_STORAGE) != 0;
    return true;
}
#else
bool info_vulkan_device(uint32_t index, info_vulkan *out) {
    (void)index;
    (void)out;
    return false;
}
#endif
