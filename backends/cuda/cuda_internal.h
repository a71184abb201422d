/* The CUDA backend's objects, shared by its files only. */
#ifndef EFLA_CUDA_INTERNAL_H
#define EFLA_CUDA_INTERNAL_H

#include "backends/cuda/cuda_api.h"
#include "core/backend.h"
#include "efla_cuda_params.h"

#include <stdbool.h>

typedef enum efla_cuda_kernel {
#define EFLA_CUDA_ENUM(id, name, module) EFLA_CUDA_KERNEL_##id,
    EFLA_CUDA_KERNELS(EFLA_CUDA_ENUM)
#undef EFLA_CUDA_ENUM
        EFLA_CUDA_KERNEL_COUNT
} efla_cuda_kernel;

typedef enum efla_cuda_module_id {
    EFLA_CUDA_MODULE_RECURRENT,
    EFLA_CUDA_MODULE_CHUNK_SIMT,
    EFLA_CUDA_MODULE_CHUNK_MMA,
    EFLA_CUDA_MODULE_COUNT
} efla_cuda_module_id;

/* Kernel paths, forcible with EFLA_PATH. */
typedef enum efla_cuda_path {
    EFLA_CUDA_PATH_AUTO = 0,
    EFLA_CUDA_PATH_SIMT = 1, /* plain f32 FMA for everything */
    EFLA_CUDA_PATH_MMA = 2,  /* tensor cores for the chunked kernels of f16/bf16 storage */
} efla_cuda_path;
#define EFLA_CUDA_PATH_NAMES "simt, mma"

/* Device properties the backend plans with. */
typedef struct efla_cuda_device_props {
    CUdevice device;
    int ordinal;
    int sm_count;
    int cc_major, cc_minor;
    int smem_optin;  /* bytes of dynamic shared memory a block may opt into */
    int smem_per_sm; /* bytes of shared memory of one SM, all blocks together */
} efla_cuda_device_props;

struct efla_backend_buffer {
    CUdeviceptr address;
    uint64_t size;
    bool owned; /* false for wrapped caller memory */
};

struct efla_backend_context {
    efla_backend_context_params params;
    efla_cuda_device_props props;
    CUcontext cu;
    bool primary; /* retained primary context: released on destroy */
    CUstream stream;
    bool own_stream;
    efla_cuda_path path;
    CUmodule modules[EFLA_CUDA_MODULE_COUNT];
    CUfunction kernels[EFLA_CUDA_KERNEL_COUNT];
    int kernel_smem[EFLA_CUDA_KERNEL_COUNT]; /* opted-in dynamic shared memory */
    CUdeviceptr scratch;                     /* chunk scratch, grown as needed */
    uint64_t scratch_size;
    CUdeviceptr table; /* varlen sequence table */
    uint64_t table_size;
    CUevent work_done; /* after the last forward: orders the scratch across streams */
    bool work_recorded;
    CUevent timer_start, timer_stop; /* EFLA_CONTEXT_PROFILING */
    bool timed;
};

/* cuda_mma_plan.c: tiles of the mma state and output kernels (columns). */
typedef struct efla_cuda_mma_tiles {
    int state, output;
    int state_stages;  /* chunk operand buffers of the state kernel */
    int state_parts;   /* warps per 16 columns of the state kernel (2 or 4) */
    bool fused;        /* the state kernel writes the output (no output kernel) */
    bool wide_prepare; /* the prepare kernel of 16 warps, not 8 */
} efla_cuda_mma_tiles;
/* False when the mma kernels do not fit the device's shared memory. */
bool efla_cuda_mma_choose(const efla_cuda_device_props *props, int64_t seq_heads, int64_t dk,
                          int64_t dv, efla_cuda_mma_tiles *out);
efla_cuda_kernel efla_cuda_mma_state_kernel(bool bf16, int64_t dk, const efla_cuda_mma_tiles *t);
efla_cuda_kernel efla_cuda_mma_output_kernel(bool bf16, int tile);

/* cuda_device.c */
efla_status efla_cuda_probe(void);
efla_status efla_cuda_device_count(uint32_t *out_count);
efla_status efla_cuda_device_info(uint32_t index, efla_device_info *info);
efla_status efla_cuda_device_props_get(CUdevice device, int ordinal, efla_cuda_device_props *out);
efla_status efla_cuda_fill_info(const efla_cuda_device_props *props, efla_device_info *info);
/* The path named by EFLA_PATH (AUTO when unset), or UNSUPPORTED. */
efla_status efla_cuda_path_from_env(efla_cuda_path *out);
const char *efla_cuda_path_name(efla_cuda_path path);

/* cuda_module.c: loads the embedded fatbins into the current context and
 * resolves every kernel. */
efla_status efla_cuda_modules_load(efla_backend_context *ctx);
void efla_cuda_modules_unload(efla_backend_context *ctx);
/* Launches kernel `id` with `params` on `stream` (opting into the shared
 * memory first when it exceeds the default 48 KiB). */
efla_status efla_cuda_launch(efla_backend_context *ctx, efla_cuda_kernel id, CUstream stream,
                             uint32_t grid_x, uint32_t grid_y, uint32_t threads,
                             uint32_t smem_bytes, const efla_cuda_params *params);

/* cuda_context.c. enter/leave make the context current on this thread for
 * the duration of a hook. */
efla_status efla_cuda_enter(efla_backend_context *ctx);
void efla_cuda_leave(efla_backend_context *ctx);
efla_status efla_cuda_ctx_create(const efla_backend_context_params *params,
                                 efla_backend_context **out);
efla_status efla_cuda_ctx_create_native(efla_native_kind kind, const void *native_info,
                                        const efla_backend_context_params *params,
                                        efla_backend_context **out);
void efla_cuda_ctx_destroy(efla_backend_context *ctx);
efla_status efla_cuda_ctx_device_info(efla_backend_context *ctx, efla_device_info *info);
efla_status efla_cuda_synchronize(efla_backend_context *ctx);
efla_status efla_cuda_last_forward_ms(efla_backend_context *ctx, double *out_ms);

/* cuda_buffer.c */
efla_status efla_cuda_buffer_create(efla_backend_context *ctx, uint64_t size,
                                    efla_backend_buffer **out);
efla_status efla_cuda_buffer_wrap_native(efla_backend_context *ctx, efla_native_kind kind,
                                         const void *native_buffer, uint64_t size,
                                         efla_backend_buffer **out);
void efla_cuda_buffer_destroy(efla_backend_context *ctx, efla_backend_buffer *buf);
efla_status efla_cuda_buffer_upload(efla_backend_context *ctx, efla_backend_buffer *buf,
                                    uint64_t offset, const void *src, uint64_t size);
efla_status efla_cuda_buffer_download(efla_backend_context *ctx, efla_backend_buffer *buf,
                                      uint64_t offset, void *dst, uint64_t size);

/* cuda_forward.c */
efla_status efla_cuda_forward(efla_backend_context *ctx, const efla_forward_args *args);
efla_status efla_cuda_forward_query(efla_backend_context *ctx, const efla_forward_args *args,
                                    efla_forward_plan *plan);
efla_status efla_cuda_record(efla_backend_context *ctx, efla_native_kind kind,
                             const void *native_cmd, const efla_forward_args *args);

#endif
