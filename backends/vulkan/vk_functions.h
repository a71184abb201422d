/*
 * The Vulkan entry points efla uses, as X-macro lists, and the tables they
 * are loaded into. Nothing links libvulkan: vkGetInstanceProcAddr comes from
 * the dlopen'd loader (or from the host, for interop) and every other entry
 * point is fetched per instance and per device.
 */
#ifndef EFLA_VK_FUNCTIONS_H
#define EFLA_VK_FUNCTIONS_H

#ifndef VK_NO_PROTOTYPES
#define VK_NO_PROTOTYPES
#endif
#include <vulkan/vulkan_core.h>

#include "efla/efla.h"

#define EFLA_VK_INSTANCE_FUNCTIONS(X)                                                              \
    X(vkDestroyInstance)                                                                           \
    X(vkEnumeratePhysicalDevices)                                                                  \
    X(vkGetPhysicalDeviceProperties)                                                               \
    X(vkGetPhysicalDeviceProperties2)                                                              \
    X(vkGetPhysicalDeviceFeatures2)                                                                \
    X(vkGetPhysicalDeviceMemoryProperties)                                                         \
    X(vkGetPhysicalDeviceQueueFamilyProperties)                                                    \
    X(vkEnumerateDeviceExtensionProperties)                                                        \
    X(vkCreateDevice)                                                                              \
    X(vkGetDeviceProcAddr)

#define EFLA_VK_DEVICE_FUNCTIONS(X)                                                                \
    X(vkDestroyDevice)                                                                             \
    X(vkGetDeviceQueue)                                                                            \
    X(vkQueueSubmit)                                                                               \
    X(vkCreateBuffer)                                                                              \
    X(vkDestroyBuffer)                                                                             \
    X(vkGetBufferMemoryRequirements)                                                               \
    X(vkBindBufferMemory)                                                                          \
    X(vkAllocateMemory)                                                                            \
    X(vkFreeMemory)                                                                                \
    X(vkMapMemory)                                                                                 \
    X(vkUnmapMemory)                                                                               \
    X(vkFlushMappedMemoryRanges)                                                                   \
    X(vkInvalidateMappedMemoryRanges)                                                              \
    X(vkCreateCommandPool)                                                                         \
    X(vkDestroyCommandPool)                                                                        \
    X(vkAllocateCommandBuffers)                                                                    \
    X(vkFreeCommandBuffers)                                                                        \
    X(vkBeginCommandBuffer)                                                                        \
    X(vkEndCommandBuffer)                                                                          \
    X(vkResetCommandBuffer)                                                                        \
    X(vkCreateFence)                                                                               \
    X(vkDestroyFence)                                                                              \
    X(vkWaitForFences)                                                                             \
    X(vkResetFences)                                                                               \
    X(vkCreateShaderModule)                                                                        \
    X(vkDestroyShaderModule)                                                                       \
    X(vkCreateDescriptorSetLayout)                                                                 \
    X(vkDestroyDescriptorSetLayout)                                                                \
    X(vkCreatePipelineLayout)                                                                      \
    X(vkDestroyPipelineLayout)                                                                     \
    X(vkCreatePipelineCache)                                                                       \
    X(vkDestroyPipelineCache)                                                                      \
    X(vkCreateComputePipelines)                                                                    \
    X(vkDestroyPipeline)                                                                           \
    X(vkCreateQueryPool)                                                                           \
    X(vkDestroyQueryPool)                                                                          \
    X(vkGetQueryPoolResults)                                                                       \
    X(vkCmdPipelineBarrier)                                                                        \
    X(vkCmdCopyBuffer)                                                                             \
    X(vkCmdUpdateBuffer)                                                                           \
    X(vkCmdBindPipeline)                                                                           \
    X(vkCmdPushConstants)                                                                          \
    X(vkCmdDispatch)                                                                               \
    X(vkCmdWriteTimestamp)                                                                         \
    X(vkCmdResetQueryPool)                                                                         \
    X(vkCreateDescriptorPool)                                                                      \
    X(vkDestroyDescriptorPool)                                                                     \
    X(vkResetDescriptorPool)                                                                       \
    X(vkAllocateDescriptorSets)                                                                    \
    X(vkUpdateDescriptorSets)                                                                      \
    X(vkCmdBindDescriptorSets)

/* Entry points of optional extensions: NULL when the device has not enabled them. */
#define EFLA_VK_OPTIONAL_DEVICE_FUNCTIONS(X) X(vkCmdPushDescriptorSetKHR)

#define EFLA_VK_TABLE_MEMBER(name) PFN_##name name;

typedef struct efla_vk_instance_fns {
    PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr;
    EFLA_VK_INSTANCE_FUNCTIONS(EFLA_VK_TABLE_MEMBER)
    /* Optional (VK_KHR_cooperative_matrix; NULL when the loader lacks it).
     * Typed as a void function: the headers here predate the extension. */
    PFN_vkVoidFunction vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR;
} efla_vk_instance_fns;

typedef struct efla_vk_device_fns {
    EFLA_VK_DEVICE_FUNCTIONS(EFLA_VK_TABLE_MEMBER)
    EFLA_VK_OPTIONAL_DEVICE_FUNCTIONS(EFLA_VK_TABLE_MEMBER)
} efla_vk_device_fns;

/* Fills the instance table through get_proc for `instance`. */
efla_status efla_vk_load_instance_fns(PFN_vkGetInstanceProcAddr get_proc, VkInstance instance,
                                      efla_vk_instance_fns *out);
/* Fills the device table through vkGetDeviceProcAddr for `device` (optional
 * entry points may stay NULL). */
efla_status efla_vk_load_device_fns(const efla_vk_instance_fns *instance_fns, VkDevice device,
                                    efla_vk_device_fns *out);

/* A VkResult as an efla status with the message "<what> failed: <name>". */
efla_status efla_vk_check(VkResult result, const char *what);
const char *efla_vk_result_name(VkResult result);

#endif
