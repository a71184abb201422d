/*
 * Vulkan contexts: efla's own VkDevice (or the host's, for interop), one
 * queue, a ring of command buffers with fences, timestamps, teardown.
 */
#include "backends/vulkan/vk_context.h"

#include "backends/vulkan/vk_coopmat.h"
#include "backends/vulkan/vk_loader.h"
#include "backends/vulkan/vk_path.h"
#include "backends/vulkan/vk_profile.h"
#include "core/context.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

#define BLOCK_SIZE (64u << 20)
#define DUMMY_SIZE (64u << 10)
#define PARAMS_MIN_SIZE (64u << 10)

efla_status efla_vk_fail(efla_backend_context *ctx, VkResult result, const char *what) {
    efla_status status = efla_vk_check(result, what);
    if (result == VK_ERROR_DEVICE_LOST) {
        ctx->lost = EFLA_ERROR_DEVICE_LOST;
        efla_error(EFLA_ERROR_DEVICE_LOST,
                   "%s failed: VK_ERROR_DEVICE_LOST; the context can only be destroyed", what);
    }
    return status;
}

static efla_status check_lost(const efla_backend_context *ctx) {
    if (ctx->lost)
        return efla_error(EFLA_ERROR_DEVICE_LOST,
                          "the Vulkan device was lost earlier; destroy the context");
    return EFLA_SUCCESS;
}

static efla_status wait_slot(efla_backend_context *ctx, efla_vk_slot *slot) {
    if (!slot->pending) return EFLA_SUCCESS;
    VkResult result = ctx->fn.vkWaitForFences(ctx->device, 1, &slot->fence, VK_TRUE, UINT64_MAX);
    slot->pending = false;
    if (result != VK_SUCCESS) return efla_vk_fail(ctx, result, "vkWaitForFences");
    return EFLA_SUCCESS;
}

efla_status efla_vk_wait_all(efla_backend_context *ctx) {
    efla_status first = EFLA_SUCCESS;
    for (uint32_t i = 0; i < EFLA_VK_RING; ++i) {
        efla_status status = wait_slot(ctx, &ctx->slots[i]);
        if (first == EFLA_SUCCESS) first = status;
    }
    return first;
}

efla_status efla_vk_slot_begin(efla_backend_context *ctx, efla_vk_slot **out) {
    efla_status status = check_lost(ctx);
    if (status != EFLA_SUCCESS) return status;
    efla_vk_slot *slot = &ctx->slots[ctx->next_slot];
    status = wait_slot(ctx, slot);
    if (status != EFLA_SUCCESS) return status;
    status = efla_vk_sets_release(&ctx->fn, ctx->device, &slot->sets, UINT64_MAX);
    if (status != EFLA_SUCCESS) return status;
    VkResult result = ctx->fn.vkResetFences(ctx->device, 1, &slot->fence);
    if (result == VK_SUCCESS) result = ctx->fn.vkResetCommandBuffer(slot->cmd, 0);
    if (result != VK_SUCCESS) return efla_vk_fail(ctx, result, "resetting a command buffer");
    VkCommandBufferBeginInfo begin = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                      .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    result = ctx->fn.vkBeginCommandBuffer(slot->cmd, &begin);
    if (result != VK_SUCCESS) return efla_vk_fail(ctx, result, "vkBeginCommandBuffer");
    if (ctx->last_timed_slot == (int32_t)ctx->next_slot) {
        status = efla_vk_profile_keep(ctx); /* before the queries are reset */
        if (status != EFLA_SUCCESS) return status;
        ctx->last_timed_slot = -1;
    }
    slot->timed = false;
    ctx->next_slot = (ctx->next_slot + 1) % EFLA_VK_RING;
    *out = slot;
    return EFLA_SUCCESS;
}

efla_status efla_vk_slot_submit(efla_backend_context *ctx, efla_vk_slot *slot, bool wait) {
    VkResult result = ctx->fn.vkEndCommandBuffer(slot->cmd);
    if (result != VK_SUCCESS) return efla_vk_fail(ctx, result, "vkEndCommandBuffer");
    VkSubmitInfo submit = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                           .commandBufferCount = 1,
                           .pCommandBuffers = &slot->cmd};
    if (ctx->lock_queue) ctx->lock_queue(ctx->queue_lock_user);
    result = ctx->fn.vkQueueSubmit(ctx->queue, 1, &submit, slot->fence);
    if (ctx->unlock_queue) ctx->unlock_queue(ctx->queue_lock_user);
    if (result != VK_SUCCESS) return efla_vk_fail(ctx, result, "vkQueueSubmit");
    slot->pending = true;
    if (slot->timed) ctx->last_timed_slot = (int32_t)(slot - ctx->slots);
    return wait ? wait_slot(ctx, slot) : EFLA_SUCCESS;
}

/* Command pool, slots, timestamps: what every context needs on its queue. */
static efla_status create_submission(efla_backend_context *ctx) {
    ctx->last_timed_slot = -1;
    VkCommandPoolCreateInfo pool_info = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                         .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT,
                                         .queueFamilyIndex = ctx->queue_family};
    VkResult result =
        ctx->fn.vkCreateCommandPool(ctx->device, &pool_info, NULL, &ctx->command_pool);
    if (result != VK_SUCCESS) return efla_vk_fail(ctx, result, "vkCreateCommandPool");
    VkCommandBuffer cmds[EFLA_VK_RING];
    VkCommandBufferAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                         .commandPool = ctx->command_pool,
                                         .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                         .commandBufferCount = EFLA_VK_RING};
    result = ctx->fn.vkAllocateCommandBuffers(ctx->device, &alloc, cmds);
    if (result != VK_SUCCESS) return efla_vk_fail(ctx, result, "vkAllocateCommandBuffers");
    for (uint32_t i = 0; i < EFLA_VK_RING; ++i) {
        ctx->slots[i].cmd = cmds[i];
        VkFenceCreateInfo fence = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
        result = ctx->fn.vkCreateFence(ctx->device, &fence, NULL, &ctx->slots[i].fence);
        if (result != VK_SUCCESS) return efla_vk_fail(ctx, result, "vkCreateFence");
    }
    if (!(ctx->params.flags & EFLA_CONTEXT_PROFILING) || ctx->caps.timestamp_bits == 0)
        return EFLA_SUCCESS;
    VkQueryPoolCreateInfo query = {.sType = VK_STRUCTURE_TYPE_QUERY_POOL_CREATE_INFO,
                                   .queryType = VK_QUERY_TYPE_TIMESTAMP,
                                   .queryCount = EFLA_VK_SLOT_QUERIES * EFLA_VK_RING};
    result = ctx->fn.vkCreateQueryPool(ctx->device, &query, NULL, &ctx->query_pool);
    if (result != VK_SUCCESS) return efla_vk_fail(ctx, result, "vkCreateQueryPool");
    return EFLA_SUCCESS;
}

/* Everything after the device and queue exist. */
static efla_status finish_create(efla_backend_context *ctx) {
    /* A loader that does not resolve the enabled extension: bind with sets. */
    if (!ctx->fn.vkCmdPushDescriptorSetKHR) ctx->limits.push_descriptors = false;
    VkPhysicalDeviceMemoryProperties memory;
    ctx->ifn.vkGetPhysicalDeviceMemoryProperties(ctx->physical, &memory);
    efla_vk_memory_init(&ctx->memory, &ctx->fn, ctx->device, ctx->host, &memory, BLOCK_SIZE,
                        ctx->caps.properties.limits.nonCoherentAtomSize, ctx->caps.max_allocation);
    efla_status status = create_submission(ctx);
    if (status == EFLA_SUCCESS) status = efla_vk_pipelines_init(ctx);
    if (status == EFLA_SUCCESS)
        status = efla_vk_raw_create(ctx, DUMMY_SIZE, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT, 0,
                                    VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, &ctx->dummy);
    if (status == EFLA_SUCCESS)
        status = efla_vk_raw_ensure(ctx, &ctx->param_buffer, PARAMS_MIN_SIZE);
    return status;
}

static efla_backend_context *new_context(const efla_backend_context_params *params) {
    efla_backend_context *ctx = efla_host_alloc(params->allocator, sizeof *ctx);
    if (!ctx) return NULL;
    memset(ctx, 0, sizeof *ctx);
    ctx->params = *params;
    ctx->host = params->allocator;
    return ctx;
}

static efla_status create_device(efla_backend_context *ctx) {
    float priority = 1.0f;
    VkDeviceQueueCreateInfo queue = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                     .queueFamilyIndex = ctx->caps.queue_family,
                                     .queueCount = 1,
                                     .pQueuePriorities = &priority};
    const char *extensions[3];
    uint32_t extension_count = 0;
    if (ctx->limits.push_descriptors)
        extensions[extension_count++] = VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME;
    bool coopmat = ctx->limits.path == EFLA_VK_PATH_COOPMAT;
    if (coopmat) extensions[extension_count++] = EFLA_VK_COOPMAT_EXTENSION;
    if (ctx->limits.coopmat2) extensions[extension_count++] = EFLA_VK_COOPMAT2_EXTENSION;
    efla_vk_coopmat_enable enable;
    efla_vk_coopmat2_features enable2;
    void *coopmat2 = ctx->limits.coopmat2 ? efla_vk_coopmat2_features_chain(&enable2, NULL) : NULL;
    VkPhysicalDevice16BitStorageFeatures storage16 = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES,
        .pNext = coopmat ? efla_vk_coopmat_features(&enable, coopmat2) : NULL,
        .storageBuffer16BitAccess = VK_TRUE};
    VkPhysicalDeviceFeatures2 features = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                          .pNext = storage16.pNext};
    if (ctx->limits.storage_16bit) features.pNext = &storage16;
    /* Only what efla uses is enabled: a shader module declaring 16-bit
     * storage is only ever created when the feature is on, and the coopmat
     * kernels only on the coopmat path. */
    VkDeviceCreateInfo info = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                               .pNext = &features,
                               .queueCreateInfoCount = 1,
                               .pQueueCreateInfos = &queue,
                               .enabledExtensionCount = extension_count,
                               .ppEnabledExtensionNames = extensions};
    VkResult result = ctx->ifn.vkCreateDevice(ctx->physical, &info, NULL, &ctx->device);
    if (result != VK_SUCCESS) return efla_vk_check(result, "vkCreateDevice");
    ctx->owns_device = true;
    ctx->queue_family = ctx->caps.queue_family;
    efla_status status = efla_vk_load_device_fns(&ctx->ifn, ctx->device, &ctx->fn);
    if (status != EFLA_SUCCESS) return status;
    ctx->fn.vkGetDeviceQueue(ctx->device, ctx->queue_family, 0, &ctx->queue);
    return EFLA_SUCCESS;
}

void efla_vk_context_destroy(efla_backend_context *ctx) {
    if (!ctx) return;
    if (ctx->device && ctx->fn.vkDestroyDevice) {
        efla_vk_wait_all(ctx);
        efla_vk_arena_destroy(&ctx->fn, ctx->device, ctx->host, &ctx->recorded_sets);
        for (uint32_t i = 0; i < EFLA_VK_RING; ++i)
            efla_vk_arena_destroy(&ctx->fn, ctx->device, ctx->host, &ctx->slots[i].sets);
        for (uint32_t i = 0; i < ctx->retired_count; ++i)
            efla_vk_raw_destroy(ctx, &ctx->retired[i]);
        efla_vk_raw_destroy(ctx, &ctx->scratch);
        efla_vk_raw_destroy(ctx, &ctx->param_buffer);
        efla_vk_raw_destroy(ctx, &ctx->staging);
        efla_vk_raw_destroy(ctx, &ctx->dummy);
        efla_vk_pipelines_destroy(ctx);
        if (ctx->query_pool) ctx->fn.vkDestroyQueryPool(ctx->device, ctx->query_pool, NULL);
        for (uint32_t i = 0; i < EFLA_VK_RING; ++i)
            if (ctx->slots[i].fence) ctx->fn.vkDestroyFence(ctx->device, ctx->slots[i].fence, NULL);
        if (ctx->command_pool) ctx->fn.vkDestroyCommandPool(ctx->device, ctx->command_pool, NULL);
        efla_vk_memory_destroy(&ctx->memory);
        if (ctx->owns_device) ctx->fn.vkDestroyDevice(ctx->device, NULL);
    } else if (ctx->device && ctx->owns_device && ctx->ifn.vkGetDeviceProcAddr) {
        PFN_vkDestroyDevice destroy =
            (PFN_vkDestroyDevice)ctx->ifn.vkGetDeviceProcAddr(ctx->device, "vkDestroyDevice");
        if (destroy) destroy(ctx->device, NULL);
    }
    efla_host_free(ctx->host, ctx->retired);
    efla_host_free(ctx->host, ctx);
}

efla_status efla_vk_context_create(const efla_backend_context_params *params,
                                   efla_backend_context **out) {
    const efla_vk_physical *physical = efla_vk_runtime_device(params->device_index);
    if (!physical)
        return efla_error(EFLA_ERROR_DEVICE_NOT_FOUND, "vulkan has %u device(s); no device %u",
                          efla_vk_runtime_device_count(), params->device_index);
    efla_backend_context *ctx = new_context(params);
    if (!ctx) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    ctx->ifn = *efla_vk_runtime_fns();
    ctx->caps = physical->caps;
    ctx->physical = physical->handle;
    efla_status status = efla_vk_limits_init(&ctx->caps, 0, &ctx->limits);
    if (status == EFLA_SUCCESS) status = create_device(ctx);
    if (status == EFLA_SUCCESS) status = finish_create(ctx);
    if (status != EFLA_SUCCESS) {
        efla_vk_context_destroy(ctx);
        return status;
    }
    *out = ctx;
    return EFLA_SUCCESS;
}

static bool extension_enabled(const efla_vulkan_device_info *vk, const char *name) {
    for (uint32_t i = 0; i < vk->enabled_extension_count; ++i)
        if (vk->enabled_extensions && vk->enabled_extensions[i] &&
            strcmp(vk->enabled_extensions[i], name) == 0)
            return true;
    return false;
}

/* storageBuffer16BitAccess in the feature chain the host enabled (the
 * Vulkan 1.1 block or the 16-bit storage struct). */
static bool host_enabled_16bit_storage(const efla_vulkan_device_info *vk) {
    if (!vk->enabled_features) return false;
    for (const VkBaseInStructure *s = vk->enabled_features->pNext; s; s = s->pNext) {
        if (s->sType == VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES &&
            ((const VkPhysicalDevice16BitStorageFeatures *)(const void *)s)
                ->storageBuffer16BitAccess)
            return true;
        if (s->sType == VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_1_FEATURES &&
            ((const VkPhysicalDeviceVulkan11Features *)(const void *)s)->storageBuffer16BitAccess)
            return true;
    }
    return false;
}

static efla_status check_native_info(const efla_vulkan_device_info *vk) {
    if (vk->struct_size < sizeof *vk)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "efla_vulkan_device_info struct_size %u is smaller than %zu "
                          "(use EFLA_VULKAN_DEVICE_INFO_INIT)",
                          vk->struct_size, sizeof *vk);
    if (vk->next)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "efla_vulkan_device_info next must be NULL");
    if (!vk->instance || !vk->physical_device || !vk->device || !vk->get_instance_proc_addr)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "efla_vulkan_device_info needs instance, physical_device, device and "
                          "get_instance_proc_addr");
    if ((vk->lock_queue == NULL) != (vk->unlock_queue == NULL))
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "give both lock_queue and unlock_queue, or neither");
    return EFLA_SUCCESS;
}

/* The host's queue family must exist and support compute. */
static efla_status adopt_host_queue(efla_backend_context *ctx, const efla_vulkan_device_info *vk) {
    uint32_t count = 0;
    ctx->ifn.vkGetPhysicalDeviceQueueFamilyProperties(ctx->physical, &count, NULL);
    VkQueueFamilyProperties families[32];
    if (count > 32) count = 32;
    ctx->ifn.vkGetPhysicalDeviceQueueFamilyProperties(ctx->physical, &count, families);
    if (vk->queue_family_index >= count ||
        !(families[vk->queue_family_index].queueFlags & VK_QUEUE_COMPUTE_BIT) ||
        vk->queue_index >= families[vk->queue_family_index].queueCount)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "queue family %u, queue %u is not a compute queue of the device",
                          vk->queue_family_index, vk->queue_index);
    ctx->queue_family = vk->queue_family_index;
    ctx->caps.queue_family = vk->queue_family_index;
    ctx->caps.timestamp_bits = families[vk->queue_family_index].timestampValidBits;
    ctx->fn.vkGetDeviceQueue(ctx->device, ctx->queue_family, vk->queue_index, &ctx->queue);
    ctx->lock_queue = vk->lock_queue;
    ctx->unlock_queue = vk->unlock_queue;
    ctx->queue_lock_user = vk->queue_lock_user;
    ctx->pipeline_cache = vk->pipeline_cache;
    return EFLA_SUCCESS;
}

static efla_status init_native(efla_backend_context *ctx, const efla_vulkan_device_info *vk) {
    efla_status status = check_native_info(vk);
    if (status == EFLA_SUCCESS)
        status = efla_vk_load_instance_fns(vk->get_instance_proc_addr, vk->instance, &ctx->ifn);
    if (status != EFLA_SUCCESS) return status;
    ctx->physical = vk->physical_device;
    ctx->device = vk->device;
    status = efla_vk_query_caps(&ctx->ifn, ctx->physical, &ctx->caps);
    if (status != EFLA_SUCCESS) return status;
    /* efla uses only what the host enabled, on the queue the host picked. */
    ctx->caps.push_descriptor = extension_enabled(vk, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);
    ctx->caps.storage_16bit = ctx->caps.storage_16bit && host_enabled_16bit_storage(vk);
    ctx->caps.queue_family = vk->queue_family_index;
    /* Whether the host's device enabled the coopmat features is not known. */
    ctx->caps.coopmat = ctx->caps.coopmat2 = false;
    ctx->caps.coopmat_missing = "the host's device may not enable the cooperative-matrix features";
    const char *unusable = ctx->caps.api_version < VK_API_VERSION_1_1
                               ? "it supports only Vulkan 1.0 (efla needs 1.1)"
                               : efla_vk_caps_unusable(&ctx->caps);
    if (unusable)
        return efla_error(EFLA_ERROR_UNSUPPORTED, "the host's Vulkan device cannot run efla: %s",
                          unusable);
    status = efla_vk_load_device_fns(&ctx->ifn, ctx->device, &ctx->fn);
    if (status == EFLA_SUCCESS) status = adopt_host_queue(ctx, vk);
    if (status == EFLA_SUCCESS)
        status = efla_vk_limits_init(&ctx->caps, vk->max_chunks_per_dispatch, &ctx->limits);
    if (status == EFLA_SUCCESS) status = finish_create(ctx);
    return status;
}

efla_status efla_vk_context_create_native(efla_native_kind kind, const void *native_info,
                                          const efla_backend_context_params *params,
                                          efla_backend_context **out) {
    if (kind != EFLA_NATIVE_VULKAN)
        return efla_error(EFLA_ERROR_BACKEND_MISMATCH, "not a Vulkan interop request");
    efla_backend_context *ctx = new_context(params);
    if (!ctx) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    efla_status status = init_native(ctx, native_info);
    if (status != EFLA_SUCCESS) {
        efla_vk_context_destroy(ctx);
        return status;
    }
    *out = ctx;
    return EFLA_SUCCESS;
}

efla_status efla_vk_context_device_info(efla_backend_context *ctx, efla_device_info *info) {
    efla_vk_caps_describe(&ctx->caps, info);
    info->index = ctx->params.device_index;
    return EFLA_SUCCESS;
}

efla_status efla_vk_release_recordings(efla_backend_context *ctx, uint64_t mark) {
    efla_status status = check_lost(ctx);
    if (status != EFLA_SUCCESS) return status;
    if (mark > ctx->recordings)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "mark %llu is beyond the %llu forwards recorded from this context",
                          (unsigned long long)mark, (unsigned long long)ctx->recordings);
    /* With every recording finished, retired buffers go at the next synchronize. */
    if (mark == ctx->recordings) ctx->recorded_native = false;
    return efla_vk_sets_release(&ctx->fn, ctx->device, &ctx->recorded_sets, mark);
}

efla_status efla_vk_synchronize(efla_backend_context *ctx) {
    efla_status status = check_lost(ctx);
    if (status != EFLA_SUCCESS) return status;
    status = efla_vk_wait_all(ctx);
    if (status != EFLA_SUCCESS) return status;
    /* Nothing of efla's own is in flight: replaced buffers can go, unless
     * host command buffers recorded from this context may still use them. */
    if (!ctx->recorded_native) {
        for (uint32_t i = 0; i < ctx->retired_count; ++i)
            efla_vk_raw_destroy(ctx, &ctx->retired[i]);
        ctx->retired_count = 0;
    }
    return EFLA_SUCCESS;
}
