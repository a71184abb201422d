/*
 * Planning a forward for the Vulkan kernels: which kernel runs each
 * sequence, tile and chunk sizes from the device limits, and the list of
 * dispatches with the buffer windows each binds.
 *
 * Sequences are cut into time segments when dispatches must stay short
 * (max_chunks_per_dispatch), when W/U/A scratch would exceed its budget, or
 * when a binding would exceed maxStorageBufferRange. Segment r of every
 * sequence runs in round r; the state is carried between rounds in
 * final_state (or in scratch when there is none). Within a round, segments
 * are grouped into pieces whose every binding fits the range limit; a piece
 * that cannot hold all value heads of one segment is split over heads.
 */
#ifndef EFLA_VK_PLAN_H
#define EFLA_VK_PLAN_H

#include "backends/vulkan/vk_internal.h"

enum efla_vk_binding {
    EFLA_VK_BIND_PARAMS,
    EFLA_VK_BIND_ENTRIES,
    EFLA_VK_BIND_Q,
    EFLA_VK_BIND_K,
    EFLA_VK_BIND_V,
    EFLA_VK_BIND_BETA,
    EFLA_VK_BIND_OUT,
    EFLA_VK_BIND_STATE_IN,
    EFLA_VK_BIND_STATE_OUT,
    EFLA_VK_BIND_W,
    EFLA_VK_BIND_U,
    EFLA_VK_BIND_A,
    EFLA_VK_BIND_F,
    EFLA_VK_BIND_H,
    EFLA_VK_BIND_COUNT
};

enum efla_vk_source {
    EFLA_VK_SOURCE_DUMMY,   /* never accessed: any small buffer */
    EFLA_VK_SOURCE_TENSOR,  /* a user buffer; offset from the VkBuffer start */
    EFLA_VK_SOURCE_PARAMS,  /* the uploaded parameter blob; offset into it */
    EFLA_VK_SOURCE_SCRATCH, /* offset from the start of `region` */
};

enum efla_vk_region {
    EFLA_VK_REGION_CARRIER, /* states between rounds when there is no final_state */
    EFLA_VK_REGION_W,
    EFLA_VK_REGION_U,
    EFLA_VK_REGION_A,
    EFLA_VK_REGION_F,
    EFLA_VK_REGION_H,          /* per-chunk states, written by the scan for the output kernel */
    EFLA_VK_REGION_LEGS,       /* the two-level scan's leg products (vk_plan.c) */
    EFLA_VK_REGION_LEG_STATES, /* and the states its legs start from */
    EFLA_VK_REGION_COUNT
};

typedef struct efla_vk_window {
    uint8_t source, region;
    bool write;
    VkBuffer buffer; /* EFLA_VK_SOURCE_TENSOR */
    uint64_t offset, range;
} efla_vk_window;

typedef struct efla_vk_dispatch {
    efla_vk_pipeline_key key;
    efla_vk_window bind[EFLA_VK_BIND_COUNT];
    uint32_t groups[3];
    uint32_t push[4];
} efla_vk_dispatch;

typedef struct efla_vk_plan {
    const efla_allocator *host;
    efla_vk_dispatch *dispatches;
    uint32_t dispatch_count, dispatch_capacity;
    uint8_t *blob; /* parameter blocks and entry tables, uploaded first */
    uint64_t blob_size, blob_capacity;
    uint64_t region_offset[EFLA_VK_REGION_COUNT]; /* within the scratch */
    uint64_t scratch_bytes;
} efla_vk_plan;

/* What AUTO/CHUNKED/RECURRENT resolve to for this request. */
efla_algorithm efla_vk_plan_algorithm(const efla_forward_args *args);

efla_status efla_vk_plan_build(const efla_vk_limits *limits, const efla_forward_args *args,
                               const efla_allocator *host, efla_vk_plan *plan);
void efla_vk_plan_release(efla_vk_plan *plan);

#endif
