/* Reading and writing elements of validated tensor views on the host. */
#ifndef EFLA_CPU_TENSOR_H
#define EFLA_CPU_TENSOR_H

#include "backends/cpu/cpu_internal.h"
#include "core/half.h"

/* Element address offset (in elements) of index (i0, i1, i2, i3). */
static inline int64_t efla_view_index(const efla_tensor_view *v, int64_t i0, int64_t i1,
                                      int64_t i2, int64_t i3) {
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

static inline void efla_view_store(const efla_tensor_view *v, int64_t index, float value) {
    void *base = v->buffer->memory;
    switch (v->dtype) {
    case EFLA_DTYPE_F16: ((uint16_t *)base)[index] = efla_f32_to_f16(value); break;
    case EFLA_DTYPE_BF16: ((uint16_t *)base)[index] = efla_f32_to_bf16(value); break;
    default: ((float *)base)[index] = value; break;
    }
}

/* Loads row (b, t, h, 0..n-1) of a rank-4 view into dst as f32. */
static inline void efla_view_load_row(const efla_tensor_view *v, int64_t b, int64_t t, int64_t h,
                                      int64_t n, float *dst) {
    int64_t base = efla_view_index(v, b, t, h, 0);
    for (int64_t i = 0; i < n; ++i) dst[i] = efla_view_load(v, base + i * v->strides[3]);
}

#endif
