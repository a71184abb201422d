/*
 * Device memory for the Vulkan backend: a few large VkDeviceMemory blocks
 * per memory type, sub-allocated first-fit with coalescing frees. Requests
 * over half a block get their own allocation. Host-visible blocks stay
 * mapped.
 */
#ifndef EFLA_VK_MEMORY_H
#define EFLA_VK_MEMORY_H

#include "backends/vulkan/vk_functions.h"

#include <stdbool.h>

typedef struct efla_vk_block efla_vk_block;

typedef struct efla_vk_allocation {
    VkDeviceMemory memory;
    VkDeviceSize offset;
    VkDeviceSize size;
    void *mapped; /* host address of offset; NULL when not host-visible */
    bool coherent;
    efla_vk_block *block;
} efla_vk_allocation;

typedef struct efla_vk_memory {
    const efla_vk_device_fns *fn;
    VkDevice device;
    const efla_allocator *host;
    VkPhysicalDeviceMemoryProperties properties;
    VkDeviceSize block_size;
    VkDeviceSize atom;           /* nonCoherentAtomSize */
    VkDeviceSize max_allocation; /* maxMemoryAllocationSize (0: unknown) */
    efla_vk_block *blocks;
} efla_vk_memory;

void efla_vk_memory_init(efla_vk_memory *memory, const efla_vk_device_fns *fn, VkDevice device,
                         const efla_allocator *host,
                         const VkPhysicalDeviceMemoryProperties *properties,
                         VkDeviceSize block_size, VkDeviceSize atom, VkDeviceSize max_allocation);
/* Frees every block (all allocations must be dead). */
void efla_vk_memory_destroy(efla_vk_memory *memory);

/* Memory of a type with all `required` flags, preferring types that also
 * have `preferred`; falls back to other allowed types when one is full. */
efla_status efla_vk_memory_alloc(efla_vk_memory *memory, const VkMemoryRequirements *requirements,
                                 VkMemoryPropertyFlags required, VkMemoryPropertyFlags preferred,
                                 efla_vk_allocation *out);
void efla_vk_memory_free(efla_vk_memory *memory, efla_vk_allocation *allocation);

#endif
