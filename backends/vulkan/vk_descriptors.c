/* Descriptor-set arenas (see vk_descriptors.h). */
#include "backends/vulkan/vk_descriptors.h"

#include "backends/vulkan/vk_caps.h"
#include "core/error.h"

#include <string.h>

#define SETS_PER_POOL 64u

/* Sets are counted here rather than inferred from allocation errors, which
 * Vulkan 1.0-era drivers report inconsistently. */
static efla_status add_pool(const efla_vk_device_fns *fn, VkDevice device,
                            const efla_allocator *host, efla_vk_set_arena *arena) {
    if (arena->pool_count == arena->pool_capacity) {
        uint32_t capacity = arena->pool_capacity ? 2 * arena->pool_capacity : 4;
        VkDescriptorPool *bigger = efla_host_alloc(host, capacity * sizeof *bigger);
        if (!bigger) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
        if (arena->pool_count) memcpy(bigger, arena->pools, arena->pool_count * sizeof *bigger);
        efla_host_free(host, arena->pools);
        arena->pools = bigger;
        arena->pool_capacity = capacity;
    }
    VkDescriptorPoolSize size = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                 SETS_PER_POOL * EFLA_VK_BINDING_COUNT};
    VkDescriptorPoolCreateInfo info = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                       .maxSets = SETS_PER_POOL,
                                       .poolSizeCount = 1,
                                       .pPoolSizes = &size};
    VkResult result =
        fn->vkCreateDescriptorPool(device, &info, NULL, &arena->pools[arena->pool_count]);
    if (result != VK_SUCCESS) return efla_vk_check(result, "vkCreateDescriptorPool");
    arena->pool_count++;
    return EFLA_SUCCESS;
}

efla_status efla_vk_sets_allocate(const efla_vk_device_fns *fn, VkDevice device,
                                  const efla_allocator *host, efla_vk_set_arena *arena,
                                  VkDescriptorSetLayout layout, uint32_t count,
                                  VkDescriptorSet *out) {
    for (uint32_t i = 0; i < count; ++i) {
        if (arena->pool_count > 0 && arena->used == SETS_PER_POOL) {
            arena->current++;
            arena->used = 0;
        }
        if (arena->current == arena->pool_count) {
            efla_status status = add_pool(fn, device, host, arena);
            if (status != EFLA_SUCCESS) return status;
        }
        VkDescriptorSetAllocateInfo info = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                            .descriptorPool = arena->pools[arena->current],
                                            .descriptorSetCount = 1,
                                            .pSetLayouts = &layout};
        VkResult result = fn->vkAllocateDescriptorSets(device, &info, &out[i]);
        if (result != VK_SUCCESS) return efla_vk_check(result, "vkAllocateDescriptorSets");
        arena->used++;
    }
    return EFLA_SUCCESS;
}

efla_status efla_vk_arena_reset(const efla_vk_device_fns *fn, VkDevice device,
                                efla_vk_set_arena *arena) {
    uint32_t touched = arena->current < arena->pool_count ? arena->current + 1 : arena->pool_count;
    for (uint32_t i = 0; i < touched; ++i) {
        VkResult result = fn->vkResetDescriptorPool(device, arena->pools[i], 0);
        if (result != VK_SUCCESS) return efla_vk_check(result, "vkResetDescriptorPool");
    }
    arena->current = 0;
    arena->used = 0;
    return EFLA_SUCCESS;
}

void efla_vk_arena_destroy(const efla_vk_device_fns *fn, VkDevice device,
                           const efla_allocator *host, efla_vk_set_arena *arena) {
    for (uint32_t i = 0; i < arena->pool_count; ++i)
        fn->vkDestroyDescriptorPool(device, arena->pools[i], NULL);
    efla_host_free(host, arena->pools);
    memset(arena, 0, sizeof *arena);
}
