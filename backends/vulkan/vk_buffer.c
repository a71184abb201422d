/*
 * Buffers: efla's own (device-local, sub-allocated), wrapped host VkBuffers,
 * staged uploads and downloads, and the context's growable scratch.
 */
#include "backends/vulkan/vk_context.h"

#include "core/context.h"
#include "core/error.h"

#include <stdio.h>
#include <string.h>

#define STAGING_MAX (16u << 20)

static VkDeviceSize round_up4(VkDeviceSize value) { return (value + 3) / 4 * 4; }

efla_status efla_vk_raw_create(efla_backend_context *ctx, VkDeviceSize size,
                               VkBufferUsageFlags usage, VkMemoryPropertyFlags required,
                               VkMemoryPropertyFlags preferred, efla_vk_raw_buffer *out) {
    memset(out, 0, sizeof *out);
    VkBufferCreateInfo info = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                               .size = size,
                               .usage = usage,
                               .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VkResult result = ctx->fn.vkCreateBuffer(ctx->device, &info, NULL, &out->buffer);
    if (result != VK_SUCCESS) return efla_vk_fail(ctx, result, "vkCreateBuffer");
    VkMemoryRequirements requirements;
    ctx->fn.vkGetBufferMemoryRequirements(ctx->device, out->buffer, &requirements);
    efla_status status =
        efla_vk_memory_alloc(&ctx->memory, &requirements, required, preferred, &out->memory);
    if (status == EFLA_SUCCESS) {
        result = ctx->fn.vkBindBufferMemory(ctx->device, out->buffer, out->memory.memory,
                                            out->memory.offset);
        if (result != VK_SUCCESS) status = efla_vk_fail(ctx, result, "vkBindBufferMemory");
    }
    if (status != EFLA_SUCCESS) {
        efla_vk_raw_destroy(ctx, out);
        if (status == EFLA_ERROR_OUT_OF_DEVICE_MEMORY) {
            char reason[256];
            snprintf(reason, sizeof reason, "%s", efla_last_error_message());
            return efla_error(status, "cannot allocate %llu bytes of device memory: %s",
                              (unsigned long long)size, reason);
        }
        return status;
    }
    out->size = size;
    return EFLA_SUCCESS;
}

void efla_vk_raw_destroy(efla_backend_context *ctx, efla_vk_raw_buffer *buffer) {
    if (buffer->buffer) ctx->fn.vkDestroyBuffer(ctx->device, buffer->buffer, NULL);
    efla_vk_memory_free(&ctx->memory, &buffer->memory);
    memset(buffer, 0, sizeof *buffer);
}

/* Keeps a replaced buffer alive until no command buffer can use it. */
static efla_status retire(efla_backend_context *ctx, efla_vk_raw_buffer *buffer) {
    if (!ctx->recorded_native) {
        efla_status status = efla_vk_wait_all(ctx);
        if (status != EFLA_SUCCESS) return status;
        efla_vk_raw_destroy(ctx, buffer);
        return EFLA_SUCCESS;
    }
    if (ctx->retired_count == ctx->retired_capacity) {
        uint32_t capacity = ctx->retired_capacity ? ctx->retired_capacity * 2 : 4;
        efla_vk_raw_buffer *bigger = efla_host_alloc(ctx->host, capacity * sizeof *bigger);
        if (!bigger) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
        if (ctx->retired_count) memcpy(bigger, ctx->retired, ctx->retired_count * sizeof *bigger);
        efla_host_free(ctx->host, ctx->retired);
        ctx->retired = bigger;
        ctx->retired_capacity = capacity;
    }
    ctx->retired[ctx->retired_count++] = *buffer;
    memset(buffer, 0, sizeof *buffer);
    return EFLA_SUCCESS;
}

efla_status efla_vk_raw_ensure(efla_backend_context *ctx, efla_vk_raw_buffer *buffer,
                               VkDeviceSize size) {
    if (buffer->buffer && buffer->size >= size) return EFLA_SUCCESS;
    VkDeviceSize grown = buffer->size * 2 > size ? buffer->size * 2 : size;
    VkBufferUsageFlags usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT;
    if (buffer == &ctx->param_buffer) usage |= VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    efla_vk_raw_buffer fresh;
    efla_status status =
        efla_vk_raw_create(ctx, grown, usage, 0, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, &fresh);
    if (status != EFLA_SUCCESS && grown > size)
        status =
            efla_vk_raw_create(ctx, size, usage, 0, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, &fresh);
    if (status != EFLA_SUCCESS) return status;
    if (buffer->buffer) {
        status = retire(ctx, buffer);
        if (status != EFLA_SUCCESS) {
            efla_vk_raw_destroy(ctx, &fresh);
            return status;
        }
    }
    *buffer = fresh;
    return EFLA_SUCCESS;
}

static efla_status new_buffer(efla_backend_context *ctx, efla_backend_buffer **out) {
    efla_backend_buffer *buf = efla_host_alloc(ctx->host, sizeof *buf);
    if (!buf) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    memset(buf, 0, sizeof *buf);
    *out = buf;
    return EFLA_SUCCESS;
}

efla_status efla_vk_buffer_create(efla_backend_context *ctx, uint64_t size,
                                  efla_backend_buffer **out) {
    if (ctx->lost) return efla_error(EFLA_ERROR_DEVICE_LOST, "the Vulkan device was lost");
    efla_backend_buffer *buf = NULL;
    efla_status status = new_buffer(ctx, &buf);
    if (status != EFLA_SUCCESS) return status;
    efla_vk_raw_buffer raw;
    status =
        efla_vk_raw_create(ctx, round_up4(size),
                           VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                               VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                           0, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, &raw);
    if (status != EFLA_SUCCESS) {
        efla_host_free(ctx->host, buf);
        return status;
    }
    buf->buffer = raw.buffer;
    buf->memory = raw.memory;
    buf->extent = raw.size;
    buf->size = size;
    buf->owned = true;
    *out = buf;
    return EFLA_SUCCESS;
}

efla_status efla_vk_buffer_wrap_native(efla_backend_context *ctx, efla_native_kind kind,
                                       const void *native_buffer, uint64_t size,
                                       efla_backend_buffer **out) {
    if (kind != EFLA_NATIVE_VULKAN)
        return efla_error(EFLA_ERROR_BACKEND_MISMATCH, "not a Vulkan buffer");
    const efla_vk_native_buffer *native = native_buffer;
    if (!native->buffer)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "VkBuffer is VK_NULL_HANDLE");
    if (native->offset % 4)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "wrapped VkBuffer offset %llu is not a multiple of 4",
                          (unsigned long long)native->offset);
    efla_backend_buffer *buf = NULL;
    efla_status status = new_buffer(ctx, &buf);
    if (status != EFLA_SUCCESS) return status;
    buf->buffer = native->buffer;
    buf->base = native->offset;
    buf->extent = native->offset + round_up4(size);
    buf->size = size;
    *out = buf;
    return EFLA_SUCCESS;
}

void efla_vk_buffer_destroy(efla_backend_context *ctx, efla_backend_buffer *buf) {
    if (buf->owned) {
        efla_vk_wait_all(ctx); /* efla's own work may still use it */
        efla_vk_raw_buffer raw = {buf->buffer, buf->extent, buf->memory};
        efla_vk_raw_destroy(ctx, &raw);
    }
    efla_host_free(ctx->host, buf);
}

static efla_status ensure_staging(efla_backend_context *ctx, uint64_t size) {
    VkDeviceSize want = size < STAGING_MAX ? round_up4(size) : STAGING_MAX;
    if (ctx->staging.buffer && ctx->staging.size >= want) return EFLA_SUCCESS;
    efla_status status = efla_vk_wait_all(ctx);
    if (status != EFLA_SUCCESS) return status;
    efla_vk_raw_destroy(ctx, &ctx->staging);
    if (want < (1u << 20)) want = 1u << 20;
    return efla_vk_raw_create(
        ctx, want, VK_BUFFER_USAGE_TRANSFER_SRC_BIT | VK_BUFFER_USAGE_TRANSFER_DST_BIT,
        VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT,
        VK_MEMORY_PROPERTY_HOST_COHERENT_BIT | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, &ctx->staging);
}

/* Orders a transfer after every earlier compute or transfer access. */
static void transfer_barrier(efla_backend_context *ctx, VkCommandBuffer cmd) {
    VkMemoryBarrier barrier = {
        .sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
        .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT,
        .dstAccessMask = VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT};
    ctx->fn.vkCmdPipelineBarrier(
        cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT,
        VK_PIPELINE_STAGE_TRANSFER_BIT, 0, 1, &barrier, 0, NULL, 0, NULL);
}

static efla_status staging_sync(efla_backend_context *ctx, bool to_device) {
    if (ctx->staging.memory.coherent) return EFLA_SUCCESS;
    VkMappedMemoryRange range = {.sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE,
                                 .memory = ctx->staging.memory.memory,
                                 .offset = ctx->staging.memory.offset,
                                 .size = ctx->staging.memory.size};
    VkResult result = to_device ? ctx->fn.vkFlushMappedMemoryRanges(ctx->device, 1, &range)
                                : ctx->fn.vkInvalidateMappedMemoryRanges(ctx->device, 1, &range);
    if (result != VK_SUCCESS) return efla_vk_fail(ctx, result, "mapping staging memory");
    return EFLA_SUCCESS;
}

/* One staged copy of up to the staging size. */
static efla_status copy_piece(efla_backend_context *ctx, efla_backend_buffer *buf, uint64_t offset,
                              void *host, uint64_t size, bool upload) {
    if (upload) {
        memcpy(ctx->staging.memory.mapped, host, (size_t)size);
        efla_status status = staging_sync(ctx, true);
        if (status != EFLA_SUCCESS) return status;
    }
    efla_vk_slot *slot;
    efla_status status = efla_vk_slot_begin(ctx, &slot);
    if (status != EFLA_SUCCESS) return status;
    transfer_barrier(ctx, slot->cmd);
    VkBufferCopy region = {upload ? 0 : buf->base + offset, upload ? buf->base + offset : 0, size};
    if (upload)
        ctx->fn.vkCmdCopyBuffer(slot->cmd, ctx->staging.buffer, buf->buffer, 1, &region);
    else
        ctx->fn.vkCmdCopyBuffer(slot->cmd, buf->buffer, ctx->staging.buffer, 1, &region);
    if (!upload) {
        VkMemoryBarrier barrier = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                                   .srcAccessMask = VK_ACCESS_TRANSFER_WRITE_BIT,
                                   .dstAccessMask = VK_ACCESS_HOST_READ_BIT};
        ctx->fn.vkCmdPipelineBarrier(slot->cmd, VK_PIPELINE_STAGE_TRANSFER_BIT,
                                     VK_PIPELINE_STAGE_HOST_BIT, 0, 1, &barrier, 0, NULL, 0, NULL);
    }
    status = efla_vk_slot_submit(ctx, slot, true);
    if (status != EFLA_SUCCESS || upload) return status;
    status = staging_sync(ctx, false);
    if (status == EFLA_SUCCESS) memcpy(host, ctx->staging.memory.mapped, (size_t)size);
    return status;
}

static efla_status copy(efla_backend_context *ctx, efla_backend_buffer *buf, uint64_t offset,
                        void *host, uint64_t size, bool upload) {
    efla_status status = ensure_staging(ctx, size);
    for (uint64_t done = 0; status == EFLA_SUCCESS && done < size;) {
        uint64_t piece = size - done < ctx->staging.size ? size - done : ctx->staging.size;
        status = copy_piece(ctx, buf, offset + done, (char *)host + done, piece, upload);
        done += piece;
    }
    return status;
}

efla_status efla_vk_buffer_upload(efla_backend_context *ctx, efla_backend_buffer *buf,
                                  uint64_t offset, const void *src, uint64_t size) {
    return copy(ctx, buf, offset, (void *)src, size, true);
}

efla_status efla_vk_buffer_download(efla_backend_context *ctx, efla_backend_buffer *buf,
                                    uint64_t offset, void *dst, uint64_t size) {
    return copy(ctx, buf, offset, dst, size, false);
}
