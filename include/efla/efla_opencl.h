/*
 * efla interop with a host's own OpenCL objects.
 *
 * This header includes <CL/cl.h> unless OpenCL's types are already there
 * (define CL_TARGET_OPENCL_VERSION as your project does). These functions
 * exist when efla was built with its OpenCL backend
 * (efla_backend_compiled(EFLA_BACKEND_OPENCL)).
 *
 * Contract
 *   - Contexts. efla_opencl_context_create() builds an efla context on the
 *     host's cl_context, cl_device_id and cl_command_queue. efla retains them
 *     (clRetain*) for the life of the efla context and releases them in
 *     efla_context_destroy(); it never destroys what the host created. The
 *     device must belong to the context and the queue to both. Ordinary
 *     efla calls on that context (efla_forward, buffer copies,
 *     efla_context_synchronize) use the host's queue. In-order and
 *     out-of-order queues both work; with CL_QUEUE_PROFILING_ENABLE,
 *     efla_context_last_forward_ms() reports device time.
 *   - Buffers. efla_opencl_buffer_wrap() describes `size_bytes` of a host
 *     cl_mem from `offset_bytes` (a multiple of 4) as an efla buffer
 *     without taking ownership: the cl_mem must outlive the efla buffer
 *     and every forward that uses it; efla_buffer_destroy() does not
 *     release it. Offsets are passed to kernels as element offsets; no
 *     sub-buffer is created, so no sub-buffer alignment rule applies.
 *   - Recording. efla_opencl_forward_record() validates `desc` like
 *     efla_forward() and enqueues the forward on `command->queue` (which
 *     must belong to the efla context's cl_context). Its first kernels wait
 *     for `command->wait_list` and for every earlier efla operation on the
 *     same efla context (efla's scratch memory is per context, so forwards
 *     of one context never overlap). If `command->event` is not NULL it
 *     receives a new event (release it with clReleaseEvent) that completes
 *     when the forward's outputs are written; on an out-of-order queue the
 *     host must wait for that event before reading the outputs. Nothing is
 *     waited for: efla only flushes the queue (clFlush), so that events of
 *     it may be waited for from other queues. Inputs must be complete
 *     (their writes finished or in the wait list) before the forward runs.
 *   - Threads: an efla context is used by one thread at a time, which
 *     includes recording from it.
 */
#ifndef EFLA_EFLA_OPENCL_H
#define EFLA_EFLA_OPENCL_H

#include "efla/efla.h"

#ifndef CL_SUCCESS
#if defined(__APPLE__)
#include <OpenCL/cl.h>
#else
#include <CL/cl.h>
#endif
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* The host objects an efla context is built on. */
typedef struct efla_opencl_context_info {
    uint32_t struct_size;
    cl_context context;
    cl_device_id device;
    cl_command_queue queue;
} efla_opencl_context_info;
#define EFLA_OPENCL_CONTEXT_INFO_INIT                                                              \
    { .struct_size = sizeof(efla_opencl_context_info) }

/* A host cl_mem range (the payload of the buffer wrap). */
typedef struct efla_opencl_buffer_info {
    uint32_t struct_size;
    cl_mem memory;
    uint64_t offset_bytes;
} efla_opencl_buffer_info;
#define EFLA_OPENCL_BUFFER_INFO_INIT                                                               \
    { .struct_size = sizeof(efla_opencl_buffer_info) }

/* Where and after what a recorded forward runs. */
typedef struct efla_opencl_command {
    uint32_t struct_size;
    cl_command_queue queue; /* NULL: the efla context's queue */
    cl_uint wait_list_count;
    const cl_event *wait_list; /* events the forward waits for; may be NULL */
    cl_event *event;           /* out: completes when the forward has finished; may be NULL */
} efla_opencl_command;
#define EFLA_OPENCL_COMMAND_INIT                                                                   \
    { .struct_size = sizeof(efla_opencl_command) }

/* `info` may be NULL (defaults; its backend and device_index are ignored:
 * the device is native->device). */
EFLA_API efla_status efla_opencl_context_create(const efla_opencl_context_info *native,
                                                const efla_context_create_info *info,
                                                efla_context *out_context);

EFLA_API efla_status efla_opencl_buffer_wrap(efla_context context, cl_mem memory,
                                             uint64_t offset_bytes, uint64_t size_bytes,
                                             efla_buffer *out_buffer);

/* The cl_mem and byte offset behind an efla buffer of an OpenCL context
 * (created by efla or wrapped), for the host's own commands. */
EFLA_API efla_status efla_opencl_buffer_get(efla_buffer buffer, cl_mem *out_memory,
                                            uint64_t *out_offset_bytes);

EFLA_API efla_status efla_opencl_forward_record(efla_context context,
                                                const efla_opencl_command *command,
                                                const efla_forward_desc *desc);

#ifdef __cplusplus
}
#endif

#endif /* EFLA_EFLA_OPENCL_H */
