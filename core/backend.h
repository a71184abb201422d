/*
 * The backend table: the one interface between the core and a backend.
 *
 * Each backend (backends/<name>/) defines one const efla_backend_ops and
 * nothing else visible to the core. The core validates every argument before
 * calling in, so a backend sees only well-formed, resolved requests
 * (efla_forward_args) and never re-checks user input. A backend never
 * includes another backend's headers, nor the CLI's.
 *
 * Optional hooks may be NULL; the core then reports EFLA_ERROR_UNSUPPORTED.
 * Every hook that fails sets the thread-local message (core/error.h).
 */
#ifndef EFLA_CORE_BACKEND_H
#define EFLA_CORE_BACKEND_H

#include "efla/efla.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Opaque backend-side objects. */
typedef struct efla_backend_context efla_backend_context;
typedef struct efla_backend_buffer efla_backend_buffer;

/* What the core passes a backend at context creation. */
typedef struct efla_backend_context_params {
    uint32_t device_index;
    uint32_t threads; /* 0 = all cores */
    uint32_t flags;   /* EFLA_CONTEXT_* */
    const efla_allocator *allocator; /* never NULL (the core fills in malloc) */
    efla_parallel_for_fn parallel_for; /* may be NULL */
    void *parallel_for_user;
} efla_backend_context_params;

/* One tensor as a backend sees it: resolved and validated. Strides are in
 * elements and always explicit (the core fills in contiguous strides). */
typedef struct efla_tensor_view {
    efla_backend_buffer *buffer; /* NULL when absent */
    uint64_t offset_elements;    /* from the buffer start, in elements of dtype */
    efla_dtype dtype;
    int64_t shape[EFLA_MAX_RANK];
    int64_t strides[EFLA_MAX_RANK];
    bool contiguous;
} efla_tensor_view;

/* A validated forward request. */
typedef struct efla_forward_args {
    int64_t batch;      /* B */
    int64_t tokens;     /* T */
    int64_t heads;      /* H (q/k heads) */
    int64_t value_heads; /* HV, a multiple of H */
    int64_t dk, dv;     /* 1..256 */
    int64_t sequences;  /* N: B, or the varlen count */

    /* Host memory, sequences + 1 entries: sequence n covers rows
     * [seq_starts[n], seq_starts[n+1]) of batch row (varlen ? 0 : n).
     * Without varlen these are 0 and T for every sequence's own batch row;
     * use efla_forward_sequence() rather than reading this directly. */
    const int64_t *cu_seqlens; /* NULL without varlen */

    efla_tensor_view q, k, v, beta, out;
    efla_tensor_view initial_state; /* buffer NULL: zeros */
    efla_tensor_view final_state;   /* buffer NULL: not written */
    bool state_in_place;            /* final_state is exactly initial_state */

    efla_dtype storage; /* f32, f16 or bf16: q, k, v, beta, out */
    float scale;        /* resolved (never 0 unless the caller meant it) */
    efla_mode mode;
    efla_algorithm algorithm; /* as asked: AUTO, CHUNKED or RECURRENT */
    bool l2norm_q, l2norm_k, allow_tf32;
} efla_forward_args;

/* Sequence n of a request: its batch row, first token and length. */
static inline void efla_forward_sequence(const efla_forward_args *a, int64_t n,
                                         int64_t *batch_row, int64_t *first, int64_t *length) {
    if (a->cu_seqlens) {
        *batch_row = 0;
        *first = a->cu_seqlens[n];
        *length = a->cu_seqlens[n + 1] - a->cu_seqlens[n];
    } else {
        *batch_row = n;
        *first = 0;
        *length = a->tokens;
    }
}

/* AUTO's rule, shared by every backend so that they agree: sequences of at
 * most this many tokens run the recurrent kernel. */
#define EFLA_RECURRENT_MAX_TOKENS 64

/* Interop: which host-native object a wrap or record call carries. The
 * payload types are declared in include/efla/efla_<api>.h. */
typedef enum efla_native_kind {
    EFLA_NATIVE_VULKAN = 1,
    EFLA_NATIVE_OPENCL = 2,
    EFLA_NATIVE_CUDA = 3
} efla_native_kind;

typedef struct efla_backend_ops {
    efla_backend id;
    const char *name;

    /* Loads the runtime once (thread-safe, cached). EFLA_SUCCESS or
     * EFLA_ERROR_BACKEND_UNAVAILABLE with the reason. */
    efla_status (*probe)(void);
    efla_status (*device_count)(uint32_t *out_count);
    /* Fills everything but struct_size; the core zeroes it first. */
    efla_status (*device_info)(uint32_t index, efla_device_info *info);

    efla_status (*context_create)(const efla_backend_context_params *params,
                                  efla_backend_context **out);
    /* Optional: a context on the host's own device/queue (interop). */
    efla_status (*context_create_native)(efla_native_kind kind, const void *native_info,
                                         const efla_backend_context_params *params,
                                         efla_backend_context **out);
    void (*context_destroy)(efla_backend_context *ctx);
    efla_status (*context_device_info)(efla_backend_context *ctx, efla_device_info *info);
    efla_status (*synchronize)(efla_backend_context *ctx);
    /* Optional: device time of the last forward (EFLA_CONTEXT_PROFILING). */
    efla_status (*last_forward_ms)(efla_backend_context *ctx, double *out_ms);
    /* Optional: the last forward's device time by stage (the core checks
     * the arguments; capacity may be 0). */
    efla_status (*last_forward_stages)(efla_backend_context *ctx, efla_stage_time *stages,
                                       uint32_t capacity, uint32_t *out_count);

    efla_status (*buffer_create)(efla_backend_context *ctx, uint64_t size,
                                 efla_backend_buffer **out);
    /* Optional: wrap caller host memory. */
    efla_status (*buffer_wrap_host)(efla_backend_context *ctx, void *memory, uint64_t size,
                                    efla_backend_buffer **out);
    /* Optional: wrap a host-native buffer (VkBuffer, cl_mem, CUdeviceptr). */
    efla_status (*buffer_wrap_native)(efla_backend_context *ctx, efla_native_kind kind,
                                      const void *native_buffer, uint64_t size,
                                      efla_backend_buffer **out);
    void (*buffer_destroy)(efla_backend_context *ctx, efla_backend_buffer *buf);
    /* Ranges are validated by the core. Blocking. */
    efla_status (*buffer_upload)(efla_backend_context *ctx, efla_backend_buffer *buf,
                                 uint64_t offset, const void *src, uint64_t size);
    efla_status (*buffer_download)(efla_backend_context *ctx, efla_backend_buffer *buf,
                                   uint64_t offset, void *dst, uint64_t size);

    /* Enqueues a validated forward. */
    efla_status (*forward)(efla_backend_context *ctx, const efla_forward_args *args);
    /* The algorithm and kernel path forward() would use. */
    efla_status (*forward_query)(efla_backend_context *ctx, const efla_forward_args *args,
                                 efla_forward_plan *plan);
    /* Optional (interop): record a validated forward into a host command
     * stream (VkCommandBuffer, cl_command_queue, CUstream) described by
     * native_cmd; see include/efla/efla_<api>.h for the contract. */
    efla_status (*forward_record)(efla_backend_context *ctx, efla_native_kind kind,
                                  const void *native_cmd, const efla_forward_args *args);
    /* Reserved for the backward pass; NULL for now. */
    efla_status (*backward)(efla_backend_context *ctx, const void *args);
} efla_backend_ops;

/* The compiled-in backends (defined in each backend folder). */
extern const efla_backend_ops efla_cpu_backend_ops;
#ifdef EFLA_HAVE_VULKAN
extern const efla_backend_ops efla_vulkan_backend_ops;
#endif
#ifdef EFLA_HAVE_OPENCL
extern const efla_backend_ops efla_opencl_backend_ops;
#endif
#ifdef EFLA_HAVE_CUDA
extern const efla_backend_ops efla_cuda_backend_ops;
#endif

/* The table for a backend id, or NULL when not compiled in. */
const efla_backend_ops *efla_backend_ops_get(efla_backend id);

#endif /* EFLA_CORE_BACKEND_H */
