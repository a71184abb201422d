/* Host conversions between f32 and the storage dtypes (f32, f16, bf16),
 * rounding to nearest even. */
#ifndef EFLA_TOOLS_STORAGE_H
#define EFLA_TOOLS_STORAGE_H

#include <efla/efla.h>

#include <stdbool.h>
#include <stdint.h>

/* Parses "f32", "f16" or "bf16". */
bool storage_from_name(const char *name, efla_dtype *out);
void storage_from_f32(efla_dtype dtype, const float *source, uint64_t count, void *destination);
void storage_to_f32(efla_dtype dtype, const void *source, uint64_t count, float *destination);

#endif
