/*
 * efla CUDA interop: run efla on a CUDA context, stream and device memory
 * the caller already has (PyTorch, a game engine, your own driver-API code).
 *
 * This header does not include cuda.h. It names the driver API's handle
 * types by their struct tags, which cuda.h also uses
 * (typedef struct CUctx_st *CUcontext; typedef struct CUstream_st *CUstream),
 * so a CUcontext or CUstream converts to these pointers without a cast, and
 * code without the CUDA toolkit can still pass handles it got elsewhere
 * (e.g. torch.cuda.current_stream().cuda_stream as an integer, cast).
 * Device addresses are plain uint64_t, the width of CUdeviceptr on every
 * 64-bit platform (tensor.data_ptr() in PyTorch).
 *
 * Contract
 *   - Contexts. efla_context_create() with EFLA_BACKEND_CUDA already uses
 *     the device's *primary* context, the one the CUDA runtime (and so
 *     PyTorch) uses: pointers from cudaMalloc / torch work with
 *     efla_cuda_buffer_wrap on such a context too. efla_cuda_context_create
 *     takes any context instead. efla never destroys, retains or resets a
 *     caller's context, and restores the caller's current context before
 *     returning from every call.
 *   - Streams. All of a context's work (forward, and the copies of
 *     efla_buffer_upload/download) goes to its stream: efla's own
 *     non-blocking stream, or the one given here (NULL = the context's
 *     legacy default stream). efla_forward enqueues and returns; use
 *     efla_context_synchronize, or order your own work after it on the same
 *     stream. efla_buffer_upload/download synchronize the stream first and
 *     return when the copy is done.
 *   - Recording. efla_cuda_forward_record enqueues the forward on `stream`
 *     instead of the context's stream: inputs must be ready in stream order
 *     on `stream`, outputs are ready for work enqueued on `stream` after it.
 *     efla inserts no host synchronisation. Its internal scratch memory is
 *     shared by all streams of one context, so efla orders forwards of one
 *     context after each other with events (cuStreamWaitEvent); forwards on
 *     different efla contexts are independent.
 *   - Buffers. efla_cuda_buffer_wrap does not take ownership: the memory
 *     must stay allocated until the buffer is destroyed and all work using
 *     it has completed. It must be device memory (or managed memory)
 *     usable from the context's device, at least `size_bytes` long.
 *   - Threads. As for every efla context: one thread at a time per context.
 */
#ifndef EFLA_EFLA_CUDA_H
#define EFLA_EFLA_CUDA_H

#include "efla/efla.h"

#ifdef __cplusplus
extern "C" {
#endif

struct CUctx_st;
struct CUstream_st;

typedef struct efla_cuda_context_info {
    uint32_t struct_size;
    struct CUctx_st *context;   /* required: a CUcontext */
    struct CUstream_st *stream; /* a CUstream of that context, or NULL for its default stream */
} efla_cuda_context_info;
#define EFLA_CUDA_CONTEXT_INFO_INIT                                                                \
    { .struct_size = sizeof(efla_cuda_context_info) }

/* A context on the caller's CUDA context and stream. `info` may be NULL
 * (defaults); its backend and device_index are ignored (the CUDA context
 * decides the device). */
EFLA_API efla_status efla_cuda_context_create(const efla_cuda_context_info *cuda,
                                              const efla_context_create_info *info,
                                              efla_context *out_context);

/* Wraps `size_bytes` of device memory at `device_address` (a CUdeviceptr)
 * as a buffer of a CUDA context, without taking ownership. */
EFLA_API efla_status efla_cuda_buffer_wrap(efla_context context, uint64_t device_address,
                                           uint64_t size_bytes, efla_buffer *out_buffer);

/* The CUdeviceptr behind a buffer of a CUDA context (created or wrapped). */
EFLA_API efla_status efla_cuda_buffer_address(efla_buffer buffer, uint64_t *out_device_address);

/* efla_forward, enqueued on `stream` (a CUstream of the context's CUDA
 * context; NULL = its legacy default stream) instead of the context's
 * stream. Validation is the same as efla_forward's. */
EFLA_API efla_status efla_cuda_forward_record(efla_context context, struct CUstream_st *stream,
                                              const efla_forward_desc *desc);

#ifdef __cplusplus
}
#endif

#endif /* EFLA_EFLA_CUDA_H */
