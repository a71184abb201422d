/* Tile, chunk and workgroup sizes for the Vulkan kernels, from the device's
 * limits. The shared-memory formulas mirror the shaders' declarations. */
#ifndef EFLA_VK_TILES_H
#define EFLA_VK_TILES_H

#include "backends/vulkan/vk_internal.h"

#define EFLA_VK_SLAB 16           /* KS in the shaders */
#define EFLA_VK_SCRATCH_REGIONS 5 /* W, U (then V'), A, factors, H */
#define EFLA_VK_MIN_LEG_CHUNKS                                                                     \
    16 /* the two-level scan's legs: shorter ones are not worth a join                             \
        */

typedef struct efla_vk_tiles {
    efla_vk_pipeline_key prep, scan, out, recurrent;
    /* The two-level scan (vk_plan.c, "legs"): up to `legs` legs a sequence
     * (1: off), the first level's scan and the join. */
    uint32_t legs;
    efla_vk_pipeline_key leg_scan, join;
    uint32_t chunk;     /* tokens per chunk */
    uint32_t dk_class;  /* Dk rounded up to the slab */
    uint32_t dv_stride; /* U row stride in scratch */
    /* Scratch per (chunk, head): W, U (then V'), A, factors, H. */
    uint64_t chunk_bytes[EFLA_VK_SCRATCH_REGIONS];
} efla_vk_tiles;

/* `chunked_sequences` sequences will run the chunked kernels (it steers the
 * Dv tile width towards enough workgroups). */
efla_status efla_vk_tiles_choose(const efla_vk_limits *limits, const efla_forward_args *args,
                                 uint64_t chunked_sequences, efla_vk_tiles *tiles);

/* Whether and how the scan runs in two levels, for sequences of at most
 * `longest_chunks` chunks (after efla_vk_tiles_choose). */
void efla_vk_tiles_legs(const efla_vk_limits *limits, const efla_forward_args *args,
                        uint64_t chunked_sequences, uint64_t longest_chunks, efla_vk_tiles *tiles);

/* vk_tiles_coopmat.c: the slab scan's key at `bv` columns (one part), where
 * it fits. */
bool efla_vk_tiles_slab_key(const efla_vk_limits *limits, uint32_t dtype, uint32_t dkc,
                            uint32_t chunk, uint32_t bv, efla_vk_pipeline_key *key);

/* vk_tiles_coopmat.c: the chunked kernels of the coopmat path, when the
 * path is selected, the storage is 16-bit and the tiles fit the device;
 * false leaves the portable kernels to run (f32 storage keeps f32 products). */
bool efla_vk_tiles_coopmat(const efla_vk_limits *limits, const efla_forward_args *args,
                           uint64_t chunked_sequences, uint32_t dtype, efla_vk_tiles *tiles);

#endif
