/* `efla info`: what efla uses on a Vulkan device (binding model, 16-bit
 * storage), in builds with the Vulkan backend. */
#ifndef EFLA_TOOLS_INFO_VULKAN_H
#define EFLA_TOOLS_INFO_VULKAN_H

#include <stdbool.h>
#include <stdint.h>

typedef struct info_vulkan {
    const char *bindings; /* "push descriptors" or "descriptor sets" */
    bool storage_16bit;   /* f16/bf16 as 16-bit values, else through 32-bit words */
} info_vulkan;

/* False when the build has no Vulkan backend or the device cannot say. */
bool info_vulkan_device(uint32_t index, info_vulkan *out);

#endif
