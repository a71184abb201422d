/* Tile sizes for the cooperative-matrix path (see vk_tiles.h and the
 * backend's README). The byte counts mirror the shared declarations of
 * chunk_prep_cm.comp, chunk_scan_cm.comp, chunk_scan_slab_cm.comp and
 * chunk_out_cm.comp. */
#include "backends/vulkan/vk_tiles.h"

#include "backends/vulkan/vk_path.h"

#define MAX_STATE_TILES 16u /* 16 x 16 state tiles per workgroup (registers) */

static uint64_t max_u64(uint64_t a, uint64_t b) { return a > b ? a : b; }

/* Shared bytes of the prepare and output, as the kernels declare them (rows
 * padded by 16 bytes against bank conflicts). They do not grow with the
 * workgroup (limits->coopmat_workgroup invocations). */
static uint64_t prep_bytes(uint64_t dkc, uint64_t chunk) {
    uint64_t kv = max_u64(chunk * (dkc + 8), 4 * chunk * 24);
    uint64_t row = 16 * (16 * (chunk / 16 - 1) + 1);
    return kv * 2 + chunk * (chunk + 4) * 4 + chunk * (chunk + 8) * 2 + (row + 3) / 4 * 16 +
           2 * chunk * 4;
}

/* The scan's invocations: 256 where every invocation then moves whole
 * 16-byte pieces of W and K^, else 128. Its shared memory does not grow
 * with them, and the state tiles spread over twice the subgroups: on the
 * H200 the state stage at 256 against 128 (ms) was S1 0.392 / 0.488, S2
 * 0.949 / 1.257, S4 1.500 / 1.859, S5 2.001 / 2.461. */
static uint32_t scan_workgroup(uint64_t dkc, uint64_t chunk) {
    return (chunk * dkc / 8) % 256 == 0 ? 256 : 128;
}

static uint64_t scan_bytes(uint64_t dkc, uint64_t chunk, uint64_t bv) {
    /* the tiles' scale vectors in whole 16 bytes (cooperative matrix loads
     * need 16-byte aligned addresses, wherever the driver places them) */
    uint64_t bounce = scan_workgroup(dkc, chunk) / 32 * 256 * 4; /* a state tile per subgroup */
    uint64_t sv = max_u64((dkc + chunk) * (bv + 8) * 2, bounce);
    return 2 * chunk * (dkc + 8) * 2 + sv + ((dkc / 16) * (bv / 16) + 3) / 4 * 16 +
           ((chunk / 16) * (bv / 16) + 3) / 4 * 16;
}

static uint64_t out_bytes(uint64_t dkc, uint64_t chunk, uint64_t bv) {
    uint64_t xk = max_u64(chunk * (dkc / 2 + 4), chunk * (bv + 4));
    return chunk * (dkc + 8) * 2 + xk * 4 + chunk * (chunk + 8) * 2 + 4 * 256 * 4 + chunk * 12;
}

/* Whether the scan kernel takes this tile: it fits, its state tiles fit the
 * registers, and every invocation moves whole 16-byte pieces of W and K^. */
static bool scan_fits(const efla_vk_limits *limits, uint64_t dkc, uint64_t chunk, uint64_t bv) {
    return scan_bytes(dkc, chunk, bv) <= limits->shared_bytes &&
           (dkc / 16) * (bv / 16) <= MAX_STATE_TILES &&
           (chunk * dkc / 8) % scan_workgroup(dkc, chunk) == 0;
}

/* The widest scan tile that fits and still gives every compute unit a
 * workgroup; the narrowest that fits when none does. */
static uint32_t scan_block(const efla_vk_limits *limits, uint64_t dkc, uint64_t chunk,
                           uint64_t sequences, uint64_t heads, uint64_t dv) {
    uint32_t forced = limits->scan_block_v; /* EFLA_VULKAN_SCAN_BLOCK_V, where it fits */
    if ((forced == 16 || forced == 32) && scan_fits(limits, dkc, chunk, forced)) return forced;
    uint64_t wanted = limits->compute_units ? limits->compute_units : 64;
    uint32_t chosen = 0;
    for (uint32_t bv = 32; bv >= 16; bv /= 2) {
        if (!scan_fits(limits, dkc, chunk, bv)) continue;
        if (bv > 16 && bv / 2 >= dv) continue; /* a narrower tile covers Dv */
        chosen = bv;
        if (sequences * heads * ((dv + bv - 1) / bv) >= wanted) break;
    }
    return chosen;
}

/* Whether two workgroups of `bytes` fit in a compute unit's shared memory
 * (taken as the workgroup limit: the H200's driver measured 64 KB per unit
 * against its 48 KB limit, less 1 KB per workgroup). */
static bool two_per_unit(const efla_vk_limits *limits, uint64_t bytes) {
    return bytes <= limits->shared_bytes / 2;
}

/* The widest output tile that two workgroups of fit in a unit, else the
 * widest that fits: its products spread over the subgroups (at Dk 256 and
 * chunk 32, 64 columns left half of 16 subgroups idle), but a workgroup
 * alone in its unit leaves it idle while it waits on memory. On the H200
 * at S2 (Dk 128, chunk 32), 64 columns and two to a unit (256 invocations)
 * against 128 columns and one (512): output 0.508 against 0.628 ms. */
static uint32_t out_block(const efla_vk_limits *limits, uint64_t dkc, uint64_t chunk, uint64_t dv) {
    for (uint32_t bv = 128; bv >= 16; bv /= 2)
        if (two_per_unit(limits, out_bytes(dkc, chunk, bv)) && (bv == 16 || bv / 2 < dv)) return bv;
    for (uint32_t bv = 128; bv >= 16; bv /= 2)
        if (out_bytes(dkc, chunk, bv) <= limits->shared_bytes && (bv == 16 || bv / 2 < dv))
            return bv;
    return 0;
}

/* The scan by value-column slabs (chunk_scan_slab_cm.comp): a computing
 * subgroup per 16 columns, each owning its columns' whole slab of the state,
 * so that the subgroups share only the chunk's W, K^ and Q^, which producing
 * subgroups load and stage with the workgroup's columns of U. Its shared
 * memory: those three (rows padded by 16 bytes; Q^ only up to 32 x 128
 * elements, above which the NV cooperative-matrix-2 build stages it over W
 * and the KHR one reads it from the scratch), U (f32), and each computing
 * subgroup's rows, 48 bytes to a row: half a slab of S_c, or the chunk's
 * V'; at least an f32 state tile (1 KB). With NV cooperative matrices 2
 * (EFLA_CM2) S_c and V' are A operands straight from the accumulators: a
 * state tile per computing subgroup, or where `parts` subgroups share a
 * slab, each one's part of V'^T (f32, chunk x 16) and each but the first's
 * part of Y^T. */
static uint64_t slab_bytes(const efla_vk_limits *limits, uint64_t dkc, uint64_t chunk, uint64_t bv,
                           uint64_t parts) {
    uint64_t half_rows = (dkc / 16 + 1) / 2 * 16, part = chunk * 16 * 4;
    uint64_t staged = chunk * dkc <= 32 * 128 ? 3 : 2;
    uint64_t rows = !limits->coopmat2 ? max_u64(max_u64(half_rows, chunk) * 48, 1024)
                    : parts > 1       ? (2 * parts - 1) * part
                                      : 1024;
    return staged * chunk * (dkc + 8) * 2 + chunk * bv * 4 + (bv / 16) * rows;
}

/* The producing invocations: the fewest whole subgroups for which each of a
 * chunk's W, K^ and Q^ takes at most four 16-byte registers of each (eight
 * above 32 x 128 elements a matrix). Every invocation gets the computing ones' registers, so
 * more producers than that cost occupancy: at S3 (Dk 64) one producer per
 * computing invocation held the slab scan to one workgroup per unit, state
 * 0.317 against 0.199 ms with two. A slab of 256 rows takes 255
 * registers per invocation (driver statistics on the H200), so there the
 * workgroup stays at 256 invocations with four computing subgroups: 64 K
 * registers, a compute unit's. */
static uint32_t slab_producers(const efla_vk_limits *limits, uint64_t dkc, uint64_t chunk) {
    uint64_t sg = limits->subgroup_size, each = chunk * dkc <= 32 * 128 ? 4 : 8;
    uint64_t share = (chunk * dkc / 8 + each - 1) / each;
    return sg ? (uint32_t)((share + sg - 1) / sg * sg) : 0;
}

static uint32_t slab_workgroup(const efla_vk_limits *limits, uint64_t dkc, uint64_t chunk,
                               uint64_t bv, uint64_t parts) {
    return (uint32_t)(bv / 16 * parts) * limits->subgroup_size + slab_producers(limits, dkc, chunk);
}

/* It fits where its shared memory does and its workgroup is allowed; above
 * Dk 128 only its NV cooperative-matrix-2 build, the KHR one there having
 * no measurement behind it (its half slabs of S_c leave one 32-column tile
 * in 48 KB, at 255 registers with some spilled). Only that build splits a
 * slab's rows into parts, each a whole number of 16-row tiles. */
static bool slab_fits(const efla_vk_limits *limits, uint64_t dkc, uint64_t chunk, uint64_t bv,
                      uint64_t parts) {
    uint64_t wg = slab_workgroup(limits, dkc, chunk, bv, parts);
    return limits->subgroup_size && (dkc <= 128 || limits->coopmat2) &&
           (parts == 1 || (limits->coopmat2 && dkc / 16 % parts == 0)) &&
           slab_bytes(limits, dkc, chunk, bv, parts) <= limits->shared_bytes &&
           wg <= limits->max_invocations;
}

/* The slab tile (0: none fits): EFLA_VULKAN_SCAN_BLOCK_V's where it fits;
 * else with NV cooperative matrices 2, 64 columns where that gives about
 * every compute unit a workgroup (groups64: the workgroups at 64 columns),
 * and otherwise 32; else the widest that fits. Each slab's chain is its
 * own, so narrower tiles only add
 * workgroups, each staging the chunk for fewer columns: on the H200 (state
 * ms at 64 / 32 / 16 columns) S1 0.546 / 0.487 / 0.518 (32 / 64 / 128
 * workgroups), S4 2.180 / 1.815 / 1.923 (16 / 32 / 64), S2 0.305 / 0.514 /
 * 1.047 (128 / 256 / 512). */
static uint32_t slab_block(const efla_vk_limits *limits, uint64_t dkc, uint64_t chunk,
                           uint64_t groups64, uint64_t dv) {
    uint32_t forced = limits->scan_block_v;
    if (forced >= 16 && slab_fits(limits, dkc, chunk, forced, 1)) return forced;
    uint64_t units = limits->compute_units ? limits->compute_units : 64;
    uint32_t widest = limits->coopmat2 && groups64 * 4 < units * 3 ? 32 : 64;
    for (uint32_t bv = widest; bv >= 16; bv /= 2)
        if (slab_fits(limits, dkc, chunk, bv, 1) && (bv == 16 || bv / 2 < dv)) return bv;
    return 0;
}

static efla_vk_pipeline_key slab_key(const efla_vk_limits *limits, uint32_t dtype, uint32_t dkc,
                                     uint32_t chunk, uint32_t bv, uint32_t parts) {
    return (efla_vk_pipeline_key){EFLA_VK_SCAN_SLAB_COOPMAT,
                                  slab_workgroup(limits, dkc, chunk, bv, parts),
                                  dtype,
                                  dkc,
                                  chunk,
                                  bv,
                                  slab_producers(limits, dkc, chunk),
                                  limits->coopmat2 ? EFLA_VK_WORDS_CM2 : EFLA_VK_WORDS,
                                  1,
                                  parts,
                                  0,
                                  0};
}

bool efla_vk_tiles_slab_key(const efla_vk_limits *limits, uint32_t dtype, uint32_t dkc,
                            uint32_t chunk, uint32_t bv, efla_vk_pipeline_key *key) {
    if (!slab_fits(limits, dkc, chunk, bv, 1)) return false;
    *key = slab_key(limits, dtype, dkc, chunk, bv, 1);
    return true;
}

/* Whether every pair of output columns j, j + 1 (j even) is one 32-bit
 * word of the output: contiguous rows of an even Dv at an even element of
 * a 4-byte aligned place. */
static bool out_pairs_are_words(const efla_forward_args *args) {
    const efla_tensor_view *out = &args->out;
    if (!out->buffer || efla_dtype_size(out->dtype) != 2 || args->dv % 2 || out->strides[3] != 1)
        return false;
    for (int d = 0; d < 3; ++d)
        if (out->strides[d] % 2) return false;
    return (out->buffer->base + out->offset_elements * 2) % 4 == 0;
}

/* Whether the slab scan forms the output itself (FUSED_OUT, its EFLA_CM2
 * build with one part): its producers form G^T once per chunk while the
 * slabs compute, and after one more workgroup barrier each slab adds O off
 * its chain, so that the output kernel, and V' and Y in the scratch, go.
 * Its shared memory grows by G^T (f16, rows padded by 16 bytes) and two
 * factors a row. Where the workgroups (`groups`) fill about every compute
 * unit it pays; where they do not, the chain is the limit and the barrier
 * and the output's work lengthen it. On the H200 (efla bench, ms, fused /
 * not): S2 0.775 / 0.957, S3 0.822 / 1.035, S5 1.446 / 1.516; S1 (64
 * workgroups) 0.998 / 0.787, S4 (32, in 4 legs) 1.742 / 1.698. */
static bool slab_forms_output(const efla_vk_limits *limits, const efla_forward_args *args,
                              uint64_t dkc, uint64_t chunk, uint64_t bv, uint32_t parts,
                              uint64_t groups) {
    uint64_t extra = chunk * (chunk + 8) * 2 + chunk * 8;
    uint64_t units = limits->compute_units ? limits->compute_units : 64;
    bool wanted = limits->scan_output < 0 ? groups * 4 >= units * 3 : limits->scan_output == 1;
    return wanted && limits->coopmat2 && parts == 1 && out_pairs_are_words(args) &&
           slab_bytes(limits, dkc, chunk, bv, parts) + extra <= limits->shared_bytes;
}

/* Subgroups per slab: EFLA_VULKAN_SCAN_PARTS's where it fits, else 1. */
static uint32_t slab_parts(const efla_vk_limits *limits, uint64_t dkc, uint64_t chunk,
                           uint64_t bv) {
    uint32_t forced = limits->scan_parts;
    if (forced > 1 && slab_fits(limits, dkc, chunk, bv, forced)) return forced;
    return 1;
}

/* Chunks of 64 tokens halve the scan's serial steps; chunks of 32 halve the
 * prepare's and output's work per token (their products grow with the
 * chunk). The scan's steps decide only where its workgroups at chunk 64
 * leave compute units idle. On the H200 (5f4ca19, ms at chunk 64 / 32):
 * S1 2.01 / 2.32 and S4 5.09 / 7.64 (128 and 64 scan workgroups), S2 3.98 /
 * 3.11 and S3 4.06 / 2.17 (512 and 1024). */
static bool scan_fills_device(const efla_vk_limits *limits, uint64_t dkc, uint64_t sequences,
                              uint64_t heads, uint64_t dv) {
    uint32_t bv = scan_block(limits, dkc, 64, sequences, heads, dv);
    uint64_t units = limits->compute_units ? limits->compute_units : 64;
    return bv && sequences * heads * ((dv + bv - 1) / bv) >= units;
}

/* Invocations of the prepare and the output. The H200's driver runs one
 * workgroup of 48 KB per compute unit (64 KB of shared memory per unit, as
 * measured), and at Dk 128 and chunk 64 both kernels need about 48 KB: more
 * invocations per workgroup is then the only way to more warps. At S1 (ms,
 * with the kernels that came with this choice) 128 / 256 / 512
 * invocations: prepare 0.569 / 0.426 / 0.406, output 0.660 / 0.471 / 0.410.
 * Where two workgroups of each share a unit, 256 invocations (128
 * registers each: two workgroups fill the H200's 64 K) were best: at S3
 * (Dk 64) 1.612 against 1.680 ms at 512; at S2 (Dk 128, chunk 32, output
 * 64 columns) 1.199 against 1.298. */
static uint32_t coopmat_workgroup(const efla_vk_limits *limits, uint64_t dkc, uint64_t chunk,
                                  uint32_t out_bv) {
    uint32_t wg = limits->coopmat_workgroup;
    bool shared_unit = two_per_unit(limits, prep_bytes(dkc, chunk)) &&
                       two_per_unit(limits, out_bytes(dkc, chunk, out_bv));
    if (!wg) wg = dkc >= 128 && !shared_unit ? 512 : 256;
    while (wg > 128 && wg > limits->max_invocations)
        wg /= 2;
    return wg;
}

bool efla_vk_tiles_coopmat(const efla_vk_limits *limits, const efla_forward_args *args,
                           uint64_t chunked_sequences, uint32_t dtype, efla_vk_tiles *tiles) {
    /* Below 16, Dk or Dv is mostly padding in a 16x16 matrix and the f16
     * rounding of the state and V' operands is not diluted over many terms:
     * the H200 missed the f16 contract at Dk = Dv = 1 (0.013 > 3e-3). Such
     * requests run the portable f32 kernels, as CUDA's mma path does. */
    if (limits->path != EFLA_VK_PATH_COOPMAT || args->storage == EFLA_DTYPE_F32 || args->dk < 16 ||
        args->dv < 16)
        return false;
    uint32_t chunks[] = {64, 32};
    uint64_t dkc = tiles->dk_class, dv = (uint64_t)args->dv;
    bool full = scan_fills_device(limits, dkc, chunked_sequences, (uint64_t)args->value_heads, dv);
    /* With NV cooperative matrices 2 the slab scan at chunk 32 beat the
     * split scan at chunk 64 where the device is not full too: on the H200
     * S1 0.845 against 1.006 ms, S4 2.498 against 2.649. */
    if (full || limits->coopmat2) {
        chunks[0] = 32;
        chunks[1] = 64;
    }
    for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; ++c) {
        uint32_t chunk = chunks[c];
        uint32_t out_bv = out_block(limits, dkc, chunk, dv);
        if ((limits->chunk && limits->chunk != chunk) || !out_bv ||
            prep_bytes(dkc, chunk) > limits->shared_bytes)
            continue;
        uint32_t wg = coopmat_workgroup(limits, dkc, chunk, out_bv);
        if (limits->max_invocations < wg || wg > 16 * chunk) /* rows of 16 invocations at most */
            continue;
        uint32_t scan_bv =
            scan_block(limits, dkc, chunk, chunked_sequences, (uint64_t)args->value_heads, dv);
        if (!scan_bv) continue;
        tiles->chunk = chunk;
        /* One build only: these kernels read f16/bf16 tensors through 32-bit words. */
        tiles->prep = (efla_vk_pipeline_key){EFLA_VK_PREP_COOPMAT,
                                             wg,
                                             dtype,
                                             (uint32_t)dkc,
                                             chunk,
                                             16,
                                             1,
                                             EFLA_VK_WORDS,
                                             0,
                                             0,
                                             0,
                                             0};
        tiles->scan = (efla_vk_pipeline_key){EFLA_VK_SCAN_COOPMAT,
                                             scan_workgroup(dkc, chunk),
                                             dtype,
                                             (uint32_t)dkc,
                                             chunk,
                                             scan_bv,
                                             1,
                                             EFLA_VK_WORDS,
                                             0,
                                             0,
                                             0,
                                             0};
        /* Where the sequences fill the device, a slab's serial chain is not
         * what limits the scan, but the work per chunk is, and the slab scan
         * has less of it (no workgroup barrier between the products). With
         * NV cooperative matrices 2 its chain is the shorter one too (S_c
         * and V' need no trip through shared memory), so it runs wherever it
         * fits. */
        uint64_t groups64 = chunked_sequences * (uint64_t)args->value_heads * ((dv + 63) / 64);
        uint32_t slab_bv = slab_block(limits, dkc, chunk, groups64, dv);
        bool slabs = slab_bv &&
                     (limits->scan_slabs < 0 ? full || limits->coopmat2 : limits->scan_slabs == 1);
        uint32_t parts = slabs ? slab_parts(limits, dkc, chunk, slab_bv) : 1;
        if (slabs) tiles->scan = slab_key(limits, dtype, (uint32_t)dkc, chunk, slab_bv, parts);
        uint64_t slab_groups = chunked_sequences * (uint64_t)args->value_heads *
                               ((dv + slab_bv - 1) / (slab_bv ? slab_bv : 1));
        tiles->scan.fused_out =
            slabs && slab_forms_output(limits, args, dkc, chunk, slab_bv, parts, slab_groups);
        tiles->out = (efla_vk_pipeline_key){EFLA_VK_OUT_COOPMAT,
                                            wg,
                                            dtype,
                                            (uint32_t)dkc,
                                            chunk,
                                            out_bv,
                                            1,
                                            EFLA_VK_WORDS,
                                            0,
                                            0,
                                            0,
                                            0};
        /* The scan hands the output Y = Q^ S_c (f32, CH x Dv a chunk) in
         * place of the states H (f16, DKC x Dv), and the prepare writes Q^
         * for it: the slab scan always, the split scan where Y is smaller.
         * On the H200 (ms, state / output) at S5 (Dk 256, chunk 32) Y took
         * 1.61 / 0.73 to 1.67 / 0.38; at S4 (Dk 128, chunk 64, the same
         * bytes) 1.42 / 0.70 to 1.75 / 0.53, its tiles' loads of Q^ then
         * lengthening the scan's chunk more than they save the output. */
        uint32_t y = slabs || 2 * chunk < dkc;
        tiles->prep.scan_y = tiles->scan.scan_y = tiles->out.scan_y = y;
        return true;
    }
    return false;
}
