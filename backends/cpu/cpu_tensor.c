#include "backends/cpu/cpu_tensor.h"
#include "backends/cpu/cpu_kernels.h"

#include <string.h>

#define NR EFLA_CPU_NR

void efla_cpu_load_row(const efla_cpu_kernels *kern, const efla_tensor_view *v, int64_t i0,
                       int64_t i1, int64_t i2, int64_t col0, int64_t n, float *dst) {
    const int64_t base = efla_view_index(v, i0, i1, i2, col0), step = v->strides[3];
    const void *memory = v->buffer->memory;
    if (v->dtype == EFLA_DTYPE_F32 && step == 1) {
        memcpy(dst, (const float *)memory + base, sizeof *dst * (size_t)n);
    } else if (v->dtype == EFLA_DTYPE_F16 && step == 1) {
        kern->f16_to_f32((const uint16_t *)memory + base, n, dst);
    } else if (v->dtype == EFLA_DTYPE_F16) {
        const uint16_t *src = (const uint16_t *)memory + base;
        for (int64_t i = 0; i < n; ++i)
            dst[i] = efla_f16_to_f32(src[i * step]);
    } else if (v->dtype == EFLA_DTYPE_BF16) {
        const uint16_t *src = (const uint16_t *)memory + base;
        for (int64_t i = 0; i < n; ++i)
            dst[i] = efla_bf16_to_f32(src[i * step]);
    } else {
        const float *src = (const float *)memory + base;
        for (int64_t i = 0; i < n; ++i)
            dst[i] = src[i * step];
    }
}

void efla_cpu_store_row(const efla_cpu_kernels *kern, const efla_tensor_view *v, int64_t i0,
                        int64_t i1, int64_t i2, int64_t col0, int64_t n, const float *src) {
    const int64_t base = efla_view_index(v, i0, i1, i2, col0), step = v->strides[3];
    void *memory = v->buffer->memory;
    if (v->dtype == EFLA_DTYPE_F32 && step == 1) {
        memcpy((float *)memory + base, src, sizeof *src * (size_t)n);
    } else if (v->dtype == EFLA_DTYPE_F16 && step == 1) {
        kern->f32_to_f16(src, n, (uint16_t *)memory + base);
    } else if (v->dtype == EFLA_DTYPE_F16) {
        uint16_t *dst = (uint16_t *)memory + base;
        for (int64_t i = 0; i < n; ++i)
            dst[i * step] = efla_f32_to_f16(src[i]);
    } else if (v->dtype == EFLA_DTYPE_BF16) {
        uint16_t *dst = (uint16_t *)memory + base;
        for (int64_t i = 0; i < n; ++i)
            dst[i * step] = efla_f32_to_bf16(src[i]);
    } else {
        float *dst = (float *)memory + base;
        for (int64_t i = 0; i < n; ++i)
            dst[i * step] = src[i];
    }
}

/* Copies one state row segment into the panels (row r), column by column
 * block so that contiguous rows move as whole panel rows. */
static void state_row_in(const efla_tensor_view *s, int64_t n, int64_t hv, int64_t r, int64_t dk,
                         int64_t col0, int64_t width, float *panels) {
    const float *memory = (const float *)s->buffer->memory;
    const int64_t base = efla_view_index(s, n, hv, r, col0), step = s->strides[3];
    for (int64_t j0 = 0; j0 < width; j0 += NR) {
        float *dst = panels + (j0 / NR) * dk * NR + r * NR;
        int64_t count = width - j0 < NR ? width - j0 : NR;
        if (step == 1) {
            memcpy(dst, memory + base + j0, sizeof *dst * (size_t)count);
        } else {
            for (int64_t j = 0; j < count; ++j)
                dst[j] = memory[base + (j0 + j) * step];
        }
        for (int64_t j = count; j < NR; ++j)
            dst[j] = 0.0f;
    }
}

void efla_cpu_load_state(const efla_forward_args *a, int64_t sequence, int64_t value_head,
                         int64_t col0, int64_t width, float *panels) {
    const int64_t padded = (width + NR - 1) / NR * NR;
    if (!a->initial_state.buffer) {
        memset(panels, 0, sizeof *panels * (size_t)(a->dk * padded));
        return;
    }
    for (int64_t r = 0; r < a->dk; ++r)
        state_row_in(&a->initial_state, sequence, value_head, r, a->dk, col0, width, panels);
}

void efla_cpu_store_state(const efla_forward_args *a, int64_t sequence, int64_t value_head,
                          int64_t col0, int64_t width, const float *panels) {
    const efla_tensor_view *s = &a->final_state;
    float *memory = (float *)s->buffer->memory;
    const int64_t step = s->strides[3], dk = a->dk;
    for (int64_t r = 0; r < dk; ++r) {
        const int64_t base = efla_view_index(s, sequence, value_head, r, col0);
        for (int64_t j0 = 0; j0 < width; j0 += NR) {
            const float *src = panels + (j0 / NR) * dk * NR + r * NR;
            int64_t count = width - j0 < NR ? width - j0 : NR;
            if (step == 1) {
                memcpy(memory + base + j0, src, sizeof *src * (size_t)count);
            } else {
                for (int64_t j = 0; j < count; ++j)
                    memory[base + (j0 + j) * step] = src[j];
            }
        }
    }
}

void efla_cpu_load_row_panels(const efla_cpu_kernels *kern, const efla_tensor_view *v, int64_t i0,
                              int64_t i1, int64_t i2, int64_t col0, int64_t width, float *panels,
                              int64_t rows, int64_t r) {
    const int64_t padded = (width + NR - 1) / NR * NR;
    if (v->dtype == EFLA_DTYPE_F32 && v->strides[3] == 1) {
        const float *src = (const float *)v->buffer->memory + efla_view_index(v, i0, i1, i2, col0);
        for (int64_t j0 = 0; j0 < padded; j0 += NR) {
            float *dst = panels + (j0 / NR) * rows * NR + r * NR;
            if (width - j0 >= NR) {
                memcpy(dst, src + j0, sizeof *dst * NR); /* fixed size: inlined moves */
            } else {
                for (int j = 0; j < NR; ++j)
                    dst[j] = j0 + j < width ? src[j0 + j] : 0.0f;
            }
        }
        return;
    }
    float row[NR];
    for (int64_t j0 = 0; j0 < padded; j0 += NR) {
        const int64_t count = width - j0 < NR ? width - j0 : NR;
        float *dst = panels + (j0 / NR) * rows * NR + r * NR;
        efla_cpu_load_row(kern, v, i0, i1, i2, col0 + j0, count, row);
        for (int j = 0; j < NR; ++j)
            dst[j] = j < count ? row[j] : 0.0f;
    }
}

void efla_cpu_store_row_panels(const efla_cpu_kernels *kern, const efla_tensor_view *v, int64_t i0,
                               int64_t i1, int64_t i2, int64_t col0, int64_t width,
                               const float *panels, int64_t rows, int64_t r) {
    if (v->dtype == EFLA_DTYPE_F32 && v->strides[3] == 1) {
        float *dst = (float *)v->buffer->memory + efla_view_index(v, i0, i1, i2, col0);
        for (int64_t j0 = 0; j0 < width; j0 += NR) {
            const float *src = panels + (j0 / NR) * rows * NR + r * NR;
            if (width - j0 >= NR) {
                memcpy(dst + j0, src, sizeof *src * NR); /* fixed size: inlined moves */
            } else {
                for (int64_t j = 0; j < width - j0; ++j)
                    dst[j0 + j] = src[j];
            }
        }
        return;
    }
    for (int64_t j0 = 0; j0 < width; j0 += NR) {
        const int64_t count = width - j0 < NR ? width - j0 : NR;
        efla_cpu_store_row(kern, v, i0, i1, i2, col0 + j0, count,
                           panels + (j0 / NR) * rows * NR + r * NR);
    }
}
