/* The forward hooks: plan, make room, record, submit (or record only). */
#include "backends/vulkan/vk_context.h"
#include "backends/vulkan/vk_path.h"
#include "backends/vulkan/vk_plan.h"
#include "backends/vulkan/vk_profile.h"
#include "backends/vulkan/vk_record.h"

#include "core/error.h"

#include <stdio.h>

static efla_status plan_forward(efla_backend_context *ctx, const efla_forward_args *args,
                                efla_vk_plan *plan) {
    if (ctx->lost)
        return efla_error(EFLA_ERROR_DEVICE_LOST,
                          "the Vulkan device was lost earlier; destroy the context");
    return efla_vk_plan_build(&ctx->limits, args, ctx->host, plan);
}

/* Context-owned parameter buffer and (when no host scratch) scratch. */
static efla_status make_room(efla_backend_context *ctx, const efla_vk_plan *plan,
                             bool context_scratch) {
    efla_status status = efla_vk_raw_ensure(ctx, &ctx->param_buffer, plan->blob_size);
    if (status == EFLA_SUCCESS && context_scratch && plan->scratch_bytes > 0)
        status = efla_vk_raw_ensure(ctx, &ctx->scratch, plan->scratch_bytes);
    return status;
}

efla_status efla_vk_forward(efla_backend_context *ctx, const efla_forward_args *args) {
    efla_vk_plan plan;
    efla_status status = plan_forward(ctx, args, &plan);
    if (status != EFLA_SUCCESS) return status;
    if (plan.dispatch_count > 0) status = make_room(ctx, &plan, true);
    efla_vk_slot *slot = NULL;
    if (status == EFLA_SUCCESS && (plan.dispatch_count > 0 || ctx->query_pool))
        status = efla_vk_slot_begin(ctx, &slot);
    if (status == EFLA_SUCCESS && slot) {
        if (ctx->query_pool) efla_vk_profile_begin(ctx, slot);
        efla_vk_scratch_target scratch = {ctx->scratch.buffer, 0};
        status = efla_vk_record_plan(ctx, &plan, slot->cmd, scratch, &slot->sets, 0,
                                     ctx->query_pool ? &slot->log : NULL);
        if (ctx->query_pool) efla_vk_profile_end(ctx, slot);
        if (status == EFLA_SUCCESS)
            status = efla_vk_slot_submit(ctx, slot, false);
        else
            ctx->fn.vkEndCommandBuffer(slot->cmd); /* discarded: reset on next use */
    }
    efla_vk_plan_release(&plan);
    return status;
}

efla_status efla_vk_forward_query(efla_backend_context *ctx, const efla_forward_args *args,
                                  efla_forward_plan *plan) {
    plan->algorithm = efla_vk_plan_algorithm(args);
    snprintf(plan->kernel_path, sizeof plan->kernel_path, "%s",
             efla_vk_path_name((efla_vk_path)ctx->limits.path));
    return EFLA_SUCCESS;
}

efla_status efla_vk_forward_scratch_bytes(efla_backend_context *ctx, const efla_forward_args *args,
                                          uint64_t *out_bytes) {
    efla_vk_plan plan;
    efla_status status = plan_forward(ctx, args, &plan);
    if (status != EFLA_SUCCESS) return status;
    *out_bytes = plan.dispatch_count ? plan.scratch_bytes : 0;
    efla_vk_plan_release(&plan);
    return EFLA_SUCCESS;
}

static efla_status check_record_info(const efla_backend_context *ctx,
                                     const efla_vulkan_record_info *record,
                                     const efla_vk_plan *plan) {
    if (record->struct_size < sizeof *record)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "efla_vulkan_record_info struct_size %u is smaller than %zu "
                          "(use EFLA_VULKAN_RECORD_INFO_INIT)",
                          record->struct_size, sizeof *record);
    if (record->next)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT, "efla_vulkan_record_info next must be NULL");
    if (!record->command_buffer)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "efla_vulkan_record_info has no command buffer");
    if (!record->scratch_buffer || plan->dispatch_count == 0) return EFLA_SUCCESS;
    uint64_t alignment = ctx->limits.storage_alignment > 256 ? ctx->limits.storage_alignment : 256;
    if (record->scratch_offset % alignment)
        return efla_error(
            EFLA_ERROR_INVALID_ARGUMENT, "scratch_offset %llu is not a multiple of %llu",
            (unsigned long long)record->scratch_offset, (unsigned long long)alignment);
    if (record->scratch_size < plan->scratch_bytes)
        return efla_error(EFLA_ERROR_INVALID_ARGUMENT,
                          "the host scratch holds %llu bytes but this forward needs %llu",
                          (unsigned long long)record->scratch_size,
                          (unsigned long long)plan->scratch_bytes);
    return EFLA_SUCCESS;
}

efla_status efla_vk_forward_record(efla_backend_context *ctx, efla_native_kind kind,
                                   const void *native_cmd, const efla_forward_args *args) {
    if (kind != EFLA_NATIVE_VULKAN)
        return efla_error(EFLA_ERROR_BACKEND_MISMATCH, "not a Vulkan command buffer");
    const efla_vulkan_record_info *record = native_cmd;
    efla_vk_plan plan;
    efla_status status = plan_forward(ctx, args, &plan);
    if (status != EFLA_SUCCESS) return status;
    status = check_record_info(ctx, record, &plan);
    bool host_scratch = record->struct_size >= sizeof *record && record->scratch_buffer;
    if (status == EFLA_SUCCESS && plan.dispatch_count > 0) {
        ctx->recorded_native = true; /* from now on, replaced buffers are kept */
        status = make_room(ctx, &plan, !host_scratch);
    }
    if (status == EFLA_SUCCESS) {
        efla_vk_scratch_target scratch = {ctx->scratch.buffer, 0};
        if (host_scratch)
            scratch = (efla_vk_scratch_target){record->scratch_buffer, record->scratch_offset};
        status = efla_vk_record_plan(ctx, &plan, record->command_buffer, scratch,
                                     &ctx->recorded_sets, ctx->recordings++, NULL);
    }
    efla_vk_plan_release(&plan);
    return status;
}
