/*
 * Descriptor sets for devices (or hosts) without push descriptors. Sets come
 * from an arena of pools owned by the context; an arena is only ever reset
 * whole, at a point where no command that bound one of its sets can still
 * run (see efla_vk_set_arena's owners in vk_internal.h).
 */
#ifndef EFLA_VK_DESCRIPTORS_H
#define EFLA_VK_DESCRIPTORS_H

#include "backends/vulkan/vk_functions.h"

#include "core/context.h"

typedef struct efla_vk_set_arena {
    VkDescriptorPool *pools;
    uint32_t pool_count, pool_capacity;
    uint32_t current; /* the pool sets come from next */
    uint32_t used;    /* sets taken from pools[current] */
} efla_vk_set_arena;

/* Allocates `count` sets of `layout` (EFLA_VK_BINDING_COUNT storage
 * buffers each) from the arena, adding pools as needed. */
efla_status efla_vk_sets_allocate(const efla_vk_device_fns *fn, VkDevice device,
                                  const efla_allocator *host, efla_vk_set_arena *arena,
                                  VkDescriptorSetLayout layout, uint32_t count,
                                  VkDescriptorSet *out);
/* Returns every set to its pool; the pools stay for reuse. */
efla_status efla_vk_arena_reset(const efla_vk_device_fns *fn, VkDevice device,
                                efla_vk_set_arena *arena);
void efla_vk_arena_destroy(const efla_vk_device_fns *fn, VkDevice device,
                           const efla_allocator *host, efla_vk_set_arena *arena);

#endif
