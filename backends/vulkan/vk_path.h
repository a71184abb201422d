/*
 * Kernel paths of the Vulkan backend: "portable" (GLSL 450 with
 * shared-memory tiling, every Vulkan 1.1 device) and "coopmat" (the chunked
 * kernels on KHR cooperative matrices, for f16/bf16 storage; f32 storage
 * keeps the portable kernels there). A further path adds an enum
 * value, a row in vk_path.c's table with the condition under which the
 * device offers it, and its own kernels and tile choice; the planner then
 * picks kernels by ctx->limits.path.
 */
#ifndef EFLA_VK_PATH_H
#define EFLA_VK_PATH_H

#include "backends/vulkan/vk_caps.h"

/* Worst first: automatic selection takes the last one offered. */
typedef enum efla_vk_path {
    EFLA_VK_PATH_PORTABLE = 0,
    EFLA_VK_PATH_COOPMAT, /* cooperative matrices for f16/bf16 storage (vk_coopmat.h) */
    EFLA_VK_PATH_COUNT
} efla_vk_path;

const char *efla_vk_path_name(efla_vk_path path);

/* The best path the device offers, or the one EFLA_PATH forces for vulkan
 * (an entry "vulkan:<path>" or a bare "<path>"; "auto" or none: the best). An unknown or
 * unavailable name fails with EFLA_ERROR_UNSUPPORTED listing the valid ones. */
efla_status efla_vk_path_select(const efla_vk_caps *caps, efla_vk_path *out);

#endif
