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
 * (vkCmdUpdateBuffer into ctx->param_buffer), then the dispatches with push
 * descriptors, inserting a compute barrier wherever a dispatch's bindings
 * overlap an earlier one's since the last barrier (at least one of them
 * writing). ctx->param_buffer must hold plan->blob_size bytes. Records nothing
 * for an empty plan. */
efla_status efla_vk_record_plan(efla_backend_context *ctx, const efla_vk_plan *plan,
                                VkCommandBuffer cmd, efla_vk_scratch_target scratch);

#endif
