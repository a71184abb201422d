/* Device timestamps of efla's own forwards (EFLA_CONTEXT_PROFILING): the
 * whole forward, and the end of every stage (a run of dispatches of one
 * kernel kind), so that efla bench can say where the time goes. */
#ifndef EFLA_VK_PROFILE_H
#define EFLA_VK_PROFILE_H

#include "backends/vulkan/vk_internal.h"

/* Queries per ring slot: start, end, then one per stage end. */
#define EFLA_VK_SLOT_QUERIES (2u + EFLA_VK_MAX_STAGES)

/* Resets the slot's queries and stamps the start; `log` then collects the
 * stage ends of what is recorded into the slot. */
void efla_vk_profile_begin(efla_backend_context *ctx, efla_vk_slot *slot);
/* After dispatch `kernel` (efla_vk_kernel); `last` when nothing follows, or
 * the next dispatch's kernel is of another stage. */
void efla_vk_profile_dispatch(efla_backend_context *ctx, VkCommandBuffer cmd,
                              efla_vk_stage_log *log, uint32_t kernel, bool stage_ends);
void efla_vk_profile_end(efla_backend_context *ctx, efla_vk_slot *slot);
/* Whether two kernels belong to one stage. */
bool efla_vk_same_stage(uint32_t a, uint32_t b);

/* Copies the last timed slot's stamps into the context before the slot
 * is reused (it has completed). */
efla_status efla_vk_profile_keep(efla_backend_context *ctx);

efla_status efla_vk_last_forward_ms(efla_backend_context *ctx, double *out_ms);
efla_status efla_vk_last_forward_stages(efla_backend_context *ctx, efla_stage_time *stages,
                                        uint32_t capacity, uint32_t *out_count);

#endif
