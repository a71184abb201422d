/* First-fit sub-allocation of VkDeviceMemory blocks. */
#include "backends/vulkan/vk_memory.h"

#include "core/context.h"
#include "core/error.h"

#include <string.h>

typedef struct free_range {
    VkDeviceSize offset, size;
} free_range;

struct efla_vk_block {
    VkDeviceMemory memory;
    VkDeviceSize size;
    uint32_t type;
    void *mapped;
    bool coherent;
    bool dedicated;
    free_range *ranges; /* sorted by offset, never adjacent */
    uint32_t range_count, range_capacity;
    uint32_t live;
    efla_vk_block *next;
};

static VkDeviceSize align_up(VkDeviceSize value, VkDeviceSize alignment) {
    return (value + alignment - 1) / alignment * alignment;
}

void efla_vk_memory_init(efla_vk_memory *memory, const efla_vk_device_fns *fn, VkDevice device,
                         const efla_allocator *host,
                         const VkPhysicalDeviceMemoryProperties *properties,
                         VkDeviceSize block_size, VkDeviceSize atom, VkDeviceSize max_allocation) {
    memset(memory, 0, sizeof *memory);
    memory->fn = fn;
    memory->device = device;
    memory->host = host;
    memory->properties = *properties;
    memory->block_size = block_size;
    memory->atom = atom ? atom : 1;
    memory->max_allocation = max_allocation;
}

static void block_release(efla_vk_memory *memory, efla_vk_block *block) {
    if (block->mapped) memory->fn->vkUnmapMemory(memory->device, block->memory);
    memory->fn->vkFreeMemory(memory->device, block->memory, NULL);
    efla_host_free(memory->host, block->ranges);
    efla_host_free(memory->host, block);
}

void efla_vk_memory_destroy(efla_vk_memory *memory) {
    while (memory->blocks) {
        efla_vk_block *next = memory->blocks->next;
        block_release(memory, memory->blocks);
        memory->blocks = next;
    }
}

static efla_status ensure_ranges(efla_vk_memory *memory, efla_vk_block *block, uint32_t count) {
    if (count <= block->range_capacity) return EFLA_SUCCESS;
    uint32_t capacity = block->range_capacity ? block->range_capacity * 2 : 8;
    while (capacity < count)
        capacity *= 2;
    free_range *ranges = efla_host_alloc(memory->host, capacity * sizeof *ranges);
    if (!ranges) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    if (block->range_count) memcpy(ranges, block->ranges, block->range_count * sizeof *ranges);
    efla_host_free(memory->host, block->ranges);
    block->ranges = ranges;
    block->range_capacity = capacity;
    return EFLA_SUCCESS;
}

/* Replaces range i with the pieces left around [start, start + size). */
static efla_status carve(efla_vk_memory *memory, efla_vk_block *block, uint32_t i,
                         VkDeviceSize start, VkDeviceSize size) {
    free_range range = block->ranges[i];
    free_range before = {range.offset, start - range.offset};
    free_range after = {start + size, range.offset + range.size - start - size};
    uint32_t pieces = (before.size > 0) + (after.size > 0);
    /* Free ranges never outnumber live allocations + 1, so reserving that
     * many here means a later free never has to allocate. */
    efla_status status = ensure_ranges(memory, block, block->range_count + block->live + 2);
    if (status != EFLA_SUCCESS) return status;
    free_range *r = block->ranges;
    if (pieces == 0) {
        memmove(r + i, r + i + 1, (block->range_count - i - 1) * sizeof *r);
    } else if (pieces == 1) {
        r[i] = before.size ? before : after;
    } else {
        memmove(r + i + 2, r + i + 1, (block->range_count - i - 1) * sizeof *r);
        r[i] = before;
        r[i + 1] = after;
    }
    block->range_count = block->range_count - 1 + pieces;
    return EFLA_SUCCESS;
}

static bool block_alloc(efla_vk_memory *memory, efla_vk_block *block, VkDeviceSize size,
                        VkDeviceSize alignment, efla_vk_allocation *out) {
    for (uint32_t i = 0; i < block->range_count; ++i) {
        free_range range = block->ranges[i];
        VkDeviceSize start = align_up(range.offset, alignment);
        if (start + size > range.offset + range.size) continue;
        if (carve(memory, block, i, start, size) != EFLA_SUCCESS) return false;
        block->live++;
        out->memory = block->memory;
        out->offset = start;
        out->size = size;
        out->mapped = block->mapped ? (char *)block->mapped + start : NULL;
        out->coherent = block->coherent;
        out->block = block;
        return true;
    }
    return false;
}

static efla_status new_block(efla_vk_memory *memory, uint32_t type, VkDeviceSize size,
                             bool dedicated, efla_vk_block **out) {
    efla_vk_block *block = efla_host_alloc(memory->host, sizeof *block);
    if (!block) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    memset(block, 0, sizeof *block);
    VkMemoryAllocateInfo info = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                 .allocationSize = size,
                                 .memoryTypeIndex = type};
    VkResult result = memory->fn->vkAllocateMemory(memory->device, &info, NULL, &block->memory);
    if (result != VK_SUCCESS) {
        efla_host_free(memory->host, block);
        return efla_vk_check(result, "vkAllocateMemory");
    }
    VkMemoryPropertyFlags flags = memory->properties.memoryTypes[type].propertyFlags;
    if (flags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) {
        result = memory->fn->vkMapMemory(memory->device, block->memory, 0, VK_WHOLE_SIZE, 0,
                                         &block->mapped);
        if (result != VK_SUCCESS) {
            memory->fn->vkFreeMemory(memory->device, block->memory, NULL);
            efla_host_free(memory->host, block);
            return efla_vk_check(result, "vkMapMemory");
        }
    }
    block->coherent = (flags & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT) != 0;
    block->size = size;
    block->type = type;
    block->dedicated = dedicated;
    efla_status status = ensure_ranges(memory, block, 1);
    if (status != EFLA_SUCCESS) {
        block_release(memory, block);
        return status;
    }
    block->ranges[0] = (free_range){0, size};
    block->range_count = 1;
    block->next = memory->blocks;
    memory->blocks = block;
    *out = block;
    return EFLA_SUCCESS;
}

/* Whether one VkDeviceMemory of `size` bytes may come from `type`. */
static bool type_can_hold(const efla_vk_memory *memory, uint32_t type, VkDeviceSize size) {
    uint32_t heap = memory->properties.memoryTypes[type].heapIndex;
    if (size > memory->properties.memoryHeaps[heap].size) return false;
    return memory->max_allocation == 0 || size <= memory->max_allocation;
}

static efla_status alloc_of_type(efla_vk_memory *memory, uint32_t type, VkDeviceSize size,
                                 VkDeviceSize alignment, efla_vk_allocation *out) {
    bool host_visible =
        memory->properties.memoryTypes[type].propertyFlags & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT;
    if (host_visible) {
        alignment = align_up(alignment, memory->atom);
        size = align_up(size, memory->atom);
    }
    bool dedicated = size > memory->block_size / 2;
    if (!dedicated)
        for (efla_vk_block *b = memory->blocks; b; b = b->next)
            if (b->type == type && !b->dedicated && block_alloc(memory, b, size, alignment, out))
                return EFLA_SUCCESS;
    /* A shared block never exceeds what one allocation of the type may be. */
    VkDeviceSize block_bytes = memory->block_size;
    while (block_bytes > size && !type_can_hold(memory, type, block_bytes))
        block_bytes /= 2;
    if (block_bytes < size) dedicated = true;
    efla_vk_block *block = NULL;
    efla_status status = new_block(memory, type, dedicated ? size : block_bytes, dedicated, &block);
    if (status != EFLA_SUCCESS) return status;
    if (!block_alloc(memory, block, size, alignment, out))
        return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    return EFLA_SUCCESS;
}

efla_status efla_vk_memory_alloc(efla_vk_memory *memory, const VkMemoryRequirements *requirements,
                                 VkMemoryPropertyFlags required, VkMemoryPropertyFlags preferred,
                                 efla_vk_allocation *out) {
    efla_status status = EFLA_ERROR_OUT_OF_DEVICE_MEMORY;
    bool tried = false;
    /* Two passes: types with the preferred flags first, then the rest. */
    for (int pass = 0; pass < 2; ++pass) {
        for (uint32_t type = 0; type < memory->properties.memoryTypeCount; ++type) {
            VkMemoryPropertyFlags flags = memory->properties.memoryTypes[type].propertyFlags;
            bool preferred_type = (flags & preferred) == preferred;
            if (!(requirements->memoryTypeBits & (1u << type)) || (flags & required) != required ||
                preferred_type != (pass == 0) || !type_can_hold(memory, type, requirements->size))
                continue;
            tried = true;
            status = alloc_of_type(memory, type, requirements->size, requirements->alignment, out);
            if (status != EFLA_ERROR_OUT_OF_DEVICE_MEMORY) return status;
        }
    }
    if (!tried)
        return efla_error(EFLA_ERROR_OUT_OF_DEVICE_MEMORY,
                          "no memory heap of the device can hold %llu bytes in one allocation "
                          "(maxMemoryAllocationSize %llu)",
                          (unsigned long long)requirements->size,
                          (unsigned long long)memory->max_allocation);
    return status;
}

static void insert_range(efla_vk_block *block, free_range range) {
    free_range *r = block->ranges;
    uint32_t i = 0;
    while (i < block->range_count && r[i].offset < range.offset)
        ++i;
    bool merge_before = i > 0 && r[i - 1].offset + r[i - 1].size == range.offset;
    bool merge_after = i < block->range_count && range.offset + range.size == r[i].offset;
    if (merge_before && merge_after) {
        r[i - 1].size += range.size + r[i].size;
        memmove(r + i, r + i + 1, (block->range_count - i - 1) * sizeof *r);
        block->range_count--;
    } else if (merge_before) {
        r[i - 1].size += range.size;
    } else if (merge_after) {
        r[i].offset = range.offset;
        r[i].size += range.size;
    } else {
        memmove(r + i + 1, r + i, (block->range_count - i) * sizeof *r);
        r[i] = range;
        block->range_count++;
    }
}

void efla_vk_memory_free(efla_vk_memory *memory, efla_vk_allocation *allocation) {
    efla_vk_block *block = allocation->block;
    if (!block) return;
    insert_range(block, (free_range){allocation->offset, allocation->size});
    memset(allocation, 0, sizeof *allocation);
    if (--block->live > 0) return;
    efla_vk_block **link = &memory->blocks;
    while (*link != block)
        link = &(*link)->next;
    *link = block->next;
    block_release(memory, block);
}
