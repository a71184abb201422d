/* The Vulkan backend's objects, shared by its files only. */
#ifndef EFLA_VK_INTERNAL_H
#define EFLA_VK_INTERNAL_H

#include "backends/vulkan/vk_caps.h"
#include "backends/vulkan/vk_descriptors.h"
#include "backends/vulkan/vk_memory.h"
#include "core/backend.h"
#include "efla/efla_vulkan.h"

#define EFLA_VK_RING 4 /* command buffers in flight per context */

enum efla_vk_kernel {
    EFLA_VK_PREP,
    EFLA_VK_SCAN,
    EFLA_VK_RECURRENT,
    EFLA_VK_OUT,
    EFLA_VK_SCAN_COOPMAT, /* the coopmat path's scan and output (vk_coopmat.h) */
    EFLA_VK_OUT_COOPMAT,
    EFLA_VK_PREP_COOPMAT,
    EFLA_VK_SCAN_SLAB_COOPMAT, /* the scan by value-column slabs, where the device is full */
    EFLA_VK_SCAN_JOIN,         /* the two-level scan's join of its legs (vk_plan.c) */
    EFLA_VK_KERNEL_COUNT
};

/* A buffer efla owns outright (scratch, parameters, staging, dummy). */
typedef struct efla_vk_raw_buffer {
    VkBuffer buffer;
    VkDeviceSize size;
    efla_vk_allocation memory;
} efla_vk_raw_buffer;

/* Which SPIR-V module of a kernel: how it accesses f16/bf16 tensors
 * (shaders/vulkan/efla_common.glsl), and for the slab scan, the build on NV
 * cooperative matrices 2 (EFLA_CM2; f16/bf16 as words too). */
enum efla_vk_variant { EFLA_VK_WORDS, EFLA_VK_STORAGE16, EFLA_VK_WORDS_CM2, EFLA_VK_VARIANT_COUNT };

/* Specialization of one kernel: one pipeline per distinct key. */
typedef struct efla_vk_pipeline_key {
    uint32_t kernel, workgroup, dtype, dk_class, chunk, block_v, row_groups;
    uint32_t variant; /* efla_vk_variant: which SPIR-V module */
    uint32_t scan_y;  /* coopmat: the scan hands the output Y = Q^ S_c, not H (SCAN_Y) */
    uint32_t parts;   /* the slab scan's EFLA_CM2 build: subgroups per slab (0: 1) */
    uint32_t leg_products; /* a scan's two-level first level (LEG_PRODUCTS) */
    uint32_t fused_out;    /* the slab scan's EFLA_CM2 build forms the output (FUSED_OUT) */
} efla_vk_pipeline_key;

typedef struct efla_vk_pipeline {
    efla_vk_pipeline_key key;
    VkPipeline pipeline;
} efla_vk_pipeline;

/* The stage ends stamped into one slot (vk_profile.h). */
#define EFLA_VK_MAX_STAGES 16u
typedef struct efla_vk_stage_log {
    uint32_t first_query; /* of the slot's stage stamps */
    uint32_t count;       /* stamps written */
    uint32_t pending;     /* dispatches since the last stamp */
    uint32_t kernel[EFLA_VK_MAX_STAGES];
    uint32_t dispatches[EFLA_VK_MAX_STAGES];
} efla_vk_stage_log;

typedef struct efla_vk_slot {
    VkCommandBuffer cmd;
    VkFence fence;
    efla_vk_set_arena sets; /* without push descriptors; reset once the fence signalled */
    bool pending;
    bool timed;
    efla_vk_stage_log log; /* with timestamps */
} efla_vk_slot;

/* What buffer_wrap_native receives from efla_vulkan_buffer_wrap. */
typedef struct efla_vk_native_buffer {
    VkBuffer buffer;
    VkDeviceSize offset;
} efla_vk_native_buffer;

struct efla_backend_buffer {
    VkBuffer buffer;
    VkDeviceSize base;   /* where efla's byte 0 is in the VkBuffer */
    VkDeviceSize extent; /* bytes of the VkBuffer efla may bind: base + size rounded up to 4 */
    uint64_t size;
    efla_vk_allocation memory; /* owned buffers only */
    bool owned;
};

struct efla_backend_context {
    efla_backend_context_params params;
    const efla_allocator *host;
    efla_vk_instance_fns ifn;
    efla_vk_device_fns fn;
    efla_vk_caps caps;
    efla_vk_limits limits;
    VkPhysicalDevice physical;
    VkDevice device;
    bool owns_device;
    VkQueue queue;
    uint32_t queue_family;
    void (*lock_queue)(void *user);
    void (*unlock_queue)(void *user);
    void *queue_lock_user;

    VkCommandPool command_pool;
    efla_vk_slot slots[EFLA_VK_RING];
    uint32_t next_slot;
    int32_t last_timed_slot; /* -1: none */
    VkQueryPool query_pool;  /* profiling only */
    /* The last timed forward's stamps (ms from its start) once its slot is
     * reused; count 0: none. */
    double kept_ms[2u + EFLA_VK_MAX_STAGES];
    uint32_t kept_count;
    efla_vk_stage_log kept_log;

    efla_vk_memory memory;
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout pipeline_layout;
    VkPipelineCache pipeline_cache;
    bool owns_pipeline_cache;
    VkShaderModule modules[EFLA_VK_KERNEL_COUNT][EFLA_VK_VARIANT_COUNT];
    efla_vk_pipeline *pipelines;
    uint32_t pipeline_count, pipeline_capacity;

    efla_vk_raw_buffer scratch, param_buffer, staging, dummy;
    efla_vk_raw_buffer *retired; /* replaced while recorded commands may use them */
    uint32_t retired_count, retired_capacity;
    bool recorded_native; /* forwards were recorded into host command buffers */
    /* Sets of forwards recorded into host command buffers (without push
     * descriptors), tagged with the recording's number: kept until
     * efla_vulkan_release_recordings covers it, or destroy. */
    efla_vk_set_arena recorded_sets;
    uint64_t recordings; /* forwards recorded into host command buffers so far */
    efla_status lost;    /* EFLA_ERROR_DEVICE_LOST once the device is lost */
};

/* vk_context.c: command slots. A slot is free once its fence signalled. */
efla_status efla_vk_slot_begin(efla_backend_context *ctx, efla_vk_slot **out);
efla_status efla_vk_slot_submit(efla_backend_context *ctx, efla_vk_slot *slot, bool wait);
efla_status efla_vk_wait_all(efla_backend_context *ctx);
/* The host says the forwards it recorded before `mark` (a value of
 * ctx->recordings) can no longer run. */
efla_status efla_vk_release_recordings(efla_backend_context *ctx, uint64_t mark);
/* Records the failure and returns the status, marking the context lost on
 * VK_ERROR_DEVICE_LOST. */
efla_status efla_vk_fail(efla_backend_context *ctx, VkResult result, const char *what);

/* vk_buffer.c: raw buffers, and growing the context's scratch/params. */
efla_status efla_vk_raw_create(efla_backend_context *ctx, VkDeviceSize size,
                               VkBufferUsageFlags usage, VkMemoryPropertyFlags required,
                               VkMemoryPropertyFlags preferred, efla_vk_raw_buffer *out);
void efla_vk_raw_destroy(efla_backend_context *ctx, efla_vk_raw_buffer *buffer);
/* Makes `buffer` (scratch or params) at least `size` bytes. */
efla_status efla_vk_raw_ensure(efla_backend_context *ctx, efla_vk_raw_buffer *buffer,
                               VkDeviceSize size);

/* vk_pipeline.c */
efla_status efla_vk_pipelines_init(efla_backend_context *ctx);
void efla_vk_pipelines_destroy(efla_backend_context *ctx);
efla_status efla_vk_pipeline_get(efla_backend_context *ctx, const efla_vk_pipeline_key *key,
                                 VkPipeline *out);

#endif
