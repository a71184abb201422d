#include "storage.h"

#include "core/half.h"

#include <string.h>

bool storage_from_name(const char *name, efla_dtype *out) {
    static const efla_dtype choices[] = {EFLA_DTYPE_F32, EFLA_DTYPE_F16, EFLA_DTYPE_BF16};
    for (size_t i = 0; i < sizeof choices / sizeof choices[0]; ++i) {
        if (strcmp(name, efla_dtype_name(choices[i])) == 0) {
            *out = choices[i];
            return true;
        }
    }
    return false;
}

void storage_from_f32(efla_dtype dtype, const float *source, uint64_t count, void *destination) {
    uint16_t *half = destination;
    if (dtype == EFLA_DTYPE_F32)
        memcpy(destination, source, count * sizeof *source);
    else if (dtype == EFLA_DTYPE_F16)
        for (uint64_t i = 0; i < count; ++i)
            half[i] = efla_f32_to_f16(source[i]);
    else
        for (uint64_t i = 0; i < count; ++i)
            half[i] = efla_f32_to_bf16(source[i]);
}

void storage_to_f32(efla_dtype dtype, const void *source, uint64_t count, float *destination) {
    const uint16_t *half = source;
    if (dtype == EFLA_DTYPE_F32)
        memcpy(destination, source, count * sizeof *destination);
    else if (dtype == EFLA_DTYPE_F16)
        for (uint64_t i = 0; i < count; ++i)
            destination[i] = efla_f16_to_f32(half[i]);
    else
        for (uint64_t i = 0; i < count; ++i)
            destination[i] = efla_bf16_to_f32(half[i]);
}
