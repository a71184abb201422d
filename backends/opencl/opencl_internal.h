/* The OpenCL backend's objects, shared by its files only. */
#ifndef EFLA_OPENCL_INTERNAL_H
#define EFLA_OPENCL_INTERNAL_H

#include "backends/opencl/opencl_device.h"
#include "backends/opencl/opencl_loader.h"
#include "backends/opencl/opencl_path.h"
#include "core/backend.h"

#include <stdbool.h>

/* Tile class: the build-time constants of the chunk kernels. */
typedef struct efla_cl_tiles {
    uint32_t chunk;      /* EFLA_CHUNK: 64, or 32 on small devices; the output has 4 C items */
    uint32_t work_group; /* EFLA_WG of the recurrent and prepare kernels: 256, 128 or 64 */
    uint32_t rows_max;   /* EFLA_RMAX: state rows per item of the recurrent kernel */
} efla_cl_tiles;

/* The kernels of one program (one storage dtype and tile class). The
 * state scan comes in three Dv tile widths: EFLA_CL_STATE + log2(width / 8).
 * nvmma programs of 16-bit storage and the tile class of chunk 64 and 256
 * items add the tensor-core pipeline: prepare, output and the state scan
 * in the shapes of efla_cl_nvmma_shapes (EFLA_CL_NVMMA_STATE + index);
 * other programs leave those kernels NULL. */
enum {
    EFLA_CL_RECURRENT,
    EFLA_CL_PREPARE,
    EFLA_CL_STATE, /* 8 columns */
    EFLA_CL_STATE16,
    EFLA_CL_STATE32,
    EFLA_CL_OUTPUT,
    EFLA_CL_NVMMA_PREPARE,
    EFLA_CL_NVMMA_OUTPUT,
    EFLA_CL_NVMMA_STATE, /* efla_cl_nvmma_shapes[0]; the others follow */
    EFLA_CL_KERNEL_COUNT = EFLA_CL_NVMMA_STATE + 7
};
#define EFLA_CL_NVMMA_STATE_MAX_DK 256

/* The nvmma state scan's shapes (shaders/opencl/efla_forward.cl builds
 * the same, in this order): the largest Dk, groups of 16 value columns
 * per work-group and warps (parts) per group. */
typedef struct efla_cl_scan_shape {
    uint32_t dk, groups, parts;
} efla_cl_scan_shape;
extern const efla_cl_scan_shape efla_cl_nvmma_shapes[EFLA_CL_KERNEL_COUNT - EFLA_CL_NVMMA_STATE];

typedef struct efla_cl_program {
    cl_program program; /* NULL until first needed */
    cl_kernel kernels[EFLA_CL_KERNEL_COUNT];
    size_t max_work_group[EFLA_CL_KERNEL_COUNT]; /* CL_KERNEL_WORK_GROUP_SIZE */
    uint64_t static_local[EFLA_CL_KERNEL_COUNT]; /* CL_KERNEL_LOCAL_MEM_SIZE */
    efla_cl_tiles tiles;                         /* the class it was built for */
} efla_cl_program;

/* Events the next command must wait for (the previous operation's last
 * commands), or the kernels of the last forward (for profiling). */
#define EFLA_CL_MAX_EVENTS 4
typedef struct efla_cl_events {
    cl_event list[EFLA_CL_MAX_EVENTS];
    cl_uint count;
} efla_cl_events;

struct efla_backend_context {
    efla_backend_context_params params;
    efla_cl_device device;
    cl_context context;
    cl_command_queue queue;
    bool out_of_order; /* the queue may run commands concurrently: chain with events */
    bool profiling;
    const char *timed_names[EFLA_CL_MAX_EVENTS]; /* the stage of each event in `timed` */
    bool native; /* context and queue belong to the host */
    efla_cl_path path;
    bool path_forced; /* by EFLA_PATH: a failing nvmma build is then an error, not a fallback */
    efla_cl_tiles tiles;
    efla_cl_program programs[4]; /* by storage dtype (EFLA_DTYPE_F32..BF16) */
    cl_mem scratch;
    uint64_t scratch_bytes;
    /* The last forward's parameter block (read-only on the device) and its
     * host copy: a repeated call of one shape reuses it as it is. */
    cl_mem call;
    void *call_block;
    size_t call_bytes;
    efla_cl_events tail;  /* what the next operation waits for */
    efla_cl_events timed; /* the last forward's kernels */
};

struct efla_backend_buffer {
    cl_mem memory;
    uint64_t offset; /* bytes: a host cl_mem may be wrapped from an offset */
    bool owned;
};

/* ---- opencl_backend.c ---- */
/* Creates the context's state on an existing cl_context/queue (retained). */
efla_status efla_cl_context_init(const efla_backend_context_params *params,
                                 const efla_cl_device *device, cl_context context,
                                 cl_command_queue queue, bool native, efla_backend_context **out);
void efla_cl_context_destroy(efla_backend_context *ctx);

/* ---- events ---- */
void efla_cl_events_clear(efla_cl_events *events);
/* Replaces `events` with `count` new events (takes ownership). */
void efla_cl_events_set(efla_cl_events *events, const cl_event *list, cl_uint count);

/* ---- opencl_program.c ---- */
/* The program of `storage` for the context, built (or loaded from the
 * disk cache) on first use. */
efla_status efla_cl_program_get(efla_backend_context *ctx, efla_dtype storage,
                                const efla_cl_program **out);
void efla_cl_program_release(efla_cl_program *program);
/* The tile class for a device (local memory, work-group limits). */
efla_cl_tiles efla_cl_tiles_for(const efla_cl_device *device);

/* ---- opencl_forward.c ---- */
/* Enqueues a validated forward on `queue` after `wait` and the context's
 * tail; the tail then holds the forward's last commands. */
efla_status efla_cl_forward_enqueue(efla_backend_context *ctx, const efla_forward_args *args,
                                    cl_command_queue queue, const cl_event *wait,
                                    cl_uint wait_count);
efla_status efla_cl_forward_query(efla_backend_context *ctx, const efla_forward_args *args,
                                  efla_forward_plan *plan);

/* ---- opencl_buffer.c ---- */
efla_status efla_cl_buffer_create(efla_backend_context *ctx, uint64_t size,
                                  efla_backend_buffer **out);
efla_status efla_cl_buffer_wrap(efla_backend_context *ctx, cl_mem memory, uint64_t offset,
                                efla_backend_buffer **out);
void efla_cl_buffer_destroy(efla_backend_context *ctx, efla_backend_buffer *buf);
efla_status efla_cl_buffer_upload(efla_backend_context *ctx, efla_backend_buffer *buf,
                                  uint64_t offset, const void *src, uint64_t size);
efla_status efla_cl_buffer_download(efla_backend_context *ctx, efla_backend_buffer *buf,
                                    uint64_t offset, void *dst, uint64_t size);

/* ---- opencl_interop.c ---- */
efla_status efla_cl_context_create_native(efla_native_kind kind, const void *native_info,
                                          const efla_backend_context_params *params,
                                          efla_backend_context **out);
efla_status efla_cl_buffer_wrap_native(efla_backend_context *ctx, efla_native_kind kind,
                                       const void *native_buffer, uint64_t size,
                                       efla_backend_buffer **out);
efla_status efla_cl_forward_record(efla_backend_context *ctx, efla_native_kind kind,
                                   const void *native_cmd, const efla_forward_args *args);

#endif
