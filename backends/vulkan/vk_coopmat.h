/*
 * The cooperative-matrix (KHR) kernel path: whether a device can run it, and
 * what its logical device must enable. The kernels multiply 16 x 16 x 16
 * tiles of f16 operands with f32 accumulators at subgroup scope, use f16
 * arithmetic and the Vulkan memory model (as glslang's SPIR-V for
 * GL_KHR_cooperative_matrix requires). They are built only when a compiler
 * for GL_KHR_cooperative_matrix was found (backends/vulkan/coopmat.cmake).
 */
#ifndef EFLA_VK_COOPMAT_H
#define EFLA_VK_COOPMAT_H

#include "backends/vulkan/vk_caps.h"

#include <stddef.h>

/* Sets caps->coopmat, or caps->coopmat_missing to the reason it is off. */
void efla_vk_coopmat_query(const efla_vk_instance_fns *fns, VkPhysicalDevice device,
                           efla_vk_caps *caps);

/* Feature structures and extension names a device enables for the path. */
typedef struct efla_vk_coopmat_enable {
    struct {
        VkStructureType sType;
        void *pNext;
        VkBool32 cooperativeMatrix;
        VkBool32 cooperativeMatrixRobustBufferAccess;
    } coopmat;
    VkPhysicalDeviceShaderFloat16Int8Features float16;
    VkPhysicalDeviceVulkanMemoryModelFeatures memory_model;
} efla_vk_coopmat_enable;

#define EFLA_VK_COOPMAT_EXTENSION "VK_KHR_cooperative_matrix"

/* Fills `enable` and returns the head of its chain, whose tail points to `next`. */
void *efla_vk_coopmat_features(efla_vk_coopmat_enable *enable, void *next);

/* The embedded SPIR-V of a coopmat kernel (efla_vk_kernel), or NULL when
 * the kernels were not built. */
const void *efla_vk_coopmat_spirv(uint32_t kernel, size_t *size);

/* VK_NV_cooperative_matrix2, for the slab scan's EFLA_CM2 build: only its
 * conversions feature is used (an accumulator converted to an A operand). */
#define EFLA_VK_COOPMAT2_EXTENSION "VK_NV_cooperative_matrix2"

typedef struct efla_vk_coopmat2_features {
    VkStructureType sType;
    void *pNext;
    VkBool32 cooperativeMatrixWorkgroupScope;
    VkBool32 cooperativeMatrixFlexibleDimensions;
    VkBool32 cooperativeMatrixReductions;
    VkBool32 cooperativeMatrixConversions;
    VkBool32 cooperativeMatrixPerElementOperations;
    VkBool32 cooperativeMatrixTensorAddressing;
    VkBool32 cooperativeMatrixBlockLoads;
} efla_vk_coopmat2_features;

/* Fills `enable` (conversions on) and returns it, its tail pointing to `next`. */
void *efla_vk_coopmat2_features_chain(efla_vk_coopmat2_features *enable, void *next);

/* The embedded SPIR-V of the slab scan's EFLA_CM2 build, or NULL when this
 * build has none. */
const void *efla_vk_coopmat2_spirv(uint32_t kernel, size_t *size);

#endif
