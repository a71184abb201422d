/*
 * Descriptor/pipeline layouts, the embedded SPIR-V modules, and compute
 * pipelines created on first use and cached per context (through the
 * host's VkPipelineCache when it gives one).
 */
#include "backends/vulkan/vk_internal.h"

#include "backends/vulkan/vk_coopmat.h"
#include "backends/vulkan/vk_path.h"

#include "core/context.h"
#include "core/error.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Generated at build time from shaders/vulkan/ (64-byte aligned words). */
#define EFLA_VK_SPIRV(name)                                                                        \
    extern const unsigned char efla_vk_spirv_##name[];                                             \
    extern const size_t efla_vk_spirv_##name##_size;
EFLA_VK_SPIRV(chunk_prep)
EFLA_VK_SPIRV(chunk_scan)
EFLA_VK_SPIRV(recurrent)
EFLA_VK_SPIRV(chunk_out)
EFLA_VK_SPIRV(chunk_prep_16)
EFLA_VK_SPIRV(chunk_scan_16)
EFLA_VK_SPIRV(recurrent_16)
EFLA_VK_SPIRV(chunk_out_16)
EFLA_VK_SPIRV(chunk_scan_join)
EFLA_VK_SPIRV(chunk_scan_join_16)

typedef struct spirv_blob {
    const unsigned char *code;
    const size_t *size;
} spirv_blob;

/* The portable kernels, in both builds. The coopmat kernels have only the
 * word build (they read f16/bf16 tensors through 32-bit words). */
static const spirv_blob blobs[EFLA_VK_OUT + 1][EFLA_VK_VARIANT_COUNT] = {
    [EFLA_VK_PREP] = {{efla_vk_spirv_chunk_prep, &efla_vk_spirv_chunk_prep_size},
                      {efla_vk_spirv_chunk_prep_16, &efla_vk_spirv_chunk_prep_16_size}},
    [EFLA_VK_SCAN] = {{efla_vk_spirv_chunk_scan, &efla_vk_spirv_chunk_scan_size},
                      {efla_vk_spirv_chunk_scan_16, &efla_vk_spirv_chunk_scan_16_size}},
    [EFLA_VK_RECURRENT] = {{efla_vk_spirv_recurrent, &efla_vk_spirv_recurrent_size},
                           {efla_vk_spirv_recurrent_16, &efla_vk_spirv_recurrent_16_size}},
    [EFLA_VK_OUT] = {{efla_vk_spirv_chunk_out, &efla_vk_spirv_chunk_out_size},
                     {efla_vk_spirv_chunk_out_16, &efla_vk_spirv_chunk_out_16_size}},
};

/* The join of the two-level scan's legs (f32 states only), in both builds. */
static const spirv_blob join_blobs[EFLA_VK_VARIANT_COUNT] = {
    {efla_vk_spirv_chunk_scan_join, &efla_vk_spirv_chunk_scan_join_size},
    {efla_vk_spirv_chunk_scan_join_16, &efla_vk_spirv_chunk_scan_join_16_size}};

static efla_status create_layouts(efla_backend_context *ctx) {
    VkDescriptorSetLayoutBinding bindings[EFLA_VK_BINDING_COUNT];
    for (uint32_t i = 0; i < EFLA_VK_BINDING_COUNT; ++i)
        bindings[i] =
            (VkDescriptorSetLayoutBinding){.binding = i,
                                           .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                           .descriptorCount = 1,
                                           .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo set_info = {
        .sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
        .flags = ctx->limits.push_descriptors
                     ? VK_DESCRIPTOR_SET_LAYOUT_CREATE_PUSH_DESCRIPTOR_BIT_KHR
                     : 0,
        .bindingCount = EFLA_VK_BINDING_COUNT,
        .pBindings = bindings};
    VkResult result =
        ctx->fn.vkCreateDescriptorSetLayout(ctx->device, &set_info, NULL, &ctx->set_layout);
    if (result != VK_SUCCESS) return efla_vk_fail(ctx, result, "vkCreateDescriptorSetLayout");
    VkPushConstantRange push = {VK_SHADER_STAGE_COMPUTE_BIT, 0, 16};
    VkPipelineLayoutCreateInfo layout_info = {.sType =
                                                  VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO,
                                              .setLayoutCount = 1,
                                              .pSetLayouts = &ctx->set_layout,
                                              .pushConstantRangeCount = 1,
                                              .pPushConstantRanges = &push};
    result = ctx->fn.vkCreatePipelineLayout(ctx->device, &layout_info, NULL, &ctx->pipeline_layout);
    if (result != VK_SUCCESS) return efla_vk_fail(ctx, result, "vkCreatePipelineLayout");
    return EFLA_SUCCESS;
}

static efla_status create_module(efla_backend_context *ctx, const void *code, size_t size,
                                 VkShaderModule *out) {
    VkShaderModuleCreateInfo info = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO,
                                     .codeSize = size,
                                     .pCode = (const uint32_t *)code};
    VkResult result = ctx->fn.vkCreateShaderModule(ctx->device, &info, NULL, out);
    if (result == VK_SUCCESS) return EFLA_SUCCESS;
    efla_status status = efla_vk_fail(ctx, result, "vkCreateShaderModule");
    return status == EFLA_ERROR_DEVICE
               ? efla_error(EFLA_ERROR_KERNEL_BUILD, "vkCreateShaderModule failed: %s (%d)",
                            efla_vk_result_name(result), (int)result)
               : status;
}

/* The SPIR-V of kernel k in build v, or NULL when this context does not use
 * it: the 16-bit storage builds declare a capability that is only valid on a
 * device with the feature enabled, and the coopmat kernels need the features
 * only the coopmat path enables (their EFLA_CM2 build, VK_NV_cooperative_matrix2
 * too), so none is even created elsewhere. */
static const void *kernel_code(const efla_backend_context *ctx, int k, int v, size_t *size) {
    if (v == EFLA_VK_STORAGE16 && !ctx->limits.storage_16bit) return NULL;
    if (k == EFLA_VK_SCAN_JOIN) {
        if (v == EFLA_VK_WORDS_CM2) return NULL;
        *size = *join_blobs[v].size;
        return join_blobs[v].code;
    }
    if (v == EFLA_VK_WORDS_CM2)
        return ctx->limits.coopmat2 ? efla_vk_coopmat2_spirv((uint32_t)k, size) : NULL;
    if (k <= EFLA_VK_OUT) {
        *size = *blobs[k][v].size;
        return blobs[k][v].code;
    }
    if (v != EFLA_VK_WORDS || ctx->limits.path != EFLA_VK_PATH_COOPMAT) return NULL;
    return efla_vk_coopmat_spirv((uint32_t)k, size);
}

/* The file names of the kernels in EFLA_VULKAN_SPIRV_DIR (see override_code). */
static const char *const kernel_names[EFLA_VK_KERNEL_COUNT][EFLA_VK_VARIANT_COUNT] = {
    [EFLA_VK_PREP] = {"chunk_prep", "chunk_prep_16"},
    [EFLA_VK_SCAN] = {"chunk_scan", "chunk_scan_16"},
    [EFLA_VK_RECURRENT] = {"recurrent", "recurrent_16"},
    [EFLA_VK_OUT] = {"chunk_out", "chunk_out_16"},
    [EFLA_VK_SCAN_COOPMAT] = {"chunk_scan_cm", NULL},
    [EFLA_VK_OUT_COOPMAT] = {"chunk_out_cm", NULL},
    [EFLA_VK_PREP_COOPMAT] = {"chunk_prep_cm", NULL},
    [EFLA_VK_SCAN_SLAB_COOPMAT] = {"chunk_scan_slab_cm", NULL, "chunk_scan_slab_cm2"},
    [EFLA_VK_SCAN_JOIN] = {"chunk_scan_join", "chunk_scan_join_16"},
};

/* For kernel tuning without rebuilding the library: EFLA_VULKAN_SPIRV_DIR
 * names a folder whose <kernel>.spv files (as built in
 * backends/vulkan/spirv/) replace the built-in ones. *code is the file's
 * bytes in host memory (free with efla_host_free), or NULL when there is no
 * such file; a file that is not a SPIR-V module is an error (the driver
 * must never see one). */
static efla_status override_code(const efla_backend_context *ctx, int k, int v, void **code,
                                 size_t *size) {
    *code = NULL;
    const char *dir = getenv("EFLA_VULKAN_SPIRV_DIR");
    if (!dir || !*dir || !kernel_names[k][v]) return EFLA_SUCCESS;
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.spv", dir, kernel_names[k][v]);
    FILE *file = fopen(path, "rb");
    if (!file) return EFLA_SUCCESS;
    long bytes = fseek(file, 0, SEEK_END) == 0 ? ftell(file) : -1;
    uint32_t *words = bytes >= 20 && bytes % 4 == 0 && fseek(file, 0, SEEK_SET) == 0
                          ? efla_host_alloc(ctx->host, (size_t)bytes)
                          : NULL;
    bool read = words && fread(words, 1, (size_t)bytes, file) == (size_t)bytes;
    fclose(file);
    if (!read || words[0] != 0x07230203u) { /* SPIR-V's magic number, in host order */
        efla_host_free(ctx->host, words);
        return efla_error(EFLA_ERROR_KERNEL_BUILD,
                          "EFLA_VULKAN_SPIRV_DIR: %s is not a SPIR-V module (%ld bytes)", path,
                          bytes);
    }
    *code = words;
    *size = (size_t)bytes;
    return EFLA_SUCCESS;
}

static efla_status create_modules(efla_backend_context *ctx) {
    for (int k = 0; k < EFLA_VK_KERNEL_COUNT; ++k) {
        for (int v = 0; v < EFLA_VK_VARIANT_COUNT; ++v) {
            size_t size = 0, replaced_size = 0;
            const void *code = kernel_code(ctx, k, v, &size);
            if (!code) continue;
            void *replaced = NULL;
            efla_status status = override_code(ctx, k, v, &replaced, &replaced_size);
            if (status == EFLA_SUCCESS)
                status = replaced ? create_module(ctx, replaced, replaced_size, &ctx->modules[k][v])
                                  : create_module(ctx, code, size, &ctx->modules[k][v]);
            efla_host_free(ctx->host, replaced);
            if (status != EFLA_SUCCESS) return status;
        }
    }
    return EFLA_SUCCESS;
}

efla_status efla_vk_pipelines_init(efla_backend_context *ctx) {
    efla_status status = create_layouts(ctx);
    if (status == EFLA_SUCCESS) status = create_modules(ctx);
    if (status != EFLA_SUCCESS || ctx->pipeline_cache) return status;
    VkPipelineCacheCreateInfo info = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO};
    VkResult result = ctx->fn.vkCreatePipelineCache(ctx->device, &info, NULL, &ctx->pipeline_cache);
    if (result != VK_SUCCESS) return efla_vk_fail(ctx, result, "vkCreatePipelineCache");
    ctx->owns_pipeline_cache = true;
    return EFLA_SUCCESS;
}

void efla_vk_pipelines_destroy(efla_backend_context *ctx) {
    for (uint32_t i = 0; i < ctx->pipeline_count; ++i)
        ctx->fn.vkDestroyPipeline(ctx->device, ctx->pipelines[i].pipeline, NULL);
    efla_host_free(ctx->host, ctx->pipelines);
    ctx->pipelines = NULL;
    ctx->pipeline_count = ctx->pipeline_capacity = 0;
    for (int k = 0; k < EFLA_VK_KERNEL_COUNT; ++k)
        for (int v = 0; v < EFLA_VK_VARIANT_COUNT; ++v)
            if (ctx->modules[k][v])
                ctx->fn.vkDestroyShaderModule(ctx->device, ctx->modules[k][v], NULL);
    if (ctx->owns_pipeline_cache)
        ctx->fn.vkDestroyPipelineCache(ctx->device, ctx->pipeline_cache, NULL);
    if (ctx->pipeline_layout)
        ctx->fn.vkDestroyPipelineLayout(ctx->device, ctx->pipeline_layout, NULL);
    if (ctx->set_layout) ctx->fn.vkDestroyDescriptorSetLayout(ctx->device, ctx->set_layout, NULL);
}

static efla_status create_pipeline(efla_backend_context *ctx, const efla_vk_pipeline_key *key,
                                   VkPipeline *out) {
    const uint32_t values[10] = {
        key->workgroup,    key->dtype,      key->dk_class, key->chunk,
        key->block_v,      key->row_groups, key->scan_y,   key->parts ? key->parts : 1,
        key->leg_products, key->fused_out};
    VkSpecializationMapEntry entries[10];
    for (uint32_t i = 0; i < 10; ++i)
        entries[i] = (VkSpecializationMapEntry){i, i * 4u, 4};
    VkSpecializationInfo specialization = {10, entries, sizeof values, values};
    VkComputePipelineCreateInfo info = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO,
                  .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = ctx->modules[key->kernel][key->variant],
                  .pName = "main",
                  .pSpecializationInfo = &specialization},
        .layout = ctx->pipeline_layout};
    VkResult result =
        ctx->fn.vkCreateComputePipelines(ctx->device, ctx->pipeline_cache, 1, &info, NULL, out);
    if (result != VK_SUCCESS) {
        efla_status status = efla_vk_fail(ctx, result, "vkCreateComputePipelines");
        if (status != EFLA_ERROR_DEVICE) return status;
        return efla_error(EFLA_ERROR_KERNEL_BUILD, "vkCreateComputePipelines failed: %s (%d)",
                          efla_vk_result_name(result), (int)result);
    }
    return EFLA_SUCCESS;
}

efla_status efla_vk_pipeline_get(efla_backend_context *ctx, const efla_vk_pipeline_key *key,
                                 VkPipeline *out) {
    for (uint32_t i = 0; i < ctx->pipeline_count; ++i) {
        if (memcmp(&ctx->pipelines[i].key, key, sizeof *key) == 0) {
            *out = ctx->pipelines[i].pipeline;
            return EFLA_SUCCESS;
        }
    }
    if (ctx->pipeline_count == ctx->pipeline_capacity) {
        uint32_t capacity = ctx->pipeline_capacity ? ctx->pipeline_capacity * 2 : 8;
        efla_vk_pipeline *bigger = efla_host_alloc(ctx->host, capacity * sizeof *bigger);
        if (!bigger) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
        if (ctx->pipeline_count)
            memcpy(bigger, ctx->pipelines, ctx->pipeline_count * sizeof *bigger);
        efla_host_free(ctx->host, ctx->pipelines);
        ctx->pipelines = bigger;
        ctx->pipeline_capacity = capacity;
    }
    efla_status status = create_pipeline(ctx, key, out);
    if (status != EFLA_SUCCESS) return status;
    ctx->pipelines[ctx->pipeline_count++] = (efla_vk_pipeline){*key, *out};
    return EFLA_SUCCESS;
}
