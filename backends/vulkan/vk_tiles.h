/* Tile, chunk and workgroup sizes for the Vulkan kernels, from the device's
 * limits. The shared-memory formulas mirror the shaders' declarations. */
#ifndef EFLA_VK_TILES_H
#define EFLA_VK_TILES_H

#include "backends/vulkan/vk_internal.h"

#define EFLA_VK_SLAB 16           /* KS in the shaders */
#define EFLA_VK_SCRATCH_REGIONS 5 /* W, U (then V'), A, factors, H */

typedef struct efla_vk_tiles {
    efla_vk_pipeline_key prep, scan, out, recurrent;
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

/* vk_tiles_coopmat.c: the chunked kernels of the coopmat path, when the
 * path is selected, the storage is 16-bit and the tiles fit the device;
 * false leaves the portable kernels to run (f32 storage keeps f32 products). */
bool efla_vk_tiles_coopmat(const efla_vk_limits *limits, const efla_forward_args *args,
                           uint64_t chunked_sequences, uint32_t dtype, efla_vk_tiles *tiles);

#endif
