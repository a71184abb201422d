/*
 * Tile choices of the tensor-core (mma) chunked kernels: the state
 * kernel's column tile BV and warps per 16 columns, and the output kernel's
 * BO, from the device's SM count and shared memory. EFLA_CUDA_STATE_TILE
 * (16, 32, 64), EFLA_CUDA_STATE_PARTS (2, 4) and EFLA_CUDA_OUTPUT_TILE (32,
 * 64, 128) override them for tuning, EFLA_CUDA_STATE_STAGES (2, 3) the
 * state kernel's prefetch depth, EFLA_CUDA_FUSED=0 keeps the output
 * kernel where the fused state kernel would run, and EFLA_CUDA_PREPARE
 * (8 or 16) the prepare kernel's warps.
 */
#include "backends/cuda/cuda_internal.h"

#include <stdlib.h>
#include <string.h>

static int env_tile(const char *name, int a, int b, int c) {
    const char *text = getenv(name);
    if (!text || !*text) return 0;
    const int value = atoi(text);
    return value == a || value == b || value == c ? value : 0;
}

static bool fits(const efla_cuda_device_props *props, uint32_t bytes) {
    return (int64_t)bytes <= props->smem_optin;
}

/* 64 columns in four parts are 16 warps: at Dk > 128 their registers
 * would not fit (and no such kernel is built). */
static bool state_tile_ok(const efla_cuda_device_props *props, int64_t dk, int64_t dvp, int tile,
                          int parts) {
    if (tile == 64 && parts == 4 && efla_cuda_pad16(dk) > 128) return false;
    return dvp % tile == 0 && fits(props, efla_cuda_state_mma_smem(dk, tile, 2, parts, 0));
}

/* Each warp of the state kernel owns 16 columns of the state and runs the
 * serial chain on its own; a block's warps share the chunk operands in
 * shared memory. The chain's pace is one warp's, so the blocks should
 * cover the SMs (one warp per SM is no slower per chunk than four), while
 * wider blocks load the operands from L2 fewer times: the widest tile that
 * still gives about one block per SM, else the narrowest. */
static int choose_state_tile(const efla_cuda_device_props *props, int64_t seq_heads, int64_t dk,
                             int64_t dv, int parts) {
    static const int tiles[] = {64, 32, 16};
    const int64_t dvp = efla_cuda_pad16(dv), sms = props->sm_count;
    const int forced = env_tile("EFLA_CUDA_STATE_TILE", 16, 32, 64);
    if (forced && state_tile_ok(props, dk, dvp, forced, parts)) return forced;
    int chosen = 0;
    for (size_t i = 0; i < sizeof tiles / sizeof tiles[0]; ++i) {
        const int tile = tiles[i];
        if (!state_tile_ok(props, dk, dvp, tile, parts)) continue;
        chosen = tile;
        if (seq_heads * (dvp / tile) >= 3 * sms / 4) break;
    }
    return chosen;
}

static bool output_tile_ok(const efla_cuda_device_props *props, int64_t dk, int tile) {
    return fits(props, efla_cuda_output_mma_smem(dk, tile));
}

/* The whole (padded) Dv in one tile up to 128 columns, at any Dk (the
 * kernel's Dk slices keep its shared memory at 83 KB): on the H200 128
 * beat 64 at S1, S2, S4 and S5 (0.873 -> 0.846 ms), 32 was slower
 * everywhere. */
static int choose_output_tile(const efla_cuda_device_props *props, int64_t dk, int64_t dv) {
    const int forced = env_tile("EFLA_CUDA_OUTPUT_TILE", 32, 64, 128);
    if (forced && output_tile_ok(props, dk, forced)) return forced;
    const int64_t dvp = efla_cuda_pad16(dv);
    const int preferred = dvp > 64 ? 128 : dvp > 32 ? 64 : 32;
    for (int tile = preferred; tile >= 32; tile /= 2)
        if (output_tile_ok(props, dk, tile)) return tile;
    return 0;
}

/* Warps per 16 state columns: two where 64-column tiles of two parts
 * (8 warps a block) still give about one block per SM, which on the H200
 * beat four parts at S2, S3 and S5 (less partial V'^T through shared
 * memory); else four, whose narrower blocks keep more warps busy where
 * there are few heads (S1, S4: two parts were 14% and 21% slower). */
static int choose_state_parts(const efla_cuda_device_props *props, int64_t seq_heads, int64_t dv) {
    const int forced = env_tile("EFLA_CUDA_STATE_PARTS", 2, 4, 4);
    if (forced) return forced;
    const int64_t wide_blocks = seq_heads * (efla_cuda_pad16(dv) / 64);
    return wide_blocks >= 3 * (int64_t)props->sm_count / 4 ? 2 : 4;
}

/* The state kernel writes the output itself (S_c^T and V'^T no longer go
 * through memory; the output kernel's reads of them and of Q are gone)
 * where it runs two parts per 16 columns, and its stages, which then also
 * hold Q and P, fit: twice at Dk <= 128, once (staggered refills) at Dk
 * 256. With four parts (fewer heads: S1, S4) fused was slower on the
 * H200 (0.41 -> 0.53 ms at S1, 1.10 -> 1.69 at S4). */
static bool choose_fused(const efla_cuda_device_props *props, int64_t dk, int tile, int parts) {
    const char *text = getenv("EFLA_CUDA_FUSED");
    if ((text && strcmp(text, "0") == 0) || parts != 2) return false;
    const int stages = efla_cuda_pad16(dk) <= 128 ? 2 : 1;
    return fits(props, efla_cuda_state_mma_smem(dk, tile, stages, parts, 1));
}

/* The prepare of 16 warps where its shared memory leaves room for only two
 * blocks per SM (its phases are latency-bound: more warps, more in
 * flight), else of 8 (three blocks: 24 warps, at most 80 registers). */
static bool choose_wide_prepare(const efla_cuda_device_props *props, int64_t dk, int64_t dv) {
    const int forced = env_tile("EFLA_CUDA_PREPARE", 8, 16, 16);
    if (forced) return forced == 16;
    const int64_t smem = efla_cuda_prepare_mma_smem(dk, dv);
    return 3 * smem > (int64_t)props->smem_per_sm;
}

bool efla_cuda_mma_choose(const efla_cuda_device_props *props, int64_t seq_heads, int64_t dk,
                          int64_t dv, efla_cuda_mma_tiles *out) {
    out->state_parts = choose_state_parts(props, seq_heads, dv);
    out->state = choose_state_tile(props, seq_heads, dk, dv, out->state_parts);
    out->fused = out->state && choose_fused(props, dk, out->state, out->state_parts);
    /* Three chunks of operands in flight where they fit: a copy then has
     * two chunk steps to land instead of one. */
    out->state_stages =
        fits(props, efla_cuda_state_mma_smem(dk, out->state, 3, out->state_parts, out->fused)) ? 3
                                                                                               : 2;
    if (env_tile("EFLA_CUDA_STATE_STAGES", 2, 2, 2)) out->state_stages = 2;
    if (out->fused && efla_cuda_pad16(dk) > 128) out->state_stages = 1; /* staggered */
    out->output = choose_output_tile(props, dk, dv);
    out->wide_prepare = choose_wide_prepare(props, dk, dv);
    return out->state && out->output && fits(props, efla_cuda_prepare_mma_smem(dk, dv));
}

/* Kernels per dtype: Dk class 128 with tiles 16, 32, 64, then class 256
 * with 16, 32 (four parts) or 16, 32, 64 (two parts); fused (two parts),
 * class 128 then 256 with 16, 32, 64. */
efla_cuda_kernel efla_cuda_mma_state_kernel(bool bf16, int64_t dk, const efla_cuda_mma_tiles *t) {
    const int width = t->state == 16 ? 0 : t->state == 32 ? 1 : 2;
    const int index = 3 * (efla_cuda_pad16(dk) > 128) + width;
    if (t->fused)
        return (efla_cuda_kernel)(EFLA_CUDA_KERNEL_FUSED_MMA_F16_K128_V16_P2 + 6 * bf16 + index);
    if (t->state_parts == 2)
        return (efla_cuda_kernel)(EFLA_CUDA_KERNEL_STATE_MMA_F16_K128_V16_P2 + 6 * bf16 + index);
    return (efla_cuda_kernel)(EFLA_CUDA_KERNEL_STATE_MMA_F16_K128_V16 + 5 * bf16 + index);
}

efla_cuda_kernel efla_cuda_mma_output_kernel(bool bf16, int tile) {
    const int index = tile == 32 ? 0 : tile == 64 ? 1 : 2;
    return (efla_cuda_kernel)(EFLA_CUDA_KERNEL_OUTPUT_MMA_F16_V32 + 3 * bf16 + index);
}
