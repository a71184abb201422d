/* What a physical device offers, and the limits efla plans with. */
#ifndef EFLA_VK_CAPS_H
#define EFLA_VK_CAPS_H

#include "backends/vulkan/vk_functions.h"

#include <stdbool.h>
#include <stdint.h>

/* Bindings of the one descriptor set layout all kernels share. */
#define EFLA_VK_BINDING_COUNT 14

typedef struct efla_vk_caps {
    VkPhysicalDeviceProperties properties; /* includes limits */
    uint32_t api_version;
    uint32_t queue_family;   /* a family with compute */
    uint32_t timestamp_bits; /* of that family; 0: no timestamps */
    uint32_t subgroup_size;
    uint32_t compute_units; /* SMs (NVIDIA) or CUs (AMD) where the driver says, else 0 */
    uint64_t device_local_bytes;
    uint64_t max_allocation;
    uint8_t device_uuid[VK_UUID_SIZE];
    char pci_bus_id[32];
    char driver_info[64];
    bool push_descriptor; /* VK_KHR_push_descriptor (interop: enabled by the host) */
    bool pci_bus_info;
    bool driver_properties;
    bool sm_builtins;
    bool cooperative_matrix_khr;
    bool cooperative_matrix_nv;
    bool float16_arithmetic;
    bool storage_16bit; /* storageBuffer16BitAccess (interop: enabled by the host) */
    /* The coopmat kernel path can run here (vk_coopmat.h); else why not. */
    bool coopmat;
    const char *coopmat_missing;
    /* VK_NV_cooperative_matrix2's conversions, for the EFLA_CM2 slab scan
     * (with this build's module of it and Vulkan 1.3). */
    bool coopmat2;
    const char *unusable; /* NULL when efla can run here, else why not */
} efla_vk_caps;

/* Queries everything efla reports or needs about `device`. */
efla_status efla_vk_query_caps(const efla_vk_instance_fns *fns, VkPhysicalDevice device,
                               efla_vk_caps *caps);
/* Why efla cannot use a device with these caps, or NULL. */
const char *efla_vk_caps_unusable(const efla_vk_caps *caps);
/* Fills the Vulkan-specific fields of an efla_device_info. */
void efla_vk_caps_describe(const efla_vk_caps *caps, efla_device_info *info);
/* The type rank used to order devices: lower is better. */
int efla_vk_caps_rank(const efla_vk_caps *caps);

/* The optional features efla uses on a device with these caps: each where
 * the device offers it, unless the environment turns it off:
 *   EFLA_VULKAN_PUSH_DESCRIPTORS=0  descriptor sets instead of push descriptors
 *   EFLA_VULKAN_16BIT_STORAGE=0     f16/bf16 tensors through 32-bit words
 *                                   instead of 16-bit storage */
efla_status efla_vk_features_select(const efla_vk_caps *caps, bool *push_descriptors,
                                    bool *storage_16bit);

/* The device limits the planner uses, possibly lowered through the
 * environment so that small-device paths run anywhere:
 *   EFLA_VULKAN_MAX_SHARED_MEMORY   bytes of shared memory per workgroup
 *   EFLA_VULKAN_MAX_STORAGE_RANGE   bytes one storage-buffer binding may span
 *   EFLA_VULKAN_STORAGE_ALIGNMENT   binding offset alignment (raised only)
 *   EFLA_VULKAN_MAX_CHUNKS_PER_DISPATCH  chunks per sequence per dispatch
 *   EFLA_VULKAN_MAX_SCRATCH         bytes of W/U/A scratch per round
 *   EFLA_VULKAN_CHUNK               chunk size 16, 32 or 64
 * and two tuning knobs of the chunked scan (one workgroup per sequence, value
 * head and tile of BLOCK_V state columns, ROW_GROUPS * BLOCK_V invocations):
 *   EFLA_VULKAN_SCAN_BLOCK_V        8, 16, 32 or 64 (default: from Dv, shared
 *                                   memory and the number of workgroups)
 *   EFLA_VULKAN_SCAN_ROW_GROUPS     1, 2, 4, 8 or 16 (default 8; 4 on CPU devices)
 * and which scan the cooperative-matrix path runs:
 *   EFLA_VULKAN_SCAN_SLABS          0: never the scan by value-column slabs, 1: wherever
 *                                   it fits (default: where the sequences fill the device)
 *   EFLA_VULKAN_COOPMAT2            0: the slab scan's KHR build even where the device
 *                                   and build offer its NV cooperative-matrix-2 one
 * It also records the features efla_vk_features_select chooses. */
typedef struct efla_vk_limits {
    uint32_t shared_bytes;
    uint64_t storage_range;
    uint32_t storage_alignment;
    uint32_t max_invocations;
    uint32_t max_groups[3];
    uint64_t scratch_budget;
    uint32_t max_chunks_per_dispatch; /* 0: unbounded */
    uint32_t chunk;                   /* 0: choose */
    uint32_t scan_block_v;            /* 0: choose */
    uint32_t scan_parts;              /* slab scan, EFLA_CM2 build: 0 choose; 1, 2, 4 */
    uint32_t scan_legs;               /* two-level scan: 0 choose; 1 off; else legs (to 64) */
    uint32_t scan_row_groups;
    uint32_t coopmat_workgroup;       /* coopmat prepare and output: 128, 256, 512; 0 by Dk */
    int scan_slabs;                   /* -1: choose; 0: never; 1: wherever it fits */
    int scan_output;                  /* the slab scan forms the output: -1 choose; 0; 1 */
    bool coopmat2;          /* the slab scan's EFLA_CM2 build (caps, EFLA_VULKAN_COOPMAT2) */
    uint32_t compute_units; /* 0: unknown */
    uint32_t subgroup_size; /* what a SPIR-V 1.3 compute shader gets */
    int path;               /* efla_vk_path (vk_path.h) */
    bool push_descriptors;  /* efla_vk_features_select */
    bool storage_16bit;
} efla_vk_limits;

efla_status efla_vk_limits_init(const efla_vk_caps *caps, uint32_t max_chunks_per_dispatch,
                                efla_vk_limits *limits);

#endif
