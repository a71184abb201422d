/*
 * engine_interop: EFLA inside an engine's own Vulkan frame.
 *
 * A small "engine" owns its instance, device, queue, buffers and command
 * buffer. In one submission it runs its own compute shader (filling v),
 * then EFLA recorded by efla_vulkan_forward_record, then its own
 * post-processing shader on EFLA's output. The result is checked against
 * efla's CPU backend. Exit 0 on a match; "skipped: <reason>" and exit 0
 * when there is no usable Vulkan device.
 */
#include "efla/efla_vulkan.h"

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const unsigned char engine_interop_spirv[]; /* engine_interop.comp */
extern const size_t engine_interop_spirv_size;

enum { B = 2, T = 100, H = 2, DK = 32, DV = 32 };
enum { Q, K, V, BETA, OUT, STATE, POST, REGIONS }; /* the engine's buffer regions */
#define QK_COUNT (B * T * H * DK)
#define V_COUNT (B * T * H * DV)
#define STATE_COUNT (B * H * DK * DV)

typedef struct engine {
    VkInstance instance;
    VkPhysicalDevice physical;
    VkDevice device;
    uint32_t family;
    VkQueue queue;
    VkBuffer buffer; /* one host-visible buffer holding every region */
    VkDeviceMemory memory;
    float *mapped;
    VkDeviceSize offset[REGIONS], size[REGIONS];
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout layout;
    VkPipeline fill, post;
    VkDescriptorPool pool;
    VkDescriptorSet fill_set, post_set;
    VkCommandPool command_pool;
} engine;

/* ------------------------------------------------------------------ */
/* The engine's own Vulkan setup                                       */
/* ------------------------------------------------------------------ */

static bool has_extension(VkPhysicalDevice device, const char *name) {
    uint32_t count = 0;
    vkEnumerateDeviceExtensionProperties(device, NULL, &count, NULL);
    VkExtensionProperties *list = calloc(count + 1, sizeof *list);
    vkEnumerateDeviceExtensionProperties(device, NULL, &count, list);
    bool found = false;
    for (uint32_t i = 0; i < count; ++i)
        found |= strcmp(list[i].extensionName, name) == 0;
    free(list);
    return found;
}

/* A device with a compute queue and every extension efla needs. */
static const char *pick_device(engine *e, uint32_t need_count, const char *const *need) {
    VkPhysicalDevice devices[16];
    uint32_t count = 16;
    if (vkEnumeratePhysicalDevices(e->instance, &count, devices) < 0 || count == 0)
        return "no Vulkan device";
    for (uint32_t d = 0; d < count; ++d) {
        bool ok = true;
        for (uint32_t i = 0; i < need_count; ++i)
            ok &= has_extension(devices[d], need[i]);
        VkQueueFamilyProperties families[16];
        uint32_t family_count = 16;
        vkGetPhysicalDeviceQueueFamilyProperties(devices[d], &family_count, families);
        for (uint32_t f = 0; ok && f < family_count; ++f) {
            if (!(families[f].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
            e->physical = devices[d];
            e->family = f;
            return NULL;
        }
    }
    return "no Vulkan device with a compute queue and the extensions efla needs";
}

static const char *create_device(engine *e) {
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "engine_interop",
                             .apiVersion = VK_API_VERSION_1_1};
    VkInstanceCreateInfo instance = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                                     .pApplicationInfo = &app};
    if (vkCreateInstance(&instance, NULL, &e->instance) != VK_SUCCESS) {
        e->instance = VK_NULL_HANDLE;
        return "vkCreateInstance failed (no Vulkan driver)";
    }
    uint32_t need_count;
    const char *const *need;
    efla_vulkan_required_device_extensions(&need_count, &need);
    const char *why = pick_device(e, need_count, need);
    if (why) return why;
    float priority = 1.0f;
    VkDeviceQueueCreateInfo queue = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                     .queueFamilyIndex = e->family,
                                     .queueCount = 1,
                                     .pQueuePriorities = &priority};
    VkDeviceCreateInfo device = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                                 .queueCreateInfoCount = 1,
                                 .pQueueCreateInfos = &queue,
                                 .enabledExtensionCount = need_count,
                                 .ppEnabledExtensionNames = need};
    if (vkCreateDevice(e->physical, &device, NULL, &e->device) != VK_SUCCESS)
        return "vkCreateDevice failed";
    vkGetDeviceQueue(e->device, e->family, 0, &e->queue);
    return NULL;
}

static bool create_buffer(engine *e) {
    const VkDeviceSize counts[REGIONS] = {QK_COUNT, QK_COUNT,    V_COUNT, B * T * H,
                                          V_COUNT,  STATE_COUNT, V_COUNT};
    VkDeviceSize cursor = 0;
    for (int r = 0; r < REGIONS; ++r) { /* 256-aligned: the engine binds them too */
        e->offset[r] = cursor;
        e->size[r] = counts[r] * sizeof(float);
        cursor = (cursor + e->size[r] + 255) / 256 * 256;
    }
    VkBufferCreateInfo info = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                               .size = cursor,
                               .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT,
                               .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    if (vkCreateBuffer(e->device, &info, NULL, &e->buffer) != VK_SUCCESS) return false;
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(e->device, e->buffer, &req);
    VkPhysicalDeviceMemoryProperties memory;
    vkGetPhysicalDeviceMemoryProperties(e->physical, &memory);
    const VkMemoryPropertyFlags want =
        VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    uint32_t type = 0;
    while (type < memory.memoryTypeCount &&
           (!(req.memoryTypeBits & (1u << type)) ||
            (memory.memoryTypes[type].propertyFlags & want) != want))
        ++type;
    VkMemoryAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                  .allocationSize = req.size,
                                  .memoryTypeIndex = type};
    void *mapped = NULL;
    if (type == memory.memoryTypeCount ||
        vkAllocateMemory(e->device, &alloc, NULL, &e->memory) != VK_SUCCESS ||
        vkBindBufferMemory(e->device, e->buffer, e->memory, 0) != VK_SUCCESS ||
        vkMapMemory(e->device, e->memory, 0, VK_WHOLE_SIZE, 0, &mapped) != VK_SUCCESS)
        return false;
    e->mapped = mapped;
    return true;
}

static VkPipeline create_pipeline(engine *e, VkShaderModule module, uint32_t mode) {
    VkSpecializationMapEntry entry = {0, 0, sizeof mode};
    VkSpecializationInfo special = {1, &entry, sizeof mode, &mode};
    VkComputePipelineCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = module,
                  .pName = "main",
                  .pSpecializationInfo = &special},
        .layout = e->layout};
    VkPipeline pipeline = VK_NULL_HANDLE;
    vkCreateComputePipelines(e->device, VK_NULL_HANDLE, 1, &info, NULL, &pipeline);
    return pipeline;
}

/* The engine's descriptor set: binding 0 = src region, 1 = dst region. */
static VkDescriptorSet create_set(engine *e, int src, int dst) {
    VkDescriptorSetAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO,
                                         .descriptorPool = e->pool,
                                         .descriptorSetCount = 1,
                                         .pSetLayouts = &e->set_layout};
    VkDescriptorSet set = VK_NULL_HANDLE;
    if (vkAllocateDescriptorSets(e->device, &alloc, &set) != VK_SUCCESS) return VK_NULL_HANDLE;
    VkDescriptorBufferInfo infos[2] = {{e->buffer, e->offset[src], e->size[src]},
                                       {e->buffer, e->offset[dst], e->size[dst]}};
    VkWriteDescriptorSet writes[2];
    for (uint32_t b = 0; b < 2; ++b)
        writes[b] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET,
                                           .dstSet = set,
                                           .dstBinding = b,
                                           .descriptorCount = 1,
                                           .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                           .pBufferInfo = &infos[b]};
    vkUpdateDescriptorSets(e->device, 2, writes, 0, NULL);
    return set;
}

static bool create_pipelines(engine *e) {
    VkDescriptorSetLayoutBinding bindings[2];
    for (uint32_t b = 0; b < 2; ++b)
        bindings[b] = (VkDescriptorSetLayoutBinding){b, VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 1,
                                                     VK_SHADER_STAGE_COMPUTE_BIT, NULL};
    VkDescriptorSetLayoutCreateInfo set = {.sType =
                                               VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                           .bindingCount = 2,
                                           .pBindings = bindings};
    VkPushConstantRange push = {VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof(uint32_t)};
    VkPipelineLayoutCreateInfo layout = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                         .setLayoutCount = 1,
                                         .pSetLayouts = &e->set_layout,
                                         .pushConstantRangeCount = 1,
                                         .pPushConstantRanges = &push};
    VkShaderModuleCreateInfo module_info = {
        .sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
        .codeSize = engine_interop_spirv_size,
        .pCode = (const uint32_t *)(const void *)engine_interop_spirv};
    VkDescriptorPoolSize sizes = {VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, 4};
    VkDescriptorPoolCreateInfo pool = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO,
                                       .maxSets = 2,
                                       .poolSizeCount = 1,
                                       .pPoolSizes = &sizes};
    VkShaderModule module;
    if (vkCreateDescriptorSetLayout(e->device, &set, NULL, &e->set_layout) != VK_SUCCESS ||
        vkCreatePipelineLayout(e->device, &layout, NULL, &e->layout) != VK_SUCCESS ||
        vkCreateShaderModule(e->device, &module_info, NULL, &module) != VK_SUCCESS ||
        vkCreateDescriptorPool(e->device, &pool, NULL, &e->pool) != VK_SUCCESS)
        return false;
    e->fill = create_pipeline(e, module, 0);
    e->post = create_pipeline(e, module, 1);
    vkDestroyShaderModule(e->device, module, NULL);
    e->fill_set = create_set(e, V, V);
    e->post_set = create_set(e, OUT, POST);
    VkCommandPoolCreateInfo commands = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                        .queueFamilyIndex = e->family};
    return e->fill && e->post && e->fill_set && e->post_set &&
           vkCreateCommandPool(e->device, &commands, NULL, &e->command_pool) == VK_SUCCESS;
}

static void engine_destroy(engine *e) {
    if (e->device) {
        vkDestroyCommandPool(e->device, e->command_pool, NULL);
        vkDestroyDescriptorPool(e->device, e->pool, NULL);
        vkDestroyPipeline(e->device, e->fill, NULL);
        vkDestroyPipeline(e->device, e->post, NULL);
        vkDestroyPipelineLayout(e->device, e->layout, NULL);
        vkDestroyDescriptorSetLayout(e->device, e->set_layout, NULL);
        vkDestroyBuffer(e->device, e->buffer, NULL);
        vkFreeMemory(e->device, e->memory, NULL);
        vkDestroyDevice(e->device, NULL);
    }
    if (e->instance) vkDestroyInstance(e->instance, NULL);
}

/* ------------------------------------------------------------------ */
/* The frame: engine work, EFLA, engine work                           */
/* ------------------------------------------------------------------ */

static void compute_barrier(VkCommandBuffer cmd, VkPipelineStageFlags dst_stage,
                            VkAccessFlags dst_access) {
    VkMemoryBarrier barrier = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                               .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                               .dstAccessMask = dst_access};
    vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, dst_stage, 0, 1, &barrier, 0,
                         NULL, 0, NULL);
}

static void engine_dispatch(engine *e, VkCommandBuffer cmd, VkPipeline pipeline,
                            VkDescriptorSet set, uint32_t count) {
    vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, pipeline);
    vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, e->layout, 0, 1, &set, 0, NULL);
    vkCmdPushConstants(cmd, e->layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, sizeof count, &count);
    vkCmdDispatch(cmd, (count + 63) / 64, 1, 1);
}

/* q, k, v, beta, out, final state of one tensor layout over efla buffers. */
static efla_forward_desc describe(efla_buffer in, efla_buffer v, efla_buffer out, efla_buffer state,
                                  const VkDeviceSize *offset) {
    int64_t qk[4] = {B, T, H, DK}, vo[4] = {B, T, H, DV}, beta[3] = {B, T, H};
    int64_t s[4] = {B, H, DK, DV};
    efla_forward_desc d = EFLA_FORWARD_DESC_INIT;
    d.q = efla_tensor_contiguous(in, offset[Q], EFLA_DTYPE_F32, 4, qk);
    d.k = efla_tensor_contiguous(in, offset[K], EFLA_DTYPE_F32, 4, qk);
    d.beta = efla_tensor_contiguous(in, offset[BETA], EFLA_DTYPE_F32, 3, beta);
    d.v = efla_tensor_contiguous(v, offset[V], EFLA_DTYPE_F32, 4, vo);
    d.out = efla_tensor_contiguous(out, offset[OUT], EFLA_DTYPE_F32, 4, vo);
    d.final_state = efla_tensor_contiguous(state, offset[STATE], EFLA_DTYPE_F32, 4, s);
    return d;
}

/* Records and submits one frame; efla's part goes between the engine's. */
static efla_status run_frame(engine *e, efla_context efla) {
    efla_buffer whole;
    efla_status status = efla_vulkan_buffer_wrap(efla, e->buffer, 0, e->offset[POST], &whole);
    if (status != EFLA_SUCCESS) return status;
    VkCommandBufferAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                         .commandPool = e->command_pool,
                                         .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                         .commandBufferCount = 1};
    VkCommandBuffer cmd;
    vkAllocateCommandBuffers(e->device, &alloc, &cmd);
    VkCommandBufferBeginInfo begin = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    vkBeginCommandBuffer(cmd, &begin);
    engine_dispatch(e, cmd, e->fill, e->fill_set, V_COUNT);
    /* efla's contract: inputs visible to COMPUTE_SHADER / SHADER_READ. */
    compute_barrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
                    VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
    efla_vulkan_record_info record = EFLA_VULKAN_RECORD_INFO_INIT;
    record.command_buffer = cmd;
    efla_forward_desc desc = describe(whole, whole, whole, whole, e->offset);
    status = efla_vulkan_forward_record(efla, &record, &desc);
    /* efla wrote out with SHADER_WRITE at COMPUTE_SHADER: the release is ours. */
    compute_barrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_READ_BIT);
    engine_dispatch(e, cmd, e->post, e->post_set, V_COUNT);
    compute_barrier(cmd, VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
    vkEndCommandBuffer(cmd);
    if (status == EFLA_SUCCESS) {
        VkSubmitInfo submit = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO,
                               .commandBufferCount = 1,
                               .pCommandBuffers = &cmd};
        if (vkQueueSubmit(e->queue, 1, &submit, VK_NULL_HANDLE) != VK_SUCCESS ||
            vkQueueWaitIdle(e->queue) != VK_SUCCESS)
            status = EFLA_ERROR_DEVICE;
    }
    vkFreeCommandBuffers(e->device, e->command_pool, 1, &cmd);
    efla_buffer_destroy(whole); /* the frame has completed */
    return status;
}

/* ------------------------------------------------------------------ */
/* Inputs and the check against efla's CPU backend                     */
/* ------------------------------------------------------------------ */

static void fill_inputs(engine *e) {
    uint32_t state = 12345;
    for (int r = Q; r <= BETA; ++r) {
        if (r == V) continue; /* the engine's shader writes v */
        float *x = e->mapped + e->offset[r] / sizeof(float);
        for (VkDeviceSize i = 0; i < e->size[r] / sizeof(float); ++i) {
            state = state * 1664525u + 1013904223u;
            float u = (float)(state >> 8) / 16777216.0f;
            x[i] = r == BETA ? 0.1f + 0.8f * u : 2.0f * u - 1.0f;
        }
    }
}

/* EFLA on the CPU from the same q, k, beta and v computed as the shader does. */
static efla_status cpu_reference(const engine *e, float *out, float *state) {
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = EFLA_BACKEND_CPU;
    efla_context cpu;
    efla_status status = efla_context_create(&info, &cpu);
    if (status != EFLA_SUCCESS) return status;
    VkDeviceSize total = e->offset[POST];
    float *host = malloc(total);
    memcpy(host, e->mapped, total);
    float *v = host + e->offset[V] / sizeof(float);
    for (uint32_t i = 0; i < V_COUNT; ++i)
        v[i] = (float)((int)((i * 37u) % 101u) - 50) * 0.015625f;
    efla_buffer buffer;
    status = efla_buffer_create(cpu, total, &buffer);
    if (status == EFLA_SUCCESS) status = efla_buffer_upload(buffer, 0, host, total);
    efla_forward_desc desc = describe(buffer, buffer, buffer, buffer, e->offset);
    if (status == EFLA_SUCCESS) status = efla_forward(cpu, &desc);
    if (status == EFLA_SUCCESS)
        status = efla_buffer_download(buffer, e->offset[OUT], out, e->size[OUT]);
    if (status == EFLA_SUCCESS)
        status = efla_buffer_download(buffer, e->offset[STATE], state, e->size[STATE]);
    efla_buffer_destroy(buffer);
    efla_context_destroy(cpu);
    free(host);
    return status;
}

static double relative_error(const float *got, const float *want, size_t count) {
    double num = 0, den = 0;
    for (size_t i = 0; i < count; ++i) {
        num += ((double)got[i] - want[i]) * ((double)got[i] - want[i]);
        den += (double)want[i] * want[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

static int check(const engine *e) {
    float *out = malloc(V_COUNT * sizeof(float)), *state = malloc(STATE_COUNT * sizeof(float));
    efla_status status = cpu_reference(e, out, state);
    if (status != EFLA_SUCCESS) {
        fprintf(stderr, "engine_interop: CPU reference failed: %s\n", efla_last_error_message());
        return 1;
    }
    for (int i = 0; i < V_COUNT; ++i)
        out[i] = out[i] * 2.0f + 1.0f; /* the engine's post pass */
    const float *post = e->mapped + e->offset[POST] / sizeof(float);
    const float *final = e->mapped + e->offset[STATE] / sizeof(float);
    double out_error = relative_error(post, out, V_COUNT);
    double state_error = relative_error(final, state, STATE_COUNT);
    bool match = out_error < 2e-5 && state_error < 2e-5;
    printf("engine_interop: post-processed output error %.2e, final state error %.2e: %s\n",
           out_error, state_error, match ? "match" : "MISMATCH");
    free(out);
    free(state);
    return match ? 0 : 1;
}

int main(void) {
    engine e;
    memset(&e, 0, sizeof e);
    const char *why = create_device(&e);
    if (!why && (!create_buffer(&e) || !create_pipelines(&e)))
        why = "the engine could not create its buffers or pipelines";
    if (why) {
        printf("skipped: %s\n", why);
        engine_destroy(&e);
        return 0;
    }
    efla_vulkan_device_info vulkan = EFLA_VULKAN_DEVICE_INFO_INIT;
    uint32_t extension_count;
    efla_vulkan_required_device_extensions(&extension_count, &vulkan.enabled_extensions);
    vulkan.enabled_extension_count = extension_count;
    vulkan.instance = e.instance;
    vulkan.physical_device = e.physical;
    vulkan.device = e.device;
    vulkan.queue_family_index = e.family;
    vulkan.get_instance_proc_addr = vkGetInstanceProcAddr;
    efla_context efla;
    efla_status status = efla_vulkan_context_create(&vulkan, NULL, &efla);
    if (status != EFLA_SUCCESS) {
        fprintf(stderr, "engine_interop: %s\n", efla_last_error_message());
        engine_destroy(&e);
        return 1;
    }
    efla_device_info info = EFLA_DEVICE_INFO_INIT;
    efla_context_device_info(efla, &info);
    printf("engine_interop: %s, kernel path %s\n", info.name, info.kernel_path);
    fill_inputs(&e);
    status = run_frame(&e, efla);
    int result = 1;
    if (status != EFLA_SUCCESS)
        fprintf(stderr, "engine_interop: frame failed: %s %s\n", efla_status_string(status),
                efla_last_error_message());
    else
        result = check(&e);
    efla_context_destroy(efla);
    engine_destroy(&e);
    return result;
}
