/*
 * efla — Exact Flow / Error-Free Linear Attention on any GPU and on the CPU.
 *
 * The core API. It includes no GPU header; interop with a host's own
 * Vulkan, OpenCL or CUDA objects lives in efla_vulkan.h, efla_opencl.h and
 * efla_cuda.h.
 *
 * Conventions
 *   - Every create function returns an efla_status and writes the handle
 *     through an out-parameter; every destroy function accepts NULL.
 *   - On failure a call returns a non-zero status, sets a thread-local
 *     message (efla_last_error_message) and writes nothing.
 *   - Descriptor structs start with `struct_size`; initialise them with the
 *     matching *_INIT macro so that later fields default sensibly.
 *   - A context is used by one thread at a time; different contexts may be
 *     used concurrently from different threads.
 */
#ifndef EFLA_EFLA_H
#define EFLA_EFLA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32) && defined(EFLA_SHARED)
#if defined(EFLA_BUILDING_LIBRARY)
#define EFLA_API __declspec(dllexport)
#else
#define EFLA_API __declspec(dllimport)
#endif
#elif defined(__GNUC__) || defined(__clang__)
#define EFLA_API __attribute__((visibility("default")))
#else
#define EFLA_API
#endif

/* ------------------------------------------------------------------ */
/* Version                                                             */
/* ------------------------------------------------------------------ */

#define EFLA_VERSION_MAJOR 0
#define EFLA_VERSION_MINOR 1
#define EFLA_VERSION_PATCH 0
#define EFLA_MAKE_VERSION(major, minor, patch) \
    (((uint32_t)(major) << 22) | ((uint32_t)(minor) << 12) | (uint32_t)(patch))
#define EFLA_VERSION \
    EFLA_MAKE_VERSION(EFLA_VERSION_MAJOR, EFLA_VERSION_MINOR, EFLA_VERSION_PATCH)

/* The version of the library actually loaded (compare with EFLA_VERSION). */
EFLA_API uint32_t efla_version(void);
/* "MAJOR.MINOR.PATCH". */
EFLA_API const char *efla_version_string(void);

/* ------------------------------------------------------------------ */
/* Status and errors                                                   */
/* ------------------------------------------------------------------ */

/* Grouped by kind: the hundreds digit says what went wrong. */
typedef enum efla_status {
    EFLA_SUCCESS = 0,

    /* 1xx: the caller passed something wrong; nothing was done. */
    EFLA_ERROR_INVALID_ARGUMENT = 100, /* NULL pointer, bad enum, bad flag, bad size */
    EFLA_ERROR_INVALID_TENSOR = 101,   /* shape, dtype, stride or rank does not fit */
    EFLA_ERROR_OUT_OF_BOUNDS = 102,    /* a tensor reaches past the end of its buffer */
    EFLA_ERROR_OVERLAP = 103,          /* an output overlaps an input or another output */
    EFLA_ERROR_BACKEND_MISMATCH = 104, /* a buffer from another context */

    /* 2xx: not available here. */
    EFLA_ERROR_UNSUPPORTED = 200,         /* valid, but this backend/device cannot do it */
    EFLA_ERROR_BACKEND_UNAVAILABLE = 201, /* not compiled in, or its runtime is missing */
    EFLA_ERROR_DEVICE_NOT_FOUND = 202,    /* no device with that index */

    /* 3xx: the device or its runtime failed. */
    EFLA_ERROR_DEVICE = 300,         /* a runtime call failed; the message has its code */
    EFLA_ERROR_DEVICE_LOST = 301,    /* the context must be destroyed */
    EFLA_ERROR_KERNEL_BUILD = 302,   /* a kernel failed to compile or load */
    EFLA_ERROR_DRIVER_TOO_OLD = 303, /* the driver cannot run the embedded kernels */

    /* 4xx: memory. */
    EFLA_ERROR_OUT_OF_HOST_MEMORY = 400,
    EFLA_ERROR_OUT_OF_DEVICE_MEMORY = 401,

    /* 5xx: a bug in efla; please report it with the message. */
    EFLA_ERROR_INTERNAL = 500
} efla_status;

/* A short constant description of a status ("invalid tensor"). */
EFLA_API const char *efla_status_string(efla_status status);

/* The message of the last failing call on this thread, naming exactly what
 * was wrong ("k has Dk=64 but q has Dk=128"). Empty string if none. Valid
 * until the next efla call on this thread. */
EFLA_API const char *efla_last_error_message(void);

/* ------------------------------------------------------------------ */
/* Backends and devices                                                */
/* ------------------------------------------------------------------ */

typedef enum efla_backend {
    EFLA_BACKEND_AUTO = 0,
    EFLA_BACKEND_CPU = 1,
    EFLA_BACKEND_VULKAN = 2,
    EFLA_BACKEND_OPENCL = 3,
    EFLA_BACKEND_CUDA = 4
} efla_backend;
#define EFLA_BACKEND_COUNT 5 /* including AUTO */

/* "auto", "cpu", "vulkan", "opencl", "cuda"; NULL for an unknown value. */
EFLA_API const char *efla_backend_name(efla_backend backend);
/* Parses a backend name (case-insensitive). */
EFLA_API efla_status efla_backend_from_name(const char *name, efla_backend *out_backend);
/* 1 if the backend was compiled into this library, else 0. */
EFLA_API int efla_backend_compiled(efla_backend backend);
/* Loads the backend's runtime (once) and says whether it can run here.
 * EFLA_SUCCESS if it can; otherwise EFLA_ERROR_BACKEND_UNAVAILABLE with the
 * reason in efla_last_error_message() ("libvulkan.so.1 not found"). */
EFLA_API efla_status efla_backend_probe(efla_backend backend);

typedef enum efla_device_type {
    EFLA_DEVICE_TYPE_OTHER = 0,
    EFLA_DEVICE_TYPE_DISCRETE_GPU = 1,
    EFLA_DEVICE_TYPE_INTEGRATED_GPU = 2,
    EFLA_DEVICE_TYPE_VIRTUAL_GPU = 3,
    EFLA_DEVICE_TYPE_CPU = 4,     /* efla's own CPU backend */
    EFLA_DEVICE_TYPE_SOFTWARE = 5 /* a GPU API implemented on the CPU: llvmpipe, PoCL */
} efla_device_type;

/* Capability bits of efla_device_info.flags. */
#define EFLA_DEVICE_FP16 (1u << 0)               /* 16-bit float arithmetic or storage */
#define EFLA_DEVICE_BF16 (1u << 1)               /* native bf16 arithmetic */
#define EFLA_DEVICE_SUBGROUPS (1u << 2)          /* subgroup / warp operations */
#define EFLA_DEVICE_COOPERATIVE_MATRIX (1u << 3) /* matrix units reachable (coopmat, mma) */
#define EFLA_DEVICE_TIMESTAMPS (1u << 4)         /* device timestamps for benchmarks */
#define EFLA_DEVICE_UUID_VALID (1u << 5)         /* uuid[] identifies the physical device */

typedef struct efla_device_info {
    uint32_t struct_size;
    efla_backend backend;
    uint32_t index; /* index within its backend, as passed to a context */
    efla_device_type type;
    char name[256];
    char vendor[64];
    char driver_version[64];
    char pci_bus_id[32]; /* "0000:3b:00.0", or empty */
    uint8_t uuid[16];    /* valid if flags has EFLA_DEVICE_UUID_VALID */
    uint32_t vendor_id;
    uint32_t device_id;
    uint32_t compute_units;        /* SMs, CUs, EUs or CPU threads */
    uint32_t subgroup_size;        /* 0 when the device has none */
    uint64_t shared_memory_bytes;  /* per workgroup / block; 0 on the CPU */
    uint64_t memory_bytes;         /* device memory (host memory on the CPU) */
    uint32_t flags;                /* EFLA_DEVICE_* bits */
    char kernel_path[32];          /* the path a forward would run: "avx2", "portable", ... */
} efla_device_info;
#define EFLA_DEVICE_INFO_INIT {.struct_size = sizeof(efla_device_info)}

/* Number of devices of a backend (0 if it is unavailable; see probe). */
EFLA_API efla_status efla_device_count(efla_backend backend, uint32_t *out_count);
/* info->struct_size must be set (EFLA_DEVICE_INFO_INIT). */
EFLA_API efla_status efla_device_get_info(efla_backend backend, uint32_t index,
                                          efla_device_info *info);

/* ------------------------------------------------------------------ */
/* Context                                                             */
/* ------------------------------------------------------------------ */

typedef struct efla_context_s *efla_context;
typedef struct efla_buffer_s *efla_buffer;

/* Host memory callbacks for efla's own bookkeeping and the CPU backend's
 * buffers. alloc returns memory aligned to `alignment` (a power of two). */
typedef struct efla_allocator {
    void *user;
    void *(*alloc)(void *user, size_t size, size_t alignment);
    void (*free)(void *user, void *ptr);
} efla_allocator;

/* A job system hook for the CPU backend: run fn(arg, i) for every i in
 * [0, count), in any order and on any threads, and return when all have
 * finished. Results do not depend on how the tasks are scheduled. */
typedef void (*efla_task_fn)(void *arg, uint32_t index);
typedef void (*efla_parallel_for_fn)(void *user, efla_task_fn fn, void *arg, uint32_t count);

/* Context creation flags. */
#define EFLA_CONTEXT_PROFILING (1u << 0) /* record device time of each forward */

typedef struct efla_context_create_info {
    uint32_t struct_size;
    const void *next;      /* reserved, must be NULL */
    efla_backend backend;  /* AUTO: EFLA_BACKEND, then the best device */
    int32_t device_index;  /* -1: EFLA_DEVICE, else the backend's first device */
    uint32_t threads;      /* CPU backend worker threads; 0 = all cores */
    uint32_t flags;        /* EFLA_CONTEXT_* */
    const efla_allocator *allocator;  /* NULL: malloc/free */
    efla_parallel_for_fn parallel_for; /* NULL: efla's own thread pool */
    void *parallel_for_user;
} efla_context_create_info;
#define EFLA_CONTEXT_CREATE_INFO_INIT \
    {.struct_size = sizeof(efla_context_create_info), .backend = EFLA_BACKEND_AUTO, .device_index = -1}

/* Backend choice for AUTO: EFLA_BACKEND / EFLA_DEVICE if set, then discrete
 * GPU > integrated GPU > the CPU backend > software devices, and CUDA >
 * Vulkan > OpenCL for the same physical GPU. A runtime not needed for the
 * choice is not loaded. */
EFLA_API efla_status efla_context_create(const efla_context_create_info *info,
                                         efla_context *out_context);
/* Waits for outstanding work, then frees everything the context owns.
 * Buffers of the context must be destroyed first. Accepts NULL. */
EFLA_API void efla_context_destroy(efla_context context);
EFLA_API efla_backend efla_context_backend(efla_context context);
EFLA_API efla_status efla_context_device_info(efla_context context, efla_device_info *info);
/* Blocks until all work enqueued on the context has finished; reports
 * device errors of that work. */
EFLA_API efla_status efla_context_synchronize(efla_context context);
/* With EFLA_CONTEXT_PROFILING: device time of the last completed
 * efla_forward, in milliseconds (synchronizes first). */
EFLA_API efla_status efla_context_last_forward_ms(efla_context context, double *out_ms);

/* One stage of a forward's kernels ("prepare", "state", "output",
 * "recurrent"), for profiling. */
typedef struct efla_stage_time {
    char name[24];
    double ms;           /* device time attributed to the stage */
    uint32_t dispatches; /* kernel launches in it */
} efla_stage_time;
/* With EFLA_CONTEXT_PROFILING: the last completed efla_forward's device
 * time by stage, in the order the stages ran (synchronizes first). Writes at
 * most `capacity` entries and the number available to *out_count. Stages
 * that overlap on the device share their time approximately. Backends
 * without it return EFLA_ERROR_UNSUPPORTED. */
EFLA_API efla_status efla_context_last_forward_stages(efla_context context,
                                                      efla_stage_time *stages, uint32_t capacity,
                                                      uint32_t *out_count);

/* ------------------------------------------------------------------ */
/* Buffers                                                             */
/* ------------------------------------------------------------------ */

/* Device memory owned by the context's device. Contents are undefined. */
EFLA_API efla_status efla_buffer_create(efla_context context, uint64_t size_bytes,
                                        efla_buffer *out_buffer);
/* Wraps caller-owned host memory without copying where the backend can
 * (always on the CPU backend); the memory must outlive the buffer. Backends
 * that cannot use host memory directly return EFLA_ERROR_UNSUPPORTED. */
EFLA_API efla_status efla_buffer_wrap_host(efla_context context, void *memory,
                                           uint64_t size_bytes, efla_buffer *out_buffer);
/* Accepts NULL. Never frees wrapped memory. */
EFLA_API void efla_buffer_destroy(efla_buffer buffer);
EFLA_API uint64_t efla_buffer_size(efla_buffer buffer);
/* Copies between host memory and the buffer. Ordered after work already
 * enqueued on the context; return when the copy is complete. */
EFLA_API efla_status efla_buffer_upload(efla_buffer buffer, uint64_t offset_bytes,
                                        const void *source, uint64_t size_bytes);
EFLA_API efla_status efla_buffer_download(efla_buffer buffer, uint64_t offset_bytes,
                                          void *destination, uint64_t size_bytes);

/* ------------------------------------------------------------------ */
/* Tensors                                                             */
/* ------------------------------------------------------------------ */

typedef enum efla_dtype {
    EFLA_DTYPE_INVALID = 0,
    EFLA_DTYPE_F32 = 1,
    EFLA_DTYPE_F16 = 2,
    EFLA_DTYPE_BF16 = 3,
    EFLA_DTYPE_I32 = 4,
    EFLA_DTYPE_I64 = 5
} efla_dtype;

/* "f32", "f16", "bf16", "i32", "i64"; NULL for an unknown value. */
EFLA_API const char *efla_dtype_name(efla_dtype dtype);
/* Bytes per element; 0 for an unknown value. */
EFLA_API size_t efla_dtype_size(efla_dtype dtype);

#define EFLA_MAX_RANK 4

/* A description of data in a buffer; it owns nothing. Strides are in
 * elements and non-negative; all-zero strides mean C-contiguous. */
typedef struct efla_tensor {
    efla_buffer buffer; /* NULL: the tensor is absent (optional tensors only) */
    uint64_t offset;    /* bytes from the buffer start; a multiple of the element size */
    efla_dtype dtype;
    uint32_t rank;
    int64_t shape[EFLA_MAX_RANK];
    int64_t strides[EFLA_MAX_RANK];
} efla_tensor;

/* A C-contiguous tensor description. */
EFLA_API efla_tensor efla_tensor_contiguous(efla_buffer buffer, uint64_t offset_bytes,
                                            efla_dtype dtype, uint32_t rank,
                                            const int64_t *shape);

/* ------------------------------------------------------------------ */
/* The EFLA forward operation                                          */
/* ------------------------------------------------------------------ */

/* Per (sequence, value head), with state S in R^{Dk x Dv} (float32):
 *   lambda_t = |k_t|^2,  alpha_t = (1 - exp(-beta_t lambda_t)) / lambda_t
 *   u_t = v_t - S^T k_t;  S += alpha_t k_t u_t^T;  o_t = scale S^T q_t
 * (alpha_t = beta_t in DELTA mode). */

typedef enum efla_mode {
    EFLA_MODE_EFLA = 0, /* exact flow: alpha computed from beta and |k|^2 */
    EFLA_MODE_DELTA = 1 /* DeltaNet: beta used as the step as given */
} efla_mode;

typedef enum efla_algorithm {
    EFLA_ALGORITHM_AUTO = 0,     /* by each sequence's length */
    EFLA_ALGORITHM_CHUNKED = 1,  /* chunk-parallel (prefill) */
    EFLA_ALGORITHM_RECURRENT = 2 /* token by token (decode) */
} efla_algorithm;

/* "auto", "chunked", "recurrent"; NULL for an unknown value. */
EFLA_API const char *efla_algorithm_name(efla_algorithm algorithm);

/* Flags of efla_forward_desc.flags. */
#define EFLA_FORWARD_L2NORM_Q (1u << 0)    /* q / sqrt(sum q^2 + 1e-6) inside the kernel */
#define EFLA_FORWARD_L2NORM_K (1u << 1)    /* same for k, before lambda is computed */
#define EFLA_FORWARD_ALLOW_TF32 (1u << 2)  /* f32 storage may use TF32-class products */

typedef struct efla_forward_desc {
    uint32_t struct_size;
    const void *next; /* reserved, must be NULL */

    /* q, k [B,T,H,Dk]; v [B,T,HV,Dv]; beta [B,T,HV]; out [B,T,HV,Dv].
     * HV is a multiple of H: value head hv reads q/k head hv / (HV/H).
     * q, k, v, beta and out share one storage dtype: f32, f16 or bf16. */
    efla_tensor q, k, v, beta, out;

    /* Optional f32 states [N,HV,Dk,Dv]; N = B, or the number of sequences
     * with cu_seqlens. Absent initial state = zeros. final_state may be the
     * very same tensor as initial_state (in-place update). */
    efla_tensor initial_state;
    efla_tensor final_state;

    /* Optional variable-length batch, in host memory: num_sequences + 1
     * offsets (EFLA_DTYPE_I32 or EFLA_DTYPE_I64), starting at 0, non-
     * decreasing, ending at T; requires B = 1. Read during the call only. */
    const void *cu_seqlens;
    efla_dtype cu_seqlens_dtype;
    int64_t num_sequences;

    float scale; /* 0: Dk^-1/2 */
    efla_mode mode;
    efla_algorithm algorithm;
    uint32_t flags; /* EFLA_FORWARD_* */
} efla_forward_desc;
#define EFLA_FORWARD_DESC_INIT {.struct_size = sizeof(efla_forward_desc)}

/* Validates everything, then enqueues the forward on the context and
 * returns. Argument errors are reported at once and nothing is written;
 * device errors are reported here or by efla_context_synchronize(). */
EFLA_API efla_status efla_forward(efla_context context, const efla_forward_desc *desc);

/* What efla_forward would run for this descriptor, without running it. */
typedef struct efla_forward_plan {
    uint32_t struct_size;
    efla_algorithm algorithm; /* CHUNKED or RECURRENT; AUTO when it varies by sequence */
    char kernel_path[32];     /* as in efla_device_info.kernel_path */
} efla_forward_plan;
#define EFLA_FORWARD_PLAN_INIT {.struct_size = sizeof(efla_forward_plan)}

EFLA_API efla_status efla_forward_query(efla_context context, const efla_forward_desc *desc,
                                        efla_forward_plan *out_plan);

#ifdef __cplusplus
}
#endif

#endif /* EFLA_EFLA_H */
