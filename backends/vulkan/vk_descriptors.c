/* Descriptor-set arenas (see vk_descriptors.h). */
#include "backends/vulkan/vk_descriptors.h"

#include "backends/vulkan/vk_caps.h"
#include "core/error.h"

#include <string.h>

#define SETS_PER_POOL 64u

static efla_status add_pool(const efla_vk_device_fns *fn, VkDevice device,
                            const efla_allocator *host, efla_vk_set_arena *arena) {
    if (arena->pool_count == arena->pool_capacity) {
        uint32_t capacity = arena->pool_capacity ? 2 * arena->pool_capacity : 4;
        efla_vk_set_pool *bigger = efla_host_alloc(host, capacity * sizeof *bigger);
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
    efla_vk_set_pool *entry = &arena->pools[arena->pool_count];
    memset(entry, 0, sizeof *entry);
    VkResult result = fn->vkCreateDescriptorPool(device, &info, NULL, &entry->pool);
    if (result != VK_SUCCESS) return efla_vk_check(result, "vkCreateDescriptorPool");
    arena->current = arena->pool_count++;
    return EFLA_SUCCESS;
}

/* Makes arena->current a pool with room: the current one, an empty one, or
 * a new one. Sets are counted here rather than inferred from allocation
 * errors, which Vulkan 1.0-era drivers report inconsistently. */
static efla_status pool_with_room(const efla_vk_device_fns *fn, VkDevice device,
                                  const efla_allocator *host, efla_vk_set_arena *arena) {
    if (arena->current < arena->pool_count && arena->pools[arena->current].used < SETS_PER_POOL)
        return EFLA_SUCCESS;
    for (uint32_t i = 0; i < arena->pool_count; ++i) {
        if (arena->pools[i].used == 0) {
            arena->current = i;
            return EFLA_SUCCESS;
        }
    }
    return add_pool(fn, device, host, arena);
}

efla_status efla_vk_sets_allocate(const efla_vk_device_fns *fn, VkDevice device,
                                  const efla_allocator *host, efla_vk_set_arena *arena,
                                  VkDescriptorSetLayout layout, uint64_t tag, uint32_t count,
                                  VkDescriptorSet *out) {
    for (uint32_t i = 0; i < count; ++i) {
        efla_status status = pool_with_room(fn, device, host, arena);
        if (status != EFLA_SUCCESS) return status;
        efla_vk_set_pool *entry = &arena->pools[arena->current];
        VkDescriptorSetAllocateInfo info = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                            .descriptorPool = entry->pool,
                                            .descriptorSetCount = 1,
                                            .pSetLayouts = &layout};
        VkResult result = fn->vkAllocateDescriptorSets(device, &info, &out[i]);
        if (result != VK_SUCCESS) return efla_vk_check(result, "vkAllocateDescriptorSets");
        entry->used++;
        entry->last_tag = tag;
    }
    return EFLA_SUCCESS;
}

efla_status efla_vk_sets_release(const efla_vk_device_fns *fn, VkDevice device,
                                 efla_vk_set_arena *arena, uint64_t before) {
    for (uint32_t i = 0; i < arena->pool_count; ++i) {
        efla_vk_set_pool *entry = &arena->pools[i];
        if (entry->used == 0 || (before != UINT64_MAX && entry->last_tag >= before)) continue;
        VkResult result = fn->vkResetDescriptorPool(device, entry->pool, 0);
        if (result != VK_SUCCESS) return efla_vk_check(result, "vkResetDescriptorPool");
        entry->used = 0;
    }
    return EFLA_SUCCESS;
}

void efla_vk_arena_destroy(const efla_vk_device_fns *fn, VkDevice device,
                           const efla_allocator *host, efla_vk_set_arena *arena) {
    for (uint32_t i = 0; i < arena->pool_count; ++i)
        fn->vkDestroyDescriptorPool(device, arena->pools[i].pool, NULL);
    efla_host_free(host, arena->pools);
    memset(arena, 0, sizeof *arena);
}
