/* The storage dtypes as the tests see them, written independently of the
 * library: rounding a double to what f32/f16/bf16 can hold (round to nearest
 * even), and the bit encodings a device buffer holds. */
#ifndef EFLA_TESTS_STORAGE_H
#define EFLA_TESTS_STORAGE_H

#include "efla/efla.h"

#include <stdint.h>

/* The nearest value of `dtype` (f32, f16 or bf16), ties to even; overflow
 * gives an infinity. Other dtypes return x unchanged. */
double storage_round(efla_dtype dtype, double x);

/* Writes x, already representable in `dtype`, as its bits at `dst`. */
void storage_encode(efla_dtype dtype, double x, void *dst);

/* Reads one element of `dtype` at `src`. */
double storage_decode(efla_dtype dtype, const void *src);

#endif
