/*
 * Building the kernels: the embedded source (includes expanded at build
 * time) compiled at run time with -D options for the storage dtype and the
 * tile class, through the on-disk binary cache (opencl_cache.h).
 */
#include "backends/opencl/opencl_cache.h"
#include "backends/opencl/opencl_error.h"
#include "backends/opencl/opencl_internal.h"
#include "core/error.h"
#include "shaders/opencl/efla_params.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const unsigned char efla_opencl_source[];
extern const size_t efla_opencl_source_size;

static const char *const kernel_names[EFLA_CL_KERNEL_COUNT] = {"efla_recurrent",
                                                               "efla_chunk_prepare",
                                                               "efla_chunk_state8",
                                                               "efla_chunk_state16",
                                                               "efla_chunk_state32",
                                                               "efla_chunk_output",
                                                               "efla_nvmma_prepare",
                                                               "efla_nvmma_output",
                                                               "efla_nvmma_state_k128_g1_p2",
                                                               "efla_nvmma_state_k128_g2_p2",
                                                               "efla_nvmma_state_k128_g4_p2",
                                                               "efla_nvmma_state_k128_g1_p4",
                                                               "efla_nvmma_state_k128_g2_p4",
                                                               "efla_nvmma_state_k256_g1_p4",
                                                               "efla_nvmma_state_k256_g2_p4"};

/* Reads a power-of-two override from the environment (tests force small
 * tiles with it); 0 when unset or not one of `allowed`. */
static uint32_t env_choice(const char *name, const uint32_t *allowed, size_t count) {
    const char *text = getenv(name);
    if (!text || !*text) return 0;
    unsigned long value = strtoul(text, NULL, 10);
    for (size_t i = 0; i < count; ++i)
        if (value == allowed[i]) return allowed[i];
    return 0;
}

efla_cl_tiles efla_cl_tiles_for(const efla_cl_device *device) {
    static const uint32_t chunks[] = {32, 64}, groups[] = {64, 128, 256};
    efla_cl_tiles tiles = {64, 256, 16};
    /* The prepare kernel keeps two C x C matrices in local memory; the
     * output kernel runs 4 C items. */
    if (device->local_memory < 40 * 1024 || device->max_work_group < 256) tiles.chunk = 32;
    while (tiles.work_group > 64 && tiles.work_group > device->max_work_group)
        tiles.work_group /= 2;
    uint32_t forced = env_choice("EFLA_OPENCL_CHUNK", chunks, 2);
    if (forced) tiles.chunk = forced;
    forced = env_choice("EFLA_OPENCL_WG", groups, 3);
    if (forced) tiles.work_group = forced;
    return tiles;
}

/* Whether the program of `storage` holds the nvmma kernels: the nvmma
 * path's 16-bit storage programs (f32 storage keeps f32 products). */
static bool uses_nvmma(const efla_backend_context *ctx, efla_dtype storage) {
    return ctx->path == EFLA_CL_PATH_NVMMA && storage != EFLA_DTYPE_F32;
}

static void build_options(const efla_backend_context *ctx, efla_dtype storage,
                          const efla_cl_tiles *tiles, char *out, size_t size) {
    const char *extra = getenv("EFLA_OPENCL_BUILD_OPTIONS");
    const char *nvmma = !uses_nvmma(ctx, storage)  ? ""
                        : efla_cl_nvmma_emulated() ? " -DEFLA_NVMMA=1 -DEFLA_NVMMA_EMULATE=1"
                                                   : " -DEFLA_NVMMA=1";
    snprintf(out, size,
             "-cl-std=CL1.2 -DEFLA_STORAGE=%d -DEFLA_CHUNK=%u -DEFLA_WG=%u -DEFLA_RMAX=%u%s%s%s",
             (int)storage, tiles->chunk, tiles->work_group, tiles->rows_max, nvmma,
             extra ? " " : "", extra ? extra : "");
}

/* Everything a binary depends on. */
static void cache_key(const efla_cl_device *device, const char *options, char *out, size_t size) {
    uint64_t source_hash =
        efla_cl_hash(efla_opencl_source, efla_opencl_source_size, EFLA_CL_HASH_SEED);
    snprintf(out, size,
             "efla-opencl-binary 1\nefla %s\nplatform %s\ndevice %s\ndriver %s\noptions %s\n"
             "source %016llx\n",
             efla_version_string(), device->platform_version, device->info.name,
             device->info.driver_version, options, (unsigned long long)source_hash);
}

static efla_status build_failure(efla_backend_context *ctx, cl_program program, cl_int err) {
    char log[768] = "";
    size_t length = 0;
    efla_cl.clGetProgramBuildInfo(program, ctx->device.device, CL_PROGRAM_BUILD_LOG, sizeof log - 1,
                                  log, &length);
    log[sizeof log - 1] = '\0';
    const char *name = efla_cl_error_name(err);
    return efla_error(EFLA_ERROR_KERNEL_BUILD,
                      "building the OpenCL kernels for '%s' failed (%s): %s", ctx->device.info.name,
                      name ? name : "OpenCL error", log);
}

static efla_status build_from_source(efla_backend_context *ctx, const char *options,
                                     cl_program *out) {
    const char *source = (const char *)efla_opencl_source;
    cl_int err;
    cl_program program = efla_cl.clCreateProgramWithSource(ctx->context, 1, &source, NULL, &err);
    if (err != CL_SUCCESS) return efla_cl_fail(err, "clCreateProgramWithSource");
    err = efla_cl.clBuildProgram(program, 1, &ctx->device.device, options, NULL, NULL);
    if (err != CL_SUCCESS) {
        efla_status status = build_failure(ctx, program, err);
        efla_cl.clReleaseProgram(program);
        return status;
    }
    *out = program;
    return EFLA_SUCCESS;
}

/* A program from a cached binary; false (and nothing kept) on any doubt. */
static bool build_from_binary(efla_backend_context *ctx, const char *options,
                              const unsigned char *binary, size_t size, cl_program *out) {
    cl_int err, binary_status = CL_SUCCESS;
    cl_program program = efla_cl.clCreateProgramWithBinary(ctx->context, 1, &ctx->device.device,
                                                           &size, &binary, &binary_status, &err);
    if (err != CL_SUCCESS || binary_status != CL_SUCCESS) {
        if (err == CL_SUCCESS) efla_cl.clReleaseProgram(program);
        return false;
    }
    if (efla_cl.clBuildProgram(program, 1, &ctx->device.device, options, NULL, NULL) !=
        CL_SUCCESS) {
        efla_cl.clReleaseProgram(program);
        return false;
    }
    *out = program;
    return true;
}

/* The program's binary for our device (a host context may hold several
 * devices; the program then has one binary slot per device). */
static bool program_binary(efla_backend_context *ctx, cl_program program, unsigned char **out,
                           size_t *out_size) {
    cl_uint count = 0;
    if (efla_cl.clGetProgramInfo(program, CL_PROGRAM_NUM_DEVICES, sizeof count, &count, NULL) !=
            CL_SUCCESS ||
        count == 0 || count > 64)
        return false;
    cl_device_id devices[64];
    size_t sizes[64];
    unsigned char *binaries[64] = {NULL};
    if (efla_cl.clGetProgramInfo(program, CL_PROGRAM_DEVICES, count * sizeof *devices, devices,
                                 NULL) != CL_SUCCESS ||
        efla_cl.clGetProgramInfo(program, CL_PROGRAM_BINARY_SIZES, count * sizeof *sizes, sizes,
                                 NULL) != CL_SUCCESS)
        return false;
    cl_uint mine = count;
    for (cl_uint i = 0; i < count; ++i)
        if (devices[i] == ctx->device.device) mine = i;
    if (mine == count || sizes[mine] == 0 || !(binaries[mine] = malloc(sizes[mine]))) return false;
    if (efla_cl.clGetProgramInfo(program, CL_PROGRAM_BINARIES, count * sizeof *binaries, binaries,
                                 NULL) != CL_SUCCESS) {
        free(binaries[mine]);
        return false;
    }
    *out = binaries[mine];
    *out_size = sizes[mine];
    return true;
}

/* The nvmma kernels exist only in programs built with EFLA_NVMMA for the
 * tile class of chunk 64 and 256 items (shaders/opencl/efla_forward.cl). */
static bool has_nvmma(const efla_backend_context *ctx, efla_dtype storage,
                      const efla_cl_tiles *tiles) {
    return uses_nvmma(ctx, storage) && tiles->chunk == EFLA_NV_CHUNK &&
           tiles->work_group == EFLA_NV_PREPARE_ITEMS;
}

static efla_status create_kernels(efla_backend_context *ctx, bool nvmma, efla_cl_program *p) {
    const int count = nvmma ? EFLA_CL_KERNEL_COUNT : EFLA_CL_NVMMA_PREPARE;
    for (int i = 0; i < count; ++i) {
        cl_int err;
        p->kernels[i] = efla_cl.clCreateKernel(p->program, kernel_names[i], &err);
        if (err != CL_SUCCESS) {
            p->kernels[i] = NULL;
            efla_status status = efla_cl_fail(err, "clCreateKernel");
            efla_error_prefix(kernel_names[i]);
            return status;
        }
        efla_cl.clGetKernelWorkGroupInfo(p->kernels[i], ctx->device.device,
                                         CL_KERNEL_WORK_GROUP_SIZE, sizeof p->max_work_group[i],
                                         &p->max_work_group[i], NULL);
        cl_ulong local = 0;
        efla_cl.clGetKernelWorkGroupInfo(p->kernels[i], ctx->device.device,
                                         CL_KERNEL_LOCAL_MEM_SIZE, sizeof local, &local, NULL);
        p->static_local[i] = local;
    }
    return EFLA_SUCCESS;
}

void efla_cl_program_release(efla_cl_program *p) {
    for (int i = 0; i < EFLA_CL_KERNEL_COUNT; ++i)
        if (p->kernels[i]) efla_cl.clReleaseKernel(p->kernels[i]);
    if (p->program) efla_cl.clReleaseProgram(p->program);
    memset(p, 0, sizeof *p);
}

/* Builds (or loads) one program for one tile class, with its kernels. */
static efla_status build_program(efla_backend_context *ctx, efla_dtype storage,
                                 const efla_cl_tiles *tiles, efla_cl_program *p) {
    char options[512], key[2048], dir[1024], file[1200];
    build_options(ctx, storage, tiles, options, sizeof options);
    cache_key(&ctx->device, options, key, sizeof key);
    bool cached =
        efla_cl_cache_directory(dir, sizeof dir) && efla_cl_cache_file(dir, key, file, sizeof file);
    unsigned char *binary = NULL;
    size_t size = 0;
    bool loaded = cached && efla_cl_cache_load(file, key, &binary, &size) &&
                  build_from_binary(ctx, options, binary, size, &p->program);
    free(binary);
    binary = NULL;
    if (!loaded) {
        efla_status status = build_from_source(ctx, options, &p->program);
        if (status != EFLA_SUCCESS) return status;
    }
    efla_status status = create_kernels(ctx, has_nvmma(ctx, storage, tiles), p);
    if (status != EFLA_SUCCESS) return status;
    /* Stored only after the kernels exist: some drivers' binaries lack
     * kernels that were never created. A failed store costs nothing. */
    if (cached && !loaded && program_binary(ctx, p->program, &binary, &size)) {
        efla_cl_cache_store(dir, file, key, binary, size);
        free(binary);
    }
    return EFLA_SUCCESS;
}

/* The nvmma path was chosen by default but its kernels do not build (a
 * driver whose compiler rejects the inline PTX): the context runs the
 * portable kernels instead, and says so in its kernel path. */
static void fall_back_to_portable(efla_backend_context *ctx) {
    ctx->path = EFLA_CL_PATH_PORTABLE;
    snprintf(ctx->device.info.kernel_path, sizeof ctx->device.info.kernel_path, "%s",
             efla_cl_path_name(ctx->path));
}

efla_status efla_cl_program_get(efla_backend_context *ctx, efla_dtype storage,
                                const efla_cl_program **out) {
    efla_cl_program *p = &ctx->programs[storage];
    if (p->program) {
        *out = p;
        return EFLA_SUCCESS;
    }
    /* A kernel whose registers do not allow the class's work-group size is
     * rebuilt with a smaller one (a smaller chunk for the chunk kernels). */
    efla_cl_tiles tiles = ctx->tiles;
    for (;;) {
        efla_status status = build_program(ctx, storage, &tiles, p);
        if (status != EFLA_SUCCESS) {
            efla_cl_program_release(p);
            if (!uses_nvmma(ctx, storage) || ctx->path_forced) return status;
            fall_back_to_portable(ctx);
            continue;
        }
        bool scan_fits = p->max_work_group[EFLA_CL_OUTPUT] >= 4 * tiles.chunk;
        for (int i = EFLA_CL_STATE; i <= EFLA_CL_STATE32; ++i)
            scan_fits &= p->max_work_group[i] >= 2 * tiles.chunk;
        const bool others_fit = p->max_work_group[EFLA_CL_RECURRENT] >= tiles.work_group &&
                                p->max_work_group[EFLA_CL_PREPARE] >= tiles.work_group;
        if (scan_fits && others_fit) break;
        efla_cl_program_release(p);
        if ((!scan_fits && tiles.chunk <= 32) || (!others_fit && tiles.work_group <= 64))
            return efla_error(EFLA_ERROR_UNSUPPORTED,
                              "the OpenCL device '%s' cannot run efla's smallest work-groups",
                              ctx->device.info.name);
        if (!scan_fits) tiles.chunk = 32;
        if (!others_fit) tiles.work_group /= 2;
    }
    p->tiles = tiles;
    *out = p;
    return EFLA_SUCCESS;
}
