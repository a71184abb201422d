/* Whether a device can run the cooperative-matrix path (see vk_coopmat.h). */
#include "backends/vulkan/vk_coopmat.h"

#include "backends/vulkan/vk_internal.h"

#include <stdlib.h>
#include <string.h>

/* VK_KHR_cooperative_matrix, mirrored: the Vulkan headers on Debian 12
 * (1.3.239) predate it. Values from the Vulkan registry. */
#define STRUCTURE_TYPE_COOPMAT_FEATURES ((VkStructureType)1000506000)
#define STRUCTURE_TYPE_COOPMAT_PROPERTIES ((VkStructureType)1000506001)
#define STRUCTURE_TYPE_COOPMAT2_FEATURES ((VkStructureType)1000593000)
#define COMPONENT_FLOAT16 0
#define COMPONENT_FLOAT32 1
#define SCOPE_SUBGROUP 3
#define KERNEL_WORKGROUP 128u /* vk_tiles_coopmat.c */

typedef struct coopmat_properties {
    VkStructureType sType;
    void *pNext;
    uint32_t MSize, NSize, KSize;
    int32_t AType, BType, CType, ResultType;
    VkBool32 saturatingAccumulation;
    int32_t scope;
} coopmat_properties;

typedef VkResult(VKAPI_PTR *get_properties_fn)(VkPhysicalDevice, uint32_t *, coopmat_properties *);

#ifdef EFLA_VK_HAVE_COOPMAT
extern const unsigned char efla_vk_spirv_chunk_prep_cm[];
extern const size_t efla_vk_spirv_chunk_prep_cm_size;
extern const unsigned char efla_vk_spirv_chunk_scan_cm[];
extern const size_t efla_vk_spirv_chunk_scan_cm_size;
extern const unsigned char efla_vk_spirv_chunk_scan_slab_cm[];
extern const size_t efla_vk_spirv_chunk_scan_slab_cm_size;
extern const unsigned char efla_vk_spirv_chunk_out_cm[];
extern const size_t efla_vk_spirv_chunk_out_cm_size;
#endif
#ifdef EFLA_VK_HAVE_COOPMAT2
extern const unsigned char efla_vk_spirv_chunk_scan_slab_cm2[];
extern const size_t efla_vk_spirv_chunk_scan_slab_cm2_size;
#endif

void *efla_vk_coopmat_features(efla_vk_coopmat_enable *enable, void *next) {
    memset(enable, 0, sizeof *enable);
    enable->memory_model = (VkPhysicalDeviceVulkanMemoryModelFeatures){
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_MEMORY_MODEL_FEATURES,
        .pNext = next,
        .vulkanMemoryModel = VK_TRUE};
    enable->float16 = (VkPhysicalDeviceShaderFloat16Int8Features){
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SHADER_FLOAT16_INT8_FEATURES,
        .pNext = &enable->memory_model,
        .shaderFloat16 = VK_TRUE};
    enable->coopmat.sType = STRUCTURE_TYPE_COOPMAT_FEATURES;
    enable->coopmat.pNext = &enable->float16;
    enable->coopmat.cooperativeMatrix = VK_TRUE;
    return &enable->coopmat;
}

static bool features_present(const efla_vk_instance_fns *fns, VkPhysicalDevice device) {
    efla_vk_coopmat_enable query;
    VkPhysicalDeviceFeatures2 features = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                          .pNext = efla_vk_coopmat_features(&query, NULL)};
    query.coopmat.cooperativeMatrix = VK_FALSE;
    query.float16.shaderFloat16 = VK_FALSE;
    query.memory_model.vulkanMemoryModel = VK_FALSE;
    fns->vkGetPhysicalDeviceFeatures2(device, &features);
    return query.coopmat.cooperativeMatrix && query.float16.shaderFloat16 &&
           query.memory_model.vulkanMemoryModel;
}

/* The kernels reduce over subgroups (max, sum; row sums by shuffles) and
 * size their per-subgroup registers and stages for subgroups of 32 or 64
 * invocations. */
static bool subgroups_fit(const efla_vk_instance_fns *fns, VkPhysicalDevice device) {
    VkPhysicalDeviceSubgroupProperties subgroup = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceProperties2 properties = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &subgroup};
    fns->vkGetPhysicalDeviceProperties2(device, &properties);
    const VkSubgroupFeatureFlags needed = VK_SUBGROUP_FEATURE_BASIC_BIT |
                                          VK_SUBGROUP_FEATURE_ARITHMETIC_BIT |
                                          VK_SUBGROUP_FEATURE_SHUFFLE_BIT;
    return (subgroup.subgroupSize == 32 || subgroup.subgroupSize == 64) &&
           (subgroup.supportedStages & VK_SHADER_STAGE_COMPUTE_BIT) &&
           (subgroup.supportedOperations & needed) == needed;
}

/* The device multiplies 16 x 16 x 16 f16 tiles into f32 at subgroup scope. */
static bool shape_offered(const efla_vk_instance_fns *fns, VkPhysicalDevice device) {
    get_properties_fn get;
    PFN_vkVoidFunction raw = fns->vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR;
    memcpy(&get, &raw, sizeof get);
    uint32_t count = 0;
    if (get(device, &count, NULL) != VK_SUCCESS || count == 0) return false;
    coopmat_properties *list = calloc(count, sizeof *list);
    if (!list) return false;
    for (uint32_t i = 0; i < count; ++i)
        list[i].sType = STRUCTURE_TYPE_COOPMAT_PROPERTIES;
    bool found = false;
    VkResult result = get(device, &count, list);
    for (uint32_t i = 0; (result == VK_SUCCESS || result == VK_INCOMPLETE) && i < count; ++i) {
        const coopmat_properties *p = &list[i];
        found |= p->MSize == 16 && p->NSize == 16 && p->KSize == 16 &&
                 p->AType == COMPONENT_FLOAT16 && p->BType == COMPONENT_FLOAT16 &&
                 p->CType == COMPONENT_FLOAT32 && p->ResultType == COMPONENT_FLOAT32 &&
                 !p->saturatingAccumulation && p->scope == SCOPE_SUBGROUP;
    }
    free(list);
    return found;
}

static const char *missing(const efla_vk_instance_fns *fns, VkPhysicalDevice device,
                           const efla_vk_caps *caps) {
    if (!efla_vk_coopmat_spirv(EFLA_VK_SCAN_COOPMAT, &(size_t){0}))
        return "this build has no cooperative-matrix kernels (no GL_KHR_cooperative_matrix "
               "compiler was found)";
    if (!caps->cooperative_matrix_khr) return "the device lacks VK_KHR_cooperative_matrix";
    if (caps->api_version < VK_API_VERSION_1_2) return "the device supports only Vulkan 1.1";
    if (!fns->vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR)
        return "the Vulkan loader lacks vkGetPhysicalDeviceCooperativeMatrixPropertiesKHR";
    if (caps->subgroup_size == 0 || KERNEL_WORKGROUP % caps->subgroup_size != 0)
        return "its subgroup size does not divide the kernels' workgroup";
    if (!subgroups_fit(fns, device))
        return "its subgroups are not of 32 or 64 invocations with arithmetic and shuffle "
               "operations in compute shaders";
    if (!features_present(fns, device))
        return "the device lacks cooperativeMatrix, shaderFloat16 or vulkanMemoryModel";
    if (!shape_offered(fns, device))
        return "the device offers no 16x16x16 f16 x f16 -> f32 subgroup cooperative matrix";
    return NULL;
}

void *efla_vk_coopmat2_features_chain(efla_vk_coopmat2_features *enable, void *next) {
    memset(enable, 0, sizeof *enable);
    enable->sType = STRUCTURE_TYPE_COOPMAT2_FEATURES;
    enable->pNext = next;
    enable->cooperativeMatrixConversions = VK_TRUE;
    return enable;
}

/* The EFLA_CM2 slab scan runs where the KHR path does, the device has the
 * extension (caps->coopmat2 on entry) with its conversions, Vulkan 1.3 takes
 * its SPIR-V 1.6, and this build has it. */
static bool coopmat2_usable(const efla_vk_instance_fns *fns, VkPhysicalDevice device,
                            const efla_vk_caps *caps) {
    if (!caps->coopmat || !caps->coopmat2 || caps->api_version < VK_API_VERSION_1_3 ||
        !efla_vk_coopmat2_spirv(EFLA_VK_SCAN_SLAB_COOPMAT, &(size_t){0}))
        return false;
    efla_vk_coopmat2_features query;
    VkPhysicalDeviceFeatures2 features = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                          .pNext = efla_vk_coopmat2_features_chain(&query, NULL)};
    query.cooperativeMatrixConversions = VK_FALSE;
    fns->vkGetPhysicalDeviceFeatures2(device, &features);
    return query.cooperativeMatrixConversions;
}

void efla_vk_coopmat_query(const efla_vk_instance_fns *fns, VkPhysicalDevice device,
                           efla_vk_caps *caps) {
    caps->coopmat_missing = missing(fns, device, caps);
    caps->coopmat = caps->coopmat_missing == NULL;
    caps->coopmat2 = coopmat2_usable(fns, device, caps);
}

const void *efla_vk_coopmat2_spirv(uint32_t kernel, size_t *size) {
#ifdef EFLA_VK_HAVE_COOPMAT2
    if (kernel == EFLA_VK_SCAN_SLAB_COOPMAT) {
        *size = efla_vk_spirv_chunk_scan_slab_cm2_size;
        return efla_vk_spirv_chunk_scan_slab_cm2;
    }
#else
    (void)kernel;
#endif
    *size = 0;
    return NULL;
}

const void *efla_vk_coopmat_spirv(uint32_t kernel, size_t *size) {
#ifdef EFLA_VK_HAVE_COOPMAT
    if (kernel == EFLA_VK_PREP_COOPMAT) {
        *size = efla_vk_spirv_chunk_prep_cm_size;
        return efla_vk_spirv_chunk_prep_cm;
    }
    if (kernel == EFLA_VK_SCAN_COOPMAT) {
        *size = efla_vk_spirv_chunk_scan_cm_size;
        return efla_vk_spirv_chunk_scan_cm;
    }
    if (kernel == EFLA_VK_SCAN_SLAB_COOPMAT) {
        *size = efla_vk_spirv_chunk_scan_slab_cm_size;
        return efla_vk_spirv_chunk_scan_slab_cm;
    }
    if (kernel == EFLA_VK_OUT_COOPMAT) {
        *size = efla_vk_spirv_chunk_out_cm_size;
        return efla_vk_spirv_chunk_out_cm;
    }
#else
    (void)kernel;
#endif
    *size = 0;
    return NULL;
}
