/* Recording a planned forward into a command buffer. */
#ifndef EFLA_VK_RECORD_H
#define EFLA_VK_RECORD_H

#include "backends/vulkan/vk_plan.h"

/* Where the plan's scratch regions live. */
typedef struct efla_vk_scratch_target {
    VkBuffer buffer;
    VkDeviceSize offset;
} efla_vk_scratch_target;

/* Records: a leading global barrier, the parameter upload
 * (vkCmdUpdateBuffer into ctx->param_buffer), then the dispatches, inserting
 * a compute barrier wherever a dispatch's bindings overlap an earlier one's
 * since the last barrier (at least one of them writing). Bindings are push
 * descriptors when ctx->limits.push_descriptors, else one descriptor set per
 * dispatch from `sets`, tagged `tag`; the caller keeps them until the
 * command buffer can no longer run.
 * ctx->param_buffer must hold plan->blob_size bytes. Records nothing for an
 * empty plan; a failure records nothing at all. With `log` (efla's own
 * timed forwards), a timestamp follows the last dispatch of every stage. */
efla_status efla_vk_record_plan(efla_backend_context *ctx, const efla_vk_plan *plan,
                                VkCommandBuffer cmd, efla_vk_scratch_target scratch,
                                efla_vk_set_arena *sets, uint64_t tag, efla_vk_stage_log *log);

#endif
