/* Recording dispatches with exactly the barriers their bindings need. */
#include "backends/vulkan/vk_record.h"

#include "backends/vulkan/vk_profile.h"

#include "core/context.h"
#include "core/error.h"

#include <string.h>

#define UPDATE_LIMIT 65536u   /* vkCmdUpdateBuffer's maximum size */
#define DUMMY_SLOT 256u       /* bytes of the dummy buffer per dummy binding */
#define TRACKED_ACCESSES 512u /* accesses remembered between barriers */

typedef struct access {
    VkBuffer buffer;
    VkDeviceSize start, end;
    bool write;
} access;

typedef struct recorder {
    efla_backend_context *ctx;
    const efla_vk_plan *plan;
    VkCommandBuffer cmd;
    efla_vk_scratch_target scratch;
    access accesses[TRACKED_ACCESSES];
    uint32_t access_count;
    uint32_t next_dummy;
    VkPipeline bound;
    VkDescriptorSet *sets; /* one per dispatch; NULL with push descriptors */
} recorder;

static void memory_barrier(recorder *r, VkPipelineStageFlags src_stage, VkAccessFlags src_access,
                           VkPipelineStageFlags dst_stage, VkAccessFlags dst_access) {
    VkMemoryBarrier barrier = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                               .srcAccessMask = src_access,
                               .dstAccessMask = dst_access};
    r->ctx->fn.vkCmdPipelineBarrier(r->cmd, src_stage, dst_stage, 0, 1, &barrier, 0, NULL, 0, NULL);
}

static void compute_barrier(recorder *r) {
    memory_barrier(r, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
                   VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                   VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
    r->access_count = 0;
}

/* Orders this forward after earlier compute/transfer work, then uploads
 * the parameter blob. */
static void record_prologue(recorder *r) {
    const VkPipelineStageFlags stages =
        VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT | VK_PIPELINE_STAGE_TRANSFER_BIT;
    memory_barrier(r, stages, VK_ACCESS_SHADER_WRITE_BIT | VK_ACCESS_TRANSFER_WRITE_BIT, stages,
                   VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT |
                       VK_ACCESS_TRANSFER_READ_BIT | VK_ACCESS_TRANSFER_WRITE_BIT);
    for (uint64_t offset = 0; offset < r->plan->blob_size; offset += UPDATE_LIMIT) {
        uint64_t size = r->plan->blob_size - offset;
        if (size > UPDATE_LIMIT) size = UPDATE_LIMIT;
        r->ctx->fn.vkCmdUpdateBuffer(r->cmd, r->ctx->param_buffer.buffer, offset, size,
                                     r->plan->blob + offset);
    }
    memory_barrier(r, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
                   VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT);
}

static VkDescriptorBufferInfo resolve(recorder *r, const efla_vk_window *w) {
    switch (w->source) {
    case EFLA_VK_SOURCE_TENSOR: return (VkDescriptorBufferInfo){w->buffer, w->offset, w->range};
    case EFLA_VK_SOURCE_PARAMS:
        return (VkDescriptorBufferInfo){r->ctx->param_buffer.buffer, w->offset, w->range};
    case EFLA_VK_SOURCE_SCRATCH:
        return (VkDescriptorBufferInfo){
            r->scratch.buffer, r->scratch.offset + r->plan->region_offset[w->region] + w->offset,
            w->range};
    default: {
        /* Every dummy binding gets its own slot so that unrelated dispatches
         * never appear to touch the same bytes. */
        VkDeviceSize slots = r->ctx->dummy.size / DUMMY_SLOT;
        VkDeviceSize offset = (r->next_dummy++ % slots) * DUMMY_SLOT;
        return (VkDescriptorBufferInfo){r->ctx->dummy.buffer, offset, DUMMY_SLOT};
    }
    }
}

static bool conflicts(const recorder *r, const VkDescriptorBufferInfo *info, bool write) {
    for (uint32_t i = 0; i < r->access_count; ++i) {
        const access *a = &r->accesses[i];
        if (a->buffer == info->buffer && a->start < info->offset + info->range &&
            info->offset < a->end && (write || a->write))
            return true;
    }
    return false;
}

/* Push descriptors, or the dispatch's own descriptor set, written and bound. */
static void bind_descriptors(recorder *r, uint32_t index, VkWriteDescriptorSet *writes) {
    const efla_vk_device_fns *fn = &r->ctx->fn;
    if (!r->sets) {
        fn->vkCmdPushDescriptorSetKHR(r->cmd, VK_PIPELINE_BIND_POINT_COMPUTE,
                                      r->ctx->pipeline_layout, 0, EFLA_VK_BIND_COUNT, writes);
        return;
    }
    for (uint32_t b = 0; b < EFLA_VK_BIND_COUNT; ++b)
        writes[b].dstSet = r->sets[index];
    fn->vkUpdateDescriptorSets(r->ctx->device, EFLA_VK_BIND_COUNT, writes, 0, NULL);
    fn->vkCmdBindDescriptorSets(r->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, r->ctx->pipeline_layout, 0,
                                1, &r->sets[index], 0, NULL);
}

static efla_status record_dispatch(recorder *r, uint32_t index) {
    const efla_vk_dispatch *d = &r->plan->dispatches[index];
    VkPipeline pipeline;
    efla_status status = efla_vk_pipeline_get(r->ctx, &d->key, &pipeline);
    if (status != EFLA_SUCCESS) return status;
    VkDescriptorBufferInfo infos[EFLA_VK_BIND_COUNT];
    bool hazard = r->access_count + EFLA_VK_BIND_COUNT > TRACKED_ACCESSES;
    for (int b = 0; b < EFLA_VK_BIND_COUNT; ++b) {
        infos[b] = resolve(r, &d->bind[b]);
        hazard = hazard || conflicts(r, &infos[b], d->bind[b].write);
    }
    if (hazard) compute_barrier(r);
    for (int b = 0; b < EFLA_VK_BIND_COUNT; ++b)
        r->accesses[r->access_count++] = (access){
            infos[b].buffer, infos[b].offset, infos[b].offset + infos[b].range, d->bind[b].write};
    VkWriteDescriptorSet writes[EFLA_VK_BIND_COUNT];
    for (uint32_t b = 0; b < EFLA_VK_BIND_COUNT; ++b)
        writes[b] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                           .dstBinding = b,
                                           .descriptorCount = 1,
                                           .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                           .pBufferInfo = &infos[b]};
    const efla_vk_device_fns *fn = &r->ctx->fn;
    if (pipeline != r->bound) {
        fn->vkCmdBindPipeline(r->cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline);
        r->bound = pipeline;
    }
    bind_descriptors(r, index, writes);
    fn->vkCmdPushConstants(r->cmd, r->ctx->pipeline_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0,
                           sizeof d->push, d->push);
    fn->vkCmdDispatch(r->cmd, d->groups[0], d->groups[1], d->groups[2]);
    return EFLA_SUCCESS;
}

/* Pipelines and descriptor sets before any command, so that a failure
 * leaves the command buffer untouched. */
static efla_status prepare(recorder *r, efla_vk_set_arena *sets, uint64_t tag) {
    efla_backend_context *ctx = r->ctx;
    for (uint32_t i = 0; i < r->plan->dispatch_count; ++i) {
        VkPipeline pipeline;
        efla_status status = efla_vk_pipeline_get(ctx, &r->plan->dispatches[i].key, &pipeline);
        if (status != EFLA_SUCCESS) return status;
    }
    if (ctx->limits.push_descriptors) return EFLA_SUCCESS;
    r->sets = efla_host_alloc(ctx->host, r->plan->dispatch_count * sizeof *r->sets);
    if (!r->sets) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    return efla_vk_sets_allocate(&ctx->fn, ctx->device, ctx->host, sets, ctx->set_layout, tag,
                                 r->plan->dispatch_count, r->sets);
}

efla_status efla_vk_record_plan(efla_backend_context *ctx, const efla_vk_plan *plan,
                                VkCommandBuffer cmd, efla_vk_scratch_target scratch,
                                efla_vk_set_arena *sets, uint64_t tag, efla_vk_stage_log *log) {
    if (plan->dispatch_count == 0) return EFLA_SUCCESS;
    recorder *r = efla_host_alloc(ctx->host, sizeof *r);
    if (!r) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
    memset(r, 0, sizeof *r);
    r->ctx = ctx;
    r->plan = plan;
    r->cmd = cmd;
    r->scratch = scratch;
    efla_status status = prepare(r, sets, tag);
    if (status == EFLA_SUCCESS) record_prologue(r);
    for (uint32_t i = 0; i < plan->dispatch_count && status == EFLA_SUCCESS; ++i) {
        status = record_dispatch(r, i);
        uint32_t kernel = plan->dispatches[i].key.kernel;
        if (log && status == EFLA_SUCCESS)
            efla_vk_profile_dispatch(
                ctx, cmd, log, kernel,
                i + 1 == plan->dispatch_count ||
                    !efla_vk_same_stage(kernel, plan->dispatches[i + 1].key.kernel));
    }
    efla_host_free(ctx->host, r->sets);
    efla_host_free(ctx->host, r);
    return status;
}
