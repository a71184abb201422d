/* Forward and stage timestamps (see vk_profile.h). A BOTTOM_OF_PIPE stamp
 * is written once every earlier command has finished, so a stage's time
 * runs from the previous stamp to its own: work that overlaps across a
 * stage boundary counts for the later stage. */
#include "backends/vulkan/vk_profile.h"

#include "backends/vulkan/vk_context.h"
#include "core/error.h"

#include <stdio.h>
#include <string.h>

static uint32_t slot_query(const efla_backend_context *ctx, const efla_vk_slot *slot) {
    return EFLA_VK_SLOT_QUERIES * (uint32_t)(slot - ctx->slots);
}

void efla_vk_profile_begin(efla_backend_context *ctx, efla_vk_slot *slot) {
    uint32_t base = slot_query(ctx, slot);
    ctx->fn.vkCmdResetQueryPool(slot->cmd, ctx->query_pool, base, EFLA_VK_SLOT_QUERIES);
    ctx->fn.vkCmdWriteTimestamp(slot->cmd, VK_PIPELINE_STAGE_TOP_OF_PIPE_BIT, ctx->query_pool,
                                base);
    slot->log = (efla_vk_stage_log){.first_query = base + 2};
    slot->timed = true;
}

void efla_vk_profile_dispatch(efla_backend_context *ctx, VkCommandBuffer cmd,
                              efla_vk_stage_log *log, uint32_t kernel, bool stage_ends) {
    log->pending++;
    /* The last stamp is kept for the forward's final stage. */
    if (!stage_ends || log->count + 1 >= EFLA_VK_MAX_STAGES) return;
    ctx->fn.vkCmdWriteTimestamp(cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, ctx->query_pool,
                                log->first_query + log->count);
    log->kernel[log->count] = kernel;
    log->dispatches[log->count++] = log->pending;
    log->pending = 0;
}

void efla_vk_profile_end(efla_backend_context *ctx, efla_vk_slot *slot) {
    efla_vk_stage_log *log = &slot->log;
    if (log->pending) { /* stages past the stamps' capacity: one entry */
        ctx->fn.vkCmdWriteTimestamp(slot->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT,
                                    ctx->query_pool, log->first_query + log->count);
        log->kernel[log->count] = log->count ? log->kernel[log->count - 1] : EFLA_VK_PREP;
        log->dispatches[log->count++] = log->pending;
        log->pending = 0;
    }
    ctx->fn.vkCmdWriteTimestamp(slot->cmd, VK_PIPELINE_STAGE_BOTTOM_OF_PIPE_BIT, ctx->query_pool,
                                slot_query(ctx, slot) + 1);
}

static const char *stage_name(uint32_t kernel) {
    switch (kernel) {
    case EFLA_VK_PREP:
    case EFLA_VK_PREP_COOPMAT: return "prepare";
    case EFLA_VK_SCAN:
    case EFLA_VK_SCAN_COOPMAT:
    case EFLA_VK_SCAN_SLAB_COOPMAT:
    case EFLA_VK_SCAN_JOIN: return "state";
    case EFLA_VK_OUT:
    case EFLA_VK_OUT_COOPMAT: return "output";
    default: return "recurrent";
    }
}

bool efla_vk_same_stage(uint32_t a, uint32_t b) { return stage_name(a) == stage_name(b); }

/* The last timed slot's stamps (start, end, stage ends), in ms from the start. */
static efla_status slot_stamps(efla_backend_context *ctx, const efla_vk_slot *slot, double *ms,
                               uint32_t count) {
    uint64_t stamps[EFLA_VK_SLOT_QUERIES];
    VkResult result = ctx->fn.vkGetQueryPoolResults(
        ctx->device, ctx->query_pool, slot_query(ctx, slot), count, sizeof stamps, stamps,
        sizeof stamps[0], VK_QUERY_RESULT_64_BIT | VK_QUERY_RESULT_WAIT_BIT);
    if (result != VK_SUCCESS) return efla_vk_fail(ctx, result, "vkGetQueryPoolResults");
    uint64_t mask =
        ctx->caps.timestamp_bits >= 64 ? UINT64_MAX : (1ull << ctx->caps.timestamp_bits) - 1;
    double period_ms = ctx->caps.properties.limits.timestampPeriod * 1e-6;
    for (uint32_t i = 0; i < count; ++i)
        ms[i] = (double)((stamps[i] - stamps[0]) & mask) * period_ms;
    return EFLA_SUCCESS;
}

efla_status efla_vk_profile_keep(efla_backend_context *ctx) {
    const efla_vk_slot *slot = &ctx->slots[ctx->last_timed_slot];
    ctx->kept_count = 0;
    efla_status status = slot_stamps(ctx, slot, ctx->kept_ms, 2 + slot->log.count);
    if (status != EFLA_SUCCESS) return status;
    ctx->kept_log = slot->log;
    ctx->kept_count = 2 + slot->log.count;
    return EFLA_SUCCESS;
}

/* The last timed forward's stamps and stage log (count 0: none yet). */
static efla_status read_stamps(efla_backend_context *ctx, double *ms, uint32_t *count,
                               efla_vk_stage_log *log) {
    if (!ctx->query_pool)
        return efla_error(EFLA_ERROR_UNSUPPORTED,
                          ctx->caps.timestamp_bits
                              ? "create the context with EFLA_CONTEXT_PROFILING"
                              : "the device's queue has no timestamps");
    efla_status status = efla_vk_synchronize(ctx);
    if (status != EFLA_SUCCESS) return status;
    if (ctx->last_timed_slot >= 0) {
        const efla_vk_slot *slot = &ctx->slots[ctx->last_timed_slot];
        *count = 2 + slot->log.count;
        *log = slot->log;
        return slot_stamps(ctx, slot, ms, *count);
    }
    *count = ctx->kept_count;
    *log = ctx->kept_log;
    memcpy(ms, ctx->kept_ms, sizeof ctx->kept_ms);
    return EFLA_SUCCESS;
}

efla_status efla_vk_last_forward_ms(efla_backend_context *ctx, double *out_ms) {
    double ms[EFLA_VK_SLOT_QUERIES];
    uint32_t count = 0;
    efla_vk_stage_log log = {0};
    efla_status status = read_stamps(ctx, ms, &count, &log);
    if (status != EFLA_SUCCESS) return status;
    *out_ms = count ? ms[1] : 0.0;
    return EFLA_SUCCESS;
}

/* Stages of one name are summed, in the order they first ran. */
efla_status efla_vk_last_forward_stages(efla_backend_context *ctx, efla_stage_time *stages,
                                        uint32_t capacity, uint32_t *out_count) {
    double ms[EFLA_VK_SLOT_QUERIES];
    uint32_t count = 0;
    efla_vk_stage_log log = {0};
    efla_status status = read_stamps(ctx, ms, &count, &log);
    if (status != EFLA_SUCCESS || count == 0) return status;
    efla_stage_time found[EFLA_VK_MAX_STAGES];
    uint32_t names = 0;
    for (uint32_t i = 0; i < log.count; ++i) {
        const char *name = stage_name(log.kernel[i]);
        uint32_t n = 0;
        while (n < names && strcmp(found[n].name, name) != 0)
            ++n;
        if (n == names) found[names++] = (efla_stage_time){.ms = 0.0};
        snprintf(found[n].name, sizeof found[n].name, "%s", name);
        found[n].ms += ms[2 + i] - (i ? ms[1 + i] : 0.0);
        found[n].dispatches += log.dispatches[i];
    }
    for (uint32_t n = 0; n < names && n < capacity; ++n)
        stages[n] = found[n];
    *out_count = names;
    return EFLA_SUCCESS;
}
