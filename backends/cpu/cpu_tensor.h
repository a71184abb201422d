/* Reading and writing validated tensor views on the host: f32 inside,
 * f16/bf16 converted on load and rounded to nearest even on store. */
#ifndef EFLA_CPU_TENSOR_H
#define EFLA_CPU_TENSOR_H

#include "backends/cpu/cpu_internal.h"
#include "backends/cpu/cpu_kernels.h"
#include "core/half.h"

/* Element address offset (in elements) of index (i0, i1, i2, i3). */
static inline int64_t efla_view_index(const efla_tensor_view *v, int64_t i0, int64_t i1, int64_t i2,
                                      int64_t i3) {
    return (int64_t)v->offset_elements + i0 * v->strides[0] + i1 * v->strides[1] +
           i2 * v->strides[2] + i3 * v->strides[3];
}

static inline float efla_view_load(const efla_tensor_view *v, int64_t index) {
    const void *base = v->buffer->memory;
    switch (v->dtype) {
    case EFLA_DTYPE_F16: return efla_f16_to_f32(((const uint16_t *)base)[index]);
    case EFLA_DTYPE_BF16: return efla_bf16_to_f32(((const uint16_t *)base)[index]);
    default: return ((const float *)base)[index];
    }
}

/* Elements (i0, i1, i2, col0 .. col0 + n - 1) of a rank-4 view to/from f32
 * (contiguous f16 rows convert with the kernel table's converters). */
void efla_cpu_load_row(const efla_cpu_kernels *kern, const efla_tensor_view *v, int64_t i0,
                       int64_t i1, int64_t i2, int64_t col0, int64_t n, float *dst);
void efla_cpu_store_row(const efla_cpu_kernels *kern, const efla_tensor_view *v, int64_t i0,
                        int64_t i1, int64_t i2, int64_t col0, int64_t n, const float *src);

/* Asks for the cache lines of those elements (rows up to 4 KiB) to be
 * brought into the L2 cache ahead of their use. Level 2, because
 * prefetches into L1 were dropped on the test machine (rows scattered
 * over many pages, which the hardware prefetcher does not follow). */
static inline void efla_cpu_prefetch_row(const efla_tensor_view *v, int64_t i0, int64_t i1,
                                         int64_t i2, int64_t col0, int64_t n, bool write) {
#if defined(__GNUC__) || defined(__clang__)
    const size_t element = v->dtype == EFLA_DTYPE_F32 ? 4 : 2;
    if (n <= 0) return;
    const size_t span = (size_t)((n - 1) * v->strides[3] + 1) * element;
    if (span > 4096) return;
    const char *p =
        (const char *)v->buffer->memory + efla_view_index(v, i0, i1, i2, col0) * (int64_t)element;
    const uintptr_t first = (uintptr_t)p & ~(uintptr_t)63, last = (uintptr_t)(p + span - 1);
    for (uintptr_t line = first; line <= last; line += 64) {
        if (write)
            __builtin_prefetch((const void *)line, 1, 2);
        else
            __builtin_prefetch((const void *)line, 0, 2);
    }
#else
    (void)v, (void)i0, (void)i1, (void)i2, (void)col0, (void)n, (void)write;
#endif
}

/* A task's state columns [col0, col0 + width) of (sequence, value head) as
 * panels of EFLA_CPU_NR columns (padding columns zero). Without an initial
 * state the panels are zeros. */
void efla_cpu_load_state(const efla_forward_args *a, int64_t sequence, int64_t value_head,
                         int64_t col0, int64_t width, float *panels);
void efla_cpu_store_state(const efla_forward_args *a, int64_t sequence, int64_t value_head,
                          int64_t col0, int64_t width, const float *panels);

/* Row r of a panelled matrix (`rows` rows, panels of EFLA_CPU_NR columns)
 * from/to elements (i0, i1, i2, col0 .. col0 + width - 1) of a view;
 * loading zeroes the padding columns. */
void efla_cpu_load_row_panels(const efla_cpu_kernels *kern, const efla_tensor_view *v, int64_t i0,
                              int64_t i1, int64_t i2, int64_t col0, int64_t width, float *panels,
                              int64_t rows, int64_t r);
void efla_cpu_store_row_panels(const efla_cpu_kernels *kern, const efla_tensor_view *v, int64_t i0,
                               int64_t i1, int64_t i2, int64_t col0, int64_t width,
                               const float *panels, int64_t rows, int64_t r);

#endif
