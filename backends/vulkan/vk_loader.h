/* The process-wide Vulkan runtime: loader, efla's instance, ranked devices. */
#ifndef EFLA_VK_LOADER_H
#define EFLA_VK_LOADER_H

#include "backends/vulkan/vk_caps.h"

typedef struct efla_vk_physical {
    VkPhysicalDevice handle;
    uint32_t order; /* enumeration position, for a stable ranking */
    efla_vk_caps caps;
} efla_vk_physical;

/* Loads libvulkan and creates efla's instance once (thread-safe). Fails
 * with EFLA_ERROR_BACKEND_UNAVAILABLE and the reason. */
efla_status efla_vk_runtime_init(void);

/* Valid after a successful efla_vk_runtime_init. */
const efla_vk_instance_fns *efla_vk_runtime_fns(void);
VkInstance efla_vk_runtime_instance(void);
/* Usable devices, best first (discrete > integrated > virtual > software). */
uint32_t efla_vk_runtime_device_count(void);
const efla_vk_physical *efla_vk_runtime_device(uint32_t index);

#endif
