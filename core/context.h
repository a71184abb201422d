/* The core's context and buffer objects, shared by the core's files. */
#ifndef EFLA_CORE_CONTEXT_H
#define EFLA_CORE_CONTEXT_H

#include "core/backend.h"

struct efla_context_s {
    const efla_backend_ops *ops;
    efla_backend_context *impl;
    efla_allocator allocator;
    uint64_t live_buffers; /* destroy refuses nothing, but tests can check it */
};

struct efla_buffer_s {
    efla_context context;
    efla_backend_buffer *impl;
    uint64_t size;
};

/* Host allocations through the context's allocator (or malloc). */
void *efla_host_alloc(const efla_allocator *allocator, size_t size);
void efla_host_free(const efla_allocator *allocator, void *ptr);
/* The default allocator: aligned malloc/free. */
extern const efla_allocator efla_default_allocator;

/* Interop entry points used by backends/<api>/<api>_interop.c: they wrap a
 * backend object made from host-native handles in a core object. */
efla_status efla_context_create_native(efla_backend backend, efla_native_kind kind,
                                       const void *native_info,
                                       const efla_context_create_info *info,
                                       efla_context *out_context);
efla_status efla_buffer_wrap_native(efla_context context, efla_native_kind kind,
                                    const void *native_buffer, uint64_t size_bytes,
                                    efla_buffer *out_buffer);
efla_status efla_forward_record_native(efla_context context, efla_native_kind kind,
                                       const void *native_cmd, const efla_forward_desc *desc);

#endif
