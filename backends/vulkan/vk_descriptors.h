/*
 * Descriptor sets for devices (or hosts) without push descriptors. Sets come
 * from an arena of pools owned by the context. Each allocation carries a tag
 * (the recording it belongs to), and a pool is reset only when every set in
 * it has a tag the caller declares finished, so that no command that bound
 * one of its sets can still run.
 */
#ifndef EFLA_VK_DESCRIPTORS_H
#define EFLA_VK_DESCRIPTORS_H

#include "backends/vulkan/vk_functions.h"

#include "core/context.h"

typedef struct efla_vk_set_pool {
    VkDescriptorPool pool;
    uint32_t used;     /* sets taken since the last reset */
    uint64_t last_tag; /* the largest tag among them */
} efla_vk_set_pool;

typedef struct efla_vk_set_arena {
    efla_vk_set_pool *pools;
    uint32_t pool_count, pool_capacity;
    uint32_t current; /* the pool sets come from next */
} efla_vk_set_arena;

/* Allocates `count` sets of `layout` (EFLA_VK_BINDING_COUNT storage buffers
 * each) tagged `tag` (tags never decrease), adding pools as needed. */
efla_status efla_vk_sets_allocate(const efla_vk_device_fns *fn, VkDevice device,
                                  const efla_allocator *host, efla_vk_set_arena *arena,
                                  VkDescriptorSetLayout layout, uint64_t tag, uint32_t count,
                                  VkDescriptorSet *out);
/* Resets every pool whose sets all have tags below `before` (UINT64_MAX:
 * every pool); the pools stay for reuse. */
efla_status efla_vk_sets_release(const efla_vk_device_fns *fn, VkDevice device,
                                 efla_vk_set_arena *arena, uint64_t before);
void efla_vk_arena_destroy(const efla_vk_device_fns *fn, VkDevice device,
                           const efla_allocator *host, efla_vk_set_arena *arena);

#endif
