/*
 * Vulkan interop (include/efla/efla_vulkan.h): an efla context on the host's
 * own VkDevice and queue; host VkBuffers wrapped at offsets that are not
 * 16-aligned; forwards recorded into the host's command buffer between the
 * host's own transfers; bounded dispatches, host scratch, descriptor sets
 * (host without push descriptors) and 16-bit storage (host enabled it)
 * giving bitwise the same result; efla's own submissions on the host queue;
 * the features efla reports using; refusals.
 * Results are checked against efla's CPU backend. Skipped without a Vulkan
 * device unless EFLA_REQUIRE_BACKENDS names vulkan.
 */
#include "efla/efla_vulkan.h"

#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/half.h"

typedef struct host_vk {
    VkInstance instance;
    VkPhysicalDevice physical;
    VkDevice device;
    uint32_t family;
    VkQueue queue;
    VkCommandPool pool;
    VkPhysicalDeviceMemoryProperties memory;
    bool push_descriptor_enabled;
    VkPhysicalDevice16BitStorageFeatures storage16; /* enabled features, chained */
    VkPhysicalDeviceFeatures2 features;
} host_vk;

/* What the host enables where the device offers it. */
#define HOST_PUSH_DESCRIPTORS 1u
#define HOST_16BIT_STORAGE 2u
#define HOST_ALL (HOST_PUSH_DESCRIPTORS | HOST_16BIT_STORAGE)

typedef struct host_buffer {
    VkBuffer buffer;
    VkDeviceMemory memory;
    unsigned char *mapped;
    VkDeviceSize size;
} host_buffer;

static void skip_or_fail(const char *why) {
    const char *required = getenv("EFLA_REQUIRE_BACKENDS");
    if (required && strstr(required, "vulkan"))
        cr_assert_fail("EFLA_REQUIRE_BACKENDS names vulkan, which is unavailable: %s", why);
    cr_skip_test("vulkan unavailable: %s", why);
}

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

/* The first device with a compute queue. */
static bool pick_device(host_vk *h) {
    VkPhysicalDevice devices[16];
    uint32_t count = 16;
    if (vkEnumeratePhysicalDevices(h->instance, &count, devices) < 0) return false;
    for (uint32_t d = 0; d < count; ++d) {
        VkQueueFamilyProperties families[16];
        uint32_t family_count = 16;
        vkGetPhysicalDeviceQueueFamilyProperties(devices[d], &family_count, families);
        for (uint32_t f = 0; f < family_count; ++f) {
            if (!(families[f].queueFlags & VK_QUEUE_COMPUTE_BIT)) continue;
            h->physical = devices[d];
            h->family = f;
            return true;
        }
    }
    return false;
}

/* The host's enabled feature chain: 16-bit storage when asked and offered. */
static void host_features(host_vk *h, bool storage16) {
    h->storage16 = (VkPhysicalDevice16BitStorageFeatures){
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
    h->features = (VkPhysicalDeviceFeatures2){.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2,
                                              .pNext = &h->storage16};
    vkGetPhysicalDeviceFeatures2(h->physical, &h->features);
    VkBool32 offered = h->storage16.storageBuffer16BitAccess;
    memset(&h->features.features, 0, sizeof h->features.features);
    h->storage16 = (VkPhysicalDevice16BitStorageFeatures){
        .sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES,
        .storageBuffer16BitAccess = storage16 && offered};
}

static void host_open(host_vk *h, unsigned enable) {
    memset(h, 0, sizeof *h);
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO,
                             .pApplicationName = "test_vulkan_interop",
                             .apiVersion = VK_API_VERSION_1_1};
    VkInstanceCreateInfo instance_info = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO,
                                          .pApplicationInfo = &app};
    if (vkCreateInstance(&instance_info, NULL, &h->instance) != VK_SUCCESS) {
        h->instance = VK_NULL_HANDLE;
        skip_or_fail("vkCreateInstance failed");
    }
    if (!pick_device(h)) {
        vkDestroyInstance(h->instance, NULL);
        skip_or_fail("no device with a compute queue");
    }
    uint32_t count;
    const char *const *names;
    cr_assert_eq(efla_vulkan_required_device_extensions(&count, &names), EFLA_SUCCESS);
    cr_assert_eq(count, 0);
    static const char *push[] = {VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME};
    bool enable_push = (enable & HOST_PUSH_DESCRIPTORS) &&
                       has_extension(h->physical, VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME);
    host_features(h, enable & HOST_16BIT_STORAGE);
    float priority = 1.0f;
    VkDeviceQueueCreateInfo queue = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO,
                                     .queueFamilyIndex = h->family,
                                     .queueCount = 1,
                                     .pQueuePriorities = &priority};
    VkDeviceCreateInfo device_info = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO,
                                      .pNext = &h->features,
                                      .queueCreateInfoCount = 1,
                                      .pQueueCreateInfos = &queue,
                                      .enabledExtensionCount = enable_push ? 1 : 0,
                                      .ppEnabledExtensionNames = push};
    cr_assert_eq(vkCreateDevice(h->physical, &device_info, NULL, &h->device), VK_SUCCESS);
    h->push_descriptor_enabled = enable_push;
    vkGetDeviceQueue(h->device, h->family, 0, &h->queue);
    VkCommandPoolCreateInfo pool = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                    .queueFamilyIndex = h->family};
    cr_assert_eq(vkCreateCommandPool(h->device, &pool, NULL, &h->pool), VK_SUCCESS);
    vkGetPhysicalDeviceMemoryProperties(h->physical, &h->memory);
}

static void host_close(host_vk *h) {
    vkDestroyCommandPool(h->device, h->pool, NULL);
    vkDestroyDevice(h->device, NULL);
    vkDestroyInstance(h->instance, NULL);
}

static host_buffer host_buffer_create(host_vk *h, VkDeviceSize size, VkBufferUsageFlags usage) {
    host_buffer b = {.size = size};
    VkBufferCreateInfo info = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO,
                               .size = size,
                               .usage = usage,
                               .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    cr_assert_eq(vkCreateBuffer(h->device, &info, NULL, &b.buffer), VK_SUCCESS);
    VkMemoryRequirements req;
    vkGetBufferMemoryRequirements(h->device, b.buffer, &req);
    const VkMemoryPropertyFlags want =
        VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT | VK_MEMORY_PROPERTY_HOST_COHERENT_BIT;
    uint32_t type = 0;
    while (type < h->memory.memoryTypeCount &&
           (!(req.memoryTypeBits & (1u << type)) ||
            (h->memory.memoryTypes[type].propertyFlags & want) != want))
        ++type;
    cr_assert_lt(type, h->memory.memoryTypeCount, "no host-visible coherent memory");
    VkMemoryAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO,
                                  .allocationSize = req.size,
                                  .memoryTypeIndex = type};
    cr_assert_eq(vkAllocateMemory(h->device, &alloc, NULL, &b.memory), VK_SUCCESS);
    cr_assert_eq(vkBindBufferMemory(h->device, b.buffer, b.memory, 0), VK_SUCCESS);
    void *mapped;
    cr_assert_eq(vkMapMemory(h->device, b.memory, 0, VK_WHOLE_SIZE, 0, &mapped), VK_SUCCESS);
    b.mapped = mapped;
    return b;
}

static void host_buffer_destroy(host_vk *h, host_buffer *b) {
    vkDestroyBuffer(h->device, b->buffer, NULL);
    vkFreeMemory(h->device, b->memory, NULL);
}

static efla_vulkan_device_info device_info_of(const host_vk *h) {
    static const char *enabled[] = {VK_KHR_PUSH_DESCRIPTOR_EXTENSION_NAME};
    efla_vulkan_device_info info = EFLA_VULKAN_DEVICE_INFO_INIT;
    info.instance = h->instance;
    info.physical_device = h->physical;
    info.device = h->device;
    info.queue_family_index = h->family;
    info.get_instance_proc_addr = vkGetInstanceProcAddr;
    info.enabled_extension_count = h->push_descriptor_enabled ? 1 : 0;
    info.enabled_extensions = enabled;
    info.enabled_features = &h->features;
    return info;
}

/* ------------------------------------------------------------------ */
/* The problem: inputs in one host buffer, outputs in another          */
/* ------------------------------------------------------------------ */

enum { Q, K, V, BETA, S0, N_INPUTS };

typedef struct problem {
    int64_t B, T, H, HV, Dk, Dv;
    efla_dtype dtype;
    efla_algorithm algorithm;
    uint64_t bytes[N_INPUTS], offset[N_INPUTS]; /* inputs, within the inputs buffer */
    uint64_t input_size;
    uint64_t out_bytes, out_offset, state_bytes, state_offset, output_size;
    unsigned char *inputs; /* host copy of the inputs buffer */
} problem;

#define GUARD 0xa5 /* bytes around the outputs that must survive */

static uint32_t lcg_state;
static float uniform(void) {
    lcg_state = lcg_state * 1664525u + 1013904223u;
    return (float)(lcg_state >> 8) / 16777216.0f;
}

static void store(unsigned char *at, efla_dtype dtype, float x) {
    if (dtype == EFLA_DTYPE_F32) {
        memcpy(at, &x, 4);
        return;
    }
    uint16_t h = dtype == EFLA_DTYPE_F16 ? efla_f32_to_f16(x) : efla_f32_to_bf16(x);
    memcpy(at, &h, 2);
}

static float load(const unsigned char *at, efla_dtype dtype) {
    if (dtype == EFLA_DTYPE_F32) {
        float x;
        memcpy(&x, at, 4);
        return x;
    }
    uint16_t h;
    memcpy(&h, at, 2);
    return dtype == EFLA_DTYPE_F16 ? efla_f16_to_f32(h) : efla_bf16_to_f32(h);
}

/* Tensors at offsets that are multiples of their element size only. */
static problem problem_make(int64_t T, efla_dtype dtype, efla_algorithm algorithm) {
    problem p = {.B = 2,
                 .T = T,
                 .H = 2,
                 .HV = 4,
                 .Dk = 24,
                 .Dv = 19,
                 .dtype = dtype,
                 .algorithm = algorithm};
    uint64_t e = efla_dtype_size(dtype);
    p.bytes[Q] = p.bytes[K] = (uint64_t)(p.B * p.T * p.H * p.Dk) * e;
    p.bytes[V] = (uint64_t)(p.B * p.T * p.HV * p.Dv) * e;
    p.bytes[BETA] = (uint64_t)(p.B * p.T * p.HV) * e;
    p.bytes[S0] = (uint64_t)(p.B * p.HV * p.Dk * p.Dv) * 4;
    uint64_t cursor = 6;
    for (int i = 0; i < N_INPUTS; ++i) {
        p.offset[i] = (cursor + 3) / 4 * 4 + (i == S0 ? 0 : e); /* f32 state 4-aligned */
        cursor = p.offset[i] + p.bytes[i];
    }
    p.input_size = (cursor + 64) / 4 * 4;
    p.out_bytes = p.bytes[V];
    p.out_offset = e;
    p.state_bytes = p.bytes[S0];
    p.state_offset = (p.out_offset + p.out_bytes + 2 + 3) / 4 * 4;
    p.output_size = (p.state_offset + p.state_bytes + 16 + 3) / 4 * 4;
    p.inputs = calloc(1, p.input_size);
    lcg_state = (uint32_t)(T * 7 + dtype);
    for (int i = 0; i < N_INPUTS; ++i) {
        efla_dtype d = i == S0 ? EFLA_DTYPE_F32 : dtype;
        uint64_t size = efla_dtype_size(d), count = p.bytes[i] / size;
        for (uint64_t j = 0; j < count; ++j) {
            float x = uniform() * 2.0f - 1.0f;
            if (i == BETA) x = 0.2f + 0.8f * uniform();
            if (i == K) x *= (j / (uint64_t)p.Dk) % 5 == 0 ? 8.0f : 1.0f;
            store(p.inputs + p.offset[i] + j * size, d, x);
        }
    }
    return p;
}

static efla_forward_desc problem_desc(const problem *p, efla_buffer inputs, efla_buffer outputs) {
    int64_t qshape[4] = {p->B, p->T, p->H, p->Dk}, vshape[4] = {p->B, p->T, p->HV, p->Dv};
    int64_t bshape[3] = {p->B, p->T, p->HV}, sshape[4] = {p->B, p->HV, p->Dk, p->Dv};
    efla_forward_desc d = EFLA_FORWARD_DESC_INIT;
    d.q = efla_tensor_contiguous(inputs, p->offset[Q], p->dtype, 4, qshape);
    d.k = efla_tensor_contiguous(inputs, p->offset[K], p->dtype, 4, qshape);
    d.v = efla_tensor_contiguous(inputs, p->offset[V], p->dtype, 4, vshape);
    d.beta = efla_tensor_contiguous(inputs, p->offset[BETA], p->dtype, 3, bshape);
    d.initial_state = efla_tensor_contiguous(inputs, p->offset[S0], EFLA_DTYPE_F32, 4, sshape);
    d.out = efla_tensor_contiguous(outputs, p->out_offset, p->dtype, 4, vshape);
    d.final_state = efla_tensor_contiguous(outputs, p->state_offset, EFLA_DTYPE_F32, 4, sshape);
    d.algorithm = p->algorithm;
    return d;
}

/* The CPU backend's outputs buffer for the same problem. */
static unsigned char *cpu_outputs(const problem *p) {
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = EFLA_BACKEND_CPU;
    efla_context cpu;
    cr_assert_eq(efla_context_create(&info, &cpu), EFLA_SUCCESS, "%s", efla_last_error_message());
    efla_buffer in, out;
    cr_assert_eq(efla_buffer_create(cpu, p->input_size, &in), EFLA_SUCCESS);
    cr_assert_eq(efla_buffer_create(cpu, p->output_size, &out), EFLA_SUCCESS);
    cr_assert_eq(efla_buffer_upload(in, 0, p->inputs, p->input_size), EFLA_SUCCESS);
    efla_forward_desc d = problem_desc(p, in, out);
    cr_assert_eq(efla_forward(cpu, &d), EFLA_SUCCESS, "%s", efla_last_error_message());
    unsigned char *result = malloc(p->output_size);
    cr_assert_eq(efla_buffer_download(out, 0, result, p->output_size), EFLA_SUCCESS);
    efla_buffer_destroy(in);
    efla_buffer_destroy(out);
    efla_context_destroy(cpu);
    return result;
}

/* Relative Frobenius error of out and final state against the CPU. */
static void expect_close(const problem *p, const unsigned char *got, const unsigned char *want) {
    uint64_t e = efla_dtype_size(p->dtype);
    double num = 0, den = 0;
    for (uint64_t i = 0; i < p->out_bytes / e; ++i) {
        double a = load(got + p->out_offset + i * e, p->dtype);
        double b = load(want + p->out_offset + i * e, p->dtype);
        num += (a - b) * (a - b);
        den += b * b;
    }
    double tol = p->dtype == EFLA_DTYPE_F32 ? 2e-5 : 1e-2;
    cr_expect_lt(sqrt(num / den), tol, "out differs from the CPU backend: %g", sqrt(num / den));
    num = den = 0;
    for (uint64_t i = 0; i < p->state_bytes / 4; ++i) {
        double a = load(got + p->state_offset + i * 4, EFLA_DTYPE_F32);
        double b = load(want + p->state_offset + i * 4, EFLA_DTYPE_F32);
        num += (a - b) * (a - b);
        den += b * b;
    }
    cr_expect_lt(sqrt(num / den), 2e-5, "final state differs from the CPU backend: %g",
                 sqrt(num / den));
    for (uint64_t i = 0; i < p->out_offset; ++i)
        cr_expect_eq(got[i], GUARD, "guard byte %llu", (unsigned long long)i);
    for (uint64_t i = p->out_offset + p->out_bytes; i < p->state_offset; ++i)
        cr_expect_eq(got[i], GUARD, "guard byte %llu changed", (unsigned long long)i);
    for (uint64_t i = p->state_offset + p->state_bytes; i < p->output_size; ++i)
        cr_expect_eq(got[i], GUARD, "guard byte %llu changed", (unsigned long long)i);
}

/* ------------------------------------------------------------------ */
/* Recording into the host's command buffer                            */
/* ------------------------------------------------------------------ */

typedef struct session {
    host_vk host;
    host_buffer staging, inputs, outputs, readback;
    efla_context context;
    efla_buffer in, out;
} session;

static void session_open(session *s, const problem *p, uint32_t max_chunks, unsigned enable) {
    host_open(&s->host, enable);
    const VkBufferUsageFlags usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                                     VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                     VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    /* The wrapped regions start 4 and 36 bytes into the host's buffers. */
    s->staging = host_buffer_create(&s->host, p->input_size, VK_BUFFER_USAGE_TRANSFER_SRC_BIT);
    s->inputs = host_buffer_create(&s->host, p->input_size + 4, usage);
    s->outputs = host_buffer_create(&s->host, p->output_size + 36, usage);
    s->readback = host_buffer_create(&s->host, p->output_size, VK_BUFFER_USAGE_TRANSFER_DST_BIT);
    memcpy(s->staging.mapped, p->inputs, p->input_size);
    memset(s->outputs.mapped, GUARD, p->output_size + 36);
    efla_vulkan_device_info info = device_info_of(&s->host);
    info.max_chunks_per_dispatch = max_chunks;
    cr_assert_eq(efla_vulkan_context_create(&info, NULL, &s->context), EFLA_SUCCESS, "%s",
                 efla_last_error_message());
    cr_assert_eq(efla_vulkan_buffer_wrap(s->context, s->inputs.buffer, 4, p->input_size, &s->in),
                 EFLA_SUCCESS, "%s", efla_last_error_message());
    cr_assert_eq(
        efla_vulkan_buffer_wrap(s->context, s->outputs.buffer, 36, p->output_size, &s->out),
        EFLA_SUCCESS, "%s", efla_last_error_message());
}

static void session_close(session *s) {
    efla_buffer_destroy(s->in);
    efla_buffer_destroy(s->out);
    efla_context_destroy(s->context);
    host_buffer_destroy(&s->host, &s->staging);
    host_buffer_destroy(&s->host, &s->inputs);
    host_buffer_destroy(&s->host, &s->outputs);
    host_buffer_destroy(&s->host, &s->readback);
    host_close(&s->host);
}

static void barrier(VkCommandBuffer cmd, VkPipelineStageFlags src, VkAccessFlags src_access,
                    VkPipelineStageFlags dst, VkAccessFlags dst_access) {
    VkMemoryBarrier b = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER,
                         .srcAccessMask = src_access,
                         .dstAccessMask = dst_access};
    vkCmdPipelineBarrier(cmd, src, dst, 0, 1, &b, 0, NULL, 0, NULL);
}

/* One submission: the host uploads the inputs, efla runs, the host reads
 * the outputs back. Returns the outputs region (caller frees). */
static unsigned char *record_and_run(session *s, const problem *p,
                                     const efla_vulkan_record_info *base) {
    VkCommandBufferAllocateInfo alloc = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO,
                                         .commandPool = s->host.pool,
                                         .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY,
                                         .commandBufferCount = 1};
    VkCommandBuffer cmd;
    cr_assert_eq(vkAllocateCommandBuffers(s->host.device, &alloc, &cmd), VK_SUCCESS);
    VkCommandBufferBeginInfo begin = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO};
    cr_assert_eq(vkBeginCommandBuffer(cmd, &begin), VK_SUCCESS);
    VkBufferCopy upload = {0, 4, p->input_size};
    vkCmdCopyBuffer(cmd, s->staging.buffer, s->inputs.buffer, 1, &upload);
    vkCmdFillBuffer(cmd, s->outputs.buffer, 36, p->output_size & ~(VkDeviceSize)3,
                    GUARD * 0x01010101u);
    barrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
            VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT,
            VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT);
    efla_vulkan_record_info record =
        base ? *base : (efla_vulkan_record_info)EFLA_VULKAN_RECORD_INFO_INIT;
    record.command_buffer = cmd;
    efla_forward_desc d = problem_desc(p, s->in, s->out);
    cr_assert_eq(efla_vulkan_forward_record(s->context, &record, &d), EFLA_SUCCESS, "%s",
                 efla_last_error_message());
    barrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_ACCESS_SHADER_WRITE_BIT,
            VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_READ_BIT);
    VkBufferCopy readback = {36, 0, p->output_size};
    vkCmdCopyBuffer(cmd, s->outputs.buffer, s->readback.buffer, 1, &readback);
    barrier(cmd, VK_PIPELINE_STAGE_TRANSFER_BIT, VK_ACCESS_TRANSFER_WRITE_BIT,
            VK_PIPELINE_STAGE_HOST_BIT, VK_ACCESS_HOST_READ_BIT);
    cr_assert_eq(vkEndCommandBuffer(cmd), VK_SUCCESS);
    VkSubmitInfo submit = {
        .sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cmd};
    cr_assert_eq(vkQueueSubmit(s->host.queue, 1, &submit, VK_NULL_HANDLE), VK_SUCCESS);
    cr_assert_eq(vkQueueWaitIdle(s->host.queue), VK_SUCCESS);
    vkFreeCommandBuffers(s->host.device, s->host.pool, 1, &cmd);
    unsigned char *result = malloc(p->output_size);
    memcpy(result, s->readback.mapped, p->output_size);
    /* the fill covers whole words only: patch the tail the host never wrote */
    for (uint64_t i = p->output_size & ~(uint64_t)3; i < p->output_size; ++i)
        result[i] = GUARD;
    return result;
}

static void check_recorded(int64_t T, efla_dtype dtype, efla_algorithm algorithm) {
    problem p = problem_make(T, dtype, algorithm);
    session s;
    session_open(&s, &p, 0, HOST_ALL);
    unsigned char *got = record_and_run(&s, &p, NULL);
    unsigned char *want = cpu_outputs(&p);
    expect_close(&p, got, want);
    free(got);
    free(want);
    session_close(&s);
    free(p.inputs);
}

Test(vulkan_interop, recorded_chunked_f32) {
    check_recorded(150, EFLA_DTYPE_F32, EFLA_ALGORITHM_CHUNKED);
}
Test(vulkan_interop, recorded_recurrent_bf16) {
    check_recorded(9, EFLA_DTYPE_BF16, EFLA_ALGORITHM_RECURRENT);
}
Test(vulkan_interop, recorded_auto_f16) { check_recorded(70, EFLA_DTYPE_F16, EFLA_ALGORITHM_AUTO); }

/* The same forward with one chunk per dispatch, and with host scratch,
 * is bitwise the same. */
Test(vulkan_interop, bounded_dispatches_and_host_scratch_are_bitwise_equal) {
    problem p = problem_make(200, EFLA_DTYPE_F32, EFLA_ALGORITHM_CHUNKED);
    session whole, bounded;
    session_open(&whole, &p, 0, HOST_ALL);
    unsigned char *reference = record_and_run(&whole, &p, NULL);

    uint64_t scratch_bytes = 0;
    efla_forward_desc d = problem_desc(&p, whole.in, whole.out);
    cr_assert_eq(efla_vulkan_forward_scratch_size(whole.context, &d, &scratch_bytes), EFLA_SUCCESS);
    cr_assert_gt(scratch_bytes, 0);
    host_buffer scratch =
        host_buffer_create(&whole.host, scratch_bytes + 256, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT);
    efla_vulkan_record_info record = EFLA_VULKAN_RECORD_INFO_INIT;
    record.scratch_buffer = scratch.buffer;
    record.scratch_offset = 256;
    record.scratch_size = scratch_bytes - 4;
    record.command_buffer = (VkCommandBuffer)(uintptr_t)1; /* refused before any use */
    cr_expect_eq(efla_vulkan_forward_record(whole.context, &record, &d),
                 EFLA_ERROR_INVALID_ARGUMENT);
    cr_expect(strstr(efla_last_error_message(), "host scratch"), "%s", efla_last_error_message());
    record.scratch_size = scratch_bytes;
    unsigned char *with_scratch = record_and_run(&whole, &p, &record);
    cr_expect_eq(memcmp(reference, with_scratch, p.output_size), 0,
                 "host scratch changed the result");
    free(with_scratch);
    host_buffer_destroy(&whole.host, &scratch);
    session_close(&whole);

    session_open(&bounded, &p, 1, HOST_ALL);
    unsigned char *split = record_and_run(&bounded, &p, NULL);
    cr_expect_eq(memcmp(reference, split, p.output_size), 0,
                 "one chunk per dispatch changed the result");
    free(split);
    session_close(&bounded);
    free(reference);
    free(p.inputs);
}

/* Whether the environment turns a feature off (EFLA_VULKAN_...=0). */
static bool env_off(const char *name) {
    const char *value = getenv(name);
    return value && strcmp(value, "0") == 0;
}

static uint32_t context_features(efla_context context) {
    uint32_t flags = 0;
    cr_assert_eq(efla_vulkan_context_features(context, &flags), EFLA_SUCCESS, "%s",
                 efla_last_error_message());
    return flags;
}

/* A host without push descriptors: efla binds descriptor sets that live
 * until efla_vulkan_release_recordings covers them, bitwise as with push
 * descriptors. */
Test(vulkan_interop, descriptor_sets_without_push_descriptors) {
    problem p = problem_make(150, EFLA_DTYPE_BF16, EFLA_ALGORITHM_AUTO);
    session pushed, sets;
    session_open(&pushed, &p, 0, HOST_ALL);
    bool push = pushed.host.push_descriptor_enabled && !env_off("EFLA_VULKAN_PUSH_DESCRIPTORS");
    cr_expect_eq((context_features(pushed.context) & EFLA_VULKAN_USES_PUSH_DESCRIPTORS) != 0, push);
    unsigned char *reference = record_and_run(&pushed, &p, NULL);
    session_close(&pushed);

    session_open(&sets, &p, 0, HOST_16BIT_STORAGE);
    cr_expect_eq(context_features(sets.context) & EFLA_VULKAN_USES_PUSH_DESCRIPTORS, 0);
    uint64_t mark = 99;
    cr_assert_eq(efla_vulkan_recording_mark(sets.context, &mark), EFLA_SUCCESS);
    cr_expect_eq(mark, 0);
    for (uint64_t round = 0; round < 4; ++round) {
        unsigned char *got = record_and_run(&sets, &p, NULL);
        cr_expect_eq(memcmp(reference, got, p.output_size), 0,
                     "descriptor sets changed the result (round %llu)", (unsigned long long)round);
        free(got);
        cr_assert_eq(efla_vulkan_recording_mark(sets.context, &mark), EFLA_SUCCESS);
        cr_expect_eq(mark, round + 1);
        /* recordings run to completion in record_and_run: release some, then all */
        if (round == 1 || round == 2)
            cr_expect_eq(efla_vulkan_release_recordings(sets.context, round == 1 ? 1 : mark),
                         EFLA_SUCCESS, "%s", efla_last_error_message());
    }
    cr_expect_eq(efla_vulkan_release_recordings(sets.context, mark + 1),
                 EFLA_ERROR_INVALID_ARGUMENT);
    unsigned char *want = cpu_outputs(&p);
    expect_close(&p, reference, want);
    free(want);
    free(reference);
    session_close(&sets);
    free(p.inputs);
}

/* 16-bit tensors through 16-bit storage (only when the host enabled the
 * feature) give bitwise the results of the 32-bit-word kernels. */
static void check_storage16_matches_words(int64_t T, efla_dtype dtype) {
    problem p = problem_make(T, dtype, EFLA_ALGORITHM_AUTO);
    session words, storage16;
    session_open(&words, &p, 0, HOST_PUSH_DESCRIPTORS);
    cr_expect_eq(context_features(words.context) & EFLA_VULKAN_USES_16BIT_STORAGE, 0,
                 "16-bit storage used although the host did not enable it");
    unsigned char *reference = record_and_run(&words, &p, NULL);
    session_close(&words);
    session_open(&storage16, &p, 0, HOST_ALL);
    bool expected =
        storage16.host.storage16.storageBuffer16BitAccess && !env_off("EFLA_VULKAN_16BIT_STORAGE");
    cr_expect_eq((context_features(storage16.context) & EFLA_VULKAN_USES_16BIT_STORAGE) != 0,
                 expected);
    unsigned char *got = record_and_run(&storage16, &p, NULL);
    cr_expect_eq(memcmp(reference, got, p.output_size), 0,
                 "16-bit storage changed the result (T=%lld, %s)", (long long)T,
                 efla_dtype_name(dtype));
    unsigned char *want = cpu_outputs(&p);
    expect_close(&p, got, want);
    free(want);
    free(got);
    free(reference);
    session_close(&storage16);
    free(p.inputs);
}

Test(vulkan_interop, storage16_matches_words_bitwise) {
    check_storage16_matches_words(150, EFLA_DTYPE_F16);
    check_storage16_matches_words(150, EFLA_DTYPE_BF16);
    check_storage16_matches_words(9, EFLA_DTYPE_F16);
    check_storage16_matches_words(9, EFLA_DTYPE_BF16);
}

/* efla's own contexts use what the device offers unless the environment
 * forces a fallback; the device query says the same before any context. */
Test(vulkan_interop, owned_context_features_follow_the_environment) {
    efla_context_create_info info = EFLA_CONTEXT_CREATE_INFO_INIT;
    info.backend = EFLA_BACKEND_VULKAN;
    efla_context ctx;
    efla_status status = efla_context_create(&info, &ctx);
    if (status != EFLA_SUCCESS) skip_or_fail(efla_last_error_message());
    uint32_t device_flags = 0, flags = context_features(ctx);
    cr_assert_eq(efla_vulkan_device_features(0, &device_flags), EFLA_SUCCESS);
    cr_expect_eq(flags, device_flags);
    if (env_off("EFLA_VULKAN_PUSH_DESCRIPTORS"))
        cr_expect_eq(flags & EFLA_VULKAN_USES_PUSH_DESCRIPTORS, 0);
    if (env_off("EFLA_VULKAN_16BIT_STORAGE"))
        cr_expect_eq(flags & EFLA_VULKAN_USES_16BIT_STORAGE, 0);
    cr_expect_eq(efla_vulkan_device_features(1000, &device_flags), EFLA_ERROR_DEVICE_NOT_FOUND);
    efla_context_destroy(ctx);
}

/* efla_forward on an interop context submits to the host's queue, under
 * the host's lock; upload and download go through wrapped buffers. */
static int lock_depth, lock_calls;
static void lock_queue(void *user) {
    cr_expect_eq(user, &lock_depth);
    cr_expect_eq(lock_depth++, 0);
    lock_calls++;
}
static void unlock_queue(void *user) {
    (void)user;
    cr_expect_eq(--lock_depth, 0);
}

Test(vulkan_interop, own_submission_on_host_queue) {
    problem p = problem_make(80, EFLA_DTYPE_F32, EFLA_ALGORITHM_AUTO);
    host_vk host;
    host_open(&host, HOST_ALL);
    const VkBufferUsageFlags usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT |
                                     VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                     VK_BUFFER_USAGE_TRANSFER_DST_BIT;
    host_buffer inputs = host_buffer_create(&host, p.input_size + 8, usage);
    host_buffer outputs = host_buffer_create(&host, p.output_size + 8, usage);
    efla_vulkan_device_info info = device_info_of(&host);
    info.lock_queue = lock_queue;
    info.unlock_queue = unlock_queue;
    info.queue_lock_user = &lock_depth;
    efla_context ctx;
    cr_assert_eq(efla_vulkan_context_create(&info, NULL, &ctx), EFLA_SUCCESS, "%s",
                 efla_last_error_message());
    efla_buffer in, out;
    cr_assert_eq(efla_vulkan_buffer_wrap(ctx, inputs.buffer, 8, p.input_size, &in), EFLA_SUCCESS);
    cr_assert_eq(efla_vulkan_buffer_wrap(ctx, outputs.buffer, 4, p.output_size, &out),
                 EFLA_SUCCESS);
    cr_assert_eq(efla_buffer_upload(in, 0, p.inputs, p.input_size), EFLA_SUCCESS);
    unsigned char *guard = malloc(p.output_size);
    memset(guard, GUARD, p.output_size);
    cr_assert_eq(efla_buffer_upload(out, 0, guard, p.output_size), EFLA_SUCCESS);
    efla_forward_desc d = problem_desc(&p, in, out);
    cr_assert_eq(efla_forward(ctx, &d), EFLA_SUCCESS, "%s", efla_last_error_message());
    cr_assert_eq(efla_context_synchronize(ctx), EFLA_SUCCESS);
    unsigned char *got = malloc(p.output_size);
    cr_assert_eq(efla_buffer_download(out, 0, got, p.output_size), EFLA_SUCCESS);
    unsigned char *want = cpu_outputs(&p);
    expect_close(&p, got, want);
    cr_expect_gt(lock_calls, 2, "efla's submissions did not take the host's queue lock");
    efla_device_info device = EFLA_DEVICE_INFO_INIT;
    cr_expect_eq(efla_context_device_info(ctx, &device), EFLA_SUCCESS);
    cr_expect_str_eq(device.kernel_path, "portable");
    efla_buffer_destroy(in);
    efla_buffer_destroy(out);
    efla_context_destroy(ctx);
    free(guard);
    free(got);
    free(want);
    host_buffer_destroy(&host, &inputs);
    host_buffer_destroy(&host, &outputs);
    host_close(&host);
    free(p.inputs);
}

Test(vulkan_interop, required_extensions_and_refusals) {
    uint32_t count = 1;
    const char *const *names = NULL;
    cr_assert_eq(efla_vulkan_required_device_extensions(&count, &names), EFLA_SUCCESS);
    cr_expect_eq(count, 0);
    cr_expect_not_null(names);

    host_vk host;
    host_open(&host, 0);
    efla_vulkan_device_info info = device_info_of(&host);
    efla_context ctx = NULL;
    info.get_instance_proc_addr = NULL;
    cr_expect_eq(efla_vulkan_context_create(&info, NULL, &ctx), EFLA_ERROR_INVALID_ARGUMENT);
    info = device_info_of(&host);
    info.struct_size = 8;
    cr_expect_eq(efla_vulkan_context_create(&info, NULL, &ctx), EFLA_ERROR_INVALID_ARGUMENT);
    cr_expect_null(ctx);
    host_close(&host);

    host_open(&host, HOST_ALL);
    info = device_info_of(&host);
    info.queue_family_index = 99;
    cr_expect_eq(efla_vulkan_context_create(&info, NULL, &ctx), EFLA_ERROR_INVALID_ARGUMENT);
    info = device_info_of(&host);
    cr_assert_eq(efla_vulkan_context_create(&info, NULL, &ctx), EFLA_SUCCESS, "%s",
                 efla_last_error_message());
    host_buffer b = host_buffer_create(&host, 256, VK_BUFFER_USAGE_STORAGE_BUFFER_BIT);
    efla_buffer wrapped = NULL;
    cr_expect_eq(efla_vulkan_buffer_wrap(ctx, b.buffer, 6, 64, &wrapped),
                 EFLA_ERROR_INVALID_ARGUMENT);
    cr_expect_eq(efla_vulkan_buffer_wrap(ctx, VK_NULL_HANDLE, 0, 64, &wrapped),
                 EFLA_ERROR_INVALID_ARGUMENT);
    efla_context_create_info cpu_info = EFLA_CONTEXT_CREATE_INFO_INIT;
    cpu_info.backend = EFLA_BACKEND_CPU;
    efla_context cpu;
    cr_assert_eq(efla_context_create(&cpu_info, &cpu), EFLA_SUCCESS);
    cr_expect_eq(efla_vulkan_buffer_wrap(cpu, b.buffer, 0, 64, &wrapped),
                 EFLA_ERROR_BACKEND_MISMATCH);
    efla_vulkan_record_info record = EFLA_VULKAN_RECORD_INFO_INIT;
    efla_forward_desc d = EFLA_FORWARD_DESC_INIT;
    cr_expect_eq(efla_vulkan_forward_record(cpu, &record, &d), EFLA_ERROR_BACKEND_MISMATCH);
    cr_expect_eq(efla_vulkan_release_recordings(cpu, 0), EFLA_ERROR_BACKEND_MISMATCH);
    uint64_t mark;
    cr_expect_eq(efla_vulkan_recording_mark(cpu, &mark), EFLA_ERROR_BACKEND_MISMATCH);
    uint32_t flags;
    cr_expect_eq(efla_vulkan_context_features(cpu, &flags), EFLA_ERROR_BACKEND_MISMATCH);
    efla_context_destroy(cpu);
    cr_expect_null(wrapped);
    host_buffer_destroy(&host, &b);
    efla_context_destroy(ctx);
    host_close(&host);
}
