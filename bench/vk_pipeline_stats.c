/* Prints what the Vulkan driver reports about a compute kernel of efla
 * (VK_KHR_pipeline_executable_properties): registers, shared and local
 * memory, binary size, as the driver names them. A diagnostic for the
 * H200 host, where no Nsight is available; not part of the library.
 * usage: vk_pipeline_stats KERNEL.spv WG DTYPE DKC CH BV RG [SCAN_Y [PARTS]]
 *   (the specialization constants of shaders/vulkan/efla_common.glsl, then
 *   efla_coopmat.glsl's SCAN_Y, 0 unless given, and the slab scan's PARTS,
 *   1 unless given)
 * build: cc -std=c11 -O2 bench/vk_pipeline_stats.c -lvulkan -o vk_pipeline_stats */
#include <vulkan/vulkan.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BINDINGS 14
#define SPEC_CONSTANTS 8

static void check(VkResult r, const char *what) {
    if (r == VK_SUCCESS) return;
    fprintf(stderr, "vk_pipeline_stats: %s failed (%d)\n", what, (int)r);
    exit(1);
}

static uint32_t *read_spirv(const char *path, size_t *bytes) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "vk_pipeline_stats: cannot open %s\n", path);
        exit(1);
    }
    fseek(f, 0, SEEK_END);
    *bytes = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint32_t *code = malloc(*bytes);
    if (!code || fread(code, 1, *bytes, f) != *bytes) exit(1);
    fclose(f);
    return code;
}

static bool has_extension(VkPhysicalDevice gpu, const char *name) {
    uint32_t count = 0;
    vkEnumerateDeviceExtensionProperties(gpu, NULL, &count, NULL);
    VkExtensionProperties *list = calloc(count, sizeof *list);
    vkEnumerateDeviceExtensionProperties(gpu, NULL, &count, list);
    bool found = false;
    for (uint32_t i = 0; i < count && !found; ++i)
        found = strcmp(list[i].extensionName, name) == 0;
    free(list);
    return found;
}

static VkDevice create_device(VkPhysicalDevice gpu) {
    VkPhysicalDevicePipelineExecutablePropertiesFeaturesKHR exec = {
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PIPELINE_EXECUTABLE_PROPERTIES_FEATURES_KHR,
        .pipelineExecutableInfo = VK_TRUE};
    struct { /* VkPhysicalDeviceCooperativeMatrixFeaturesKHR (newer headers than Debian 12's) */
        VkStructureType sType;
        void *pNext;
        VkBool32 cooperativeMatrix, cooperativeMatrixRobustBufferAccess;
    } coopmat = {(VkStructureType)1000506000, &exec, VK_TRUE, VK_FALSE};
    struct { /* VkPhysicalDeviceCooperativeMatrix2FeaturesNV: conversions only */
        VkStructureType sType;
        void *pNext;
        VkBool32 workgroup_scope, flexible_dimensions, reductions, conversions;
        VkBool32 per_element, tensor_addressing, block_loads;
    } coopmat2 = {(VkStructureType)1000593000, &coopmat, 0, 0, 0, VK_TRUE, 0, 0, 0};
    VkPhysicalDeviceVulkan12Features v12 = {.sType =
                                                VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_VULKAN_1_2_FEATURES,
                                            .pNext = &coopmat,
                                            .shaderFloat16 = VK_TRUE,
                                            .vulkanMemoryModel = VK_TRUE};
    const char *extensions[] = {"VK_KHR_pipeline_executable_properties",
                                "VK_KHR_cooperative_matrix", "VK_NV_cooperative_matrix2"};
    uint32_t extension_count = has_extension(gpu, extensions[1]) ? 2 : 1;
    if (extension_count == 1) v12.pNext = &exec;
    if (extension_count == 2 && has_extension(gpu, extensions[2])) { /* the EFLA_CM2 builds */
        extension_count = 3;
        v12.pNext = &coopmat2;
    }
    float priority = 1.0f;
    VkDeviceQueueCreateInfo queue = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                     .queueCount = 1,
                                     .pQueuePriorities = &priority};
    VkDeviceCreateInfo info = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                               .pNext = &v12,
                               .queueCreateInfoCount = 1,
                               .pQueueCreateInfos = &queue,
                               .enabledExtensionCount = extension_count,
                               .ppEnabledExtensionNames = extensions};
    VkDevice device;
    check(vkCreateDevice(gpu, &info, NULL, &device), "vkCreateDevice");
    return device;
}

static VkPipeline create_pipeline(VkDevice device, const uint32_t *code, size_t bytes,
                                  const uint32_t spec[SPEC_CONSTANTS]) {
    VkShaderModuleCreateInfo module_info = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = bytes, .pCode = code};
    VkShaderModule module;
    check(vkCreateShaderModule(device, &module_info, NULL, &module), "vkCreateShaderModule");
    VkDescriptorSetLayoutBinding bindings[BINDINGS];
    for (uint32_t b = 0; b < BINDINGS; ++b)
        bindings[b] = (VkDescriptorSetLayoutBinding){b, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1,
                                                     VK_SHADER_STAGE_COMPUTE_BIT, NULL};
    VkDescriptorSetLayoutCreateInfo set_info = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .bindingCount = BINDINGS,
        .pBindings = bindings};
    VkDescriptorSetLayout set_layout;
    check(vkCreateDescriptorSetLayout(device, &set_info, NULL, &set_layout), "set layout");
    VkPushConstantRange push = {VK_SHADER_STAGE_COMPUTE_BIT, 0, 16};
    VkPipelineLayoutCreateInfo layout_info = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                              .setLayoutCount = 1,
                                              .pSetLayouts = &set_layout,
                                              .pushConstantRangeCount = 1,
                                              .pPushConstantRanges = &push};
    VkPipelineLayout layout;
    check(vkCreatePipelineLayout(device, &layout_info, NULL, &layout), "pipeline layout");
    VkSpecializationMapEntry entries[SPEC_CONSTANTS];
    for (uint32_t i = 0; i < SPEC_CONSTANTS; ++i)
        entries[i] = (VkSpecializationMapEntry){i, i * 4, 4};
    VkSpecializationInfo spec_info = {SPEC_CONSTANTS, entries, SPEC_CONSTANTS * sizeof(uint32_t),
                                      spec};
    VkComputePipelineCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .flags = VK_PIPELINE_CREATE_CAPTURE_STATISTICS_BIT_KHR,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = module,
                  .pName = "main",
                  .pSpecializationInfo = &spec_info},
        .layout = layout};
    VkPipeline pipeline;
    check(vkCreateComputePipelines(device, VK_NULL_HANDLE, 1, &info, NULL, &pipeline),
          "vkCreateComputePipelines");
    return pipeline;
}

static void print_statistics(VkDevice device, VkPipeline pipeline) {
    PFN_vkGetPipelineExecutableStatisticsKHR get_statistics =
        (PFN_vkGetPipelineExecutableStatisticsKHR)vkGetDeviceProcAddr(
            device, "vkGetPipelineExecutableStatisticsKHR");
    VkPipelineExecutableInfoKHR exec = {.sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_INFO_KHR,
                                        .pipeline = pipeline,
                                        .executableIndex = 0};
    uint32_t count = 0;
    check(get_statistics(device, &exec, &count, NULL), "statistics count");
    VkPipelineExecutableStatisticKHR *stats = calloc(count, sizeof *stats);
    for (uint32_t i = 0; i < count; ++i)
        stats[i].sType = VK_STRUCTURE_TYPE_PIPELINE_EXECUTABLE_STATISTIC_KHR;
    check(get_statistics(device, &exec, &count, stats), "statistics");
    for (uint32_t i = 0; i < count; ++i) {
        printf("  %s: ", stats[i].name);
        switch (stats[i].format) {
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_BOOL32_KHR:
            printf("%s\n", stats[i].value.b32 ? "true" : "false");
            break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_INT64_KHR:
            printf("%lld\n", (long long)stats[i].value.i64);
            break;
        case VK_PIPELINE_EXECUTABLE_STATISTIC_FORMAT_UINT64_KHR:
            printf("%llu\n", (unsigned long long)stats[i].value.u64);
            break;
        default: printf("%g\n", stats[i].value.f64);
        }
    }
    free(stats);
}

int main(int argc, char **argv) {
    if (argc < 8 || argc > 10) {
        fprintf(stderr,
                "usage: vk_pipeline_stats KERNEL.spv WG DTYPE DKC CH BV RG [SCAN_Y [PARTS]]\n");
        return 2;
    }
    uint32_t spec[SPEC_CONSTANTS] = {0, 0, 0, 0, 0, 0, 0, 1};
    for (int i = 0; i < argc - 2; ++i)
        spec[i] = (uint32_t)strtoul(argv[2 + i], NULL, 10);
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .apiVersion = VK_API_VERSION_1_3};
    VkInstanceCreateInfo instance_info = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                                          .pApplicationInfo = &app};
    VkInstance instance;
    check(vkCreateInstance(&instance_info, NULL, &instance), "vkCreateInstance");
    uint32_t gpus = 1;
    VkPhysicalDevice gpu;
    VkResult r = vkEnumeratePhysicalDevices(instance, &gpus, &gpu);
    if ((r != VK_SUCCESS && r != VK_INCOMPLETE) || gpus == 0) check(r, "no Vulkan device");
    VkPhysicalDeviceMemoryProperties memory;
    vkGetPhysicalDeviceMemoryProperties(gpu, &memory);
    for (uint32_t i = 0; i < memory.memoryHeapCount; ++i)
        printf("heap %u: %llu MiB, flags 0x%x\n", i,
               (unsigned long long)(memory.memoryHeaps[i].size >> 20), memory.memoryHeaps[i].flags);
    for (uint32_t i = 0; i < memory.memoryTypeCount; ++i)
        printf("type %u: heap %u, flags 0x%x\n", i, memory.memoryTypes[i].heapIndex,
               memory.memoryTypes[i].propertyFlags);
    VkDevice device = create_device(gpu);
    size_t bytes;
    uint32_t *code = read_spirv(argv[1], &bytes);
    VkPipeline pipeline = create_pipeline(device, code, bytes, spec);
    printf("%s WG %u DTYPE %u DKC %u CH %u BV %u RG %u SCAN_Y %u PARTS %u\n", argv[1], spec[0],
           spec[1], spec[2], spec[3], spec[4], spec[5], spec[6], spec[7]);
    print_statistics(device, pipeline);
    free(code);
    return 0;
}
