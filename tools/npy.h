/* A small NumPy .npy reader and writer.
 *
 * Reads format versions 1.0, 2.0 and 3.0, C order, little-endian '<f2',
 * '<f4', '<f8', '<i4', '<i8'; every other file is refused with a message
 * that names the problem. Writes '<f4' in version 1.0 with the header padded
 * so the data starts at a multiple of 64 bytes, as NumPy does. Never trusts
 * the header: sizes are overflow-checked against the real file size before
 * anything is allocated. */
#ifndef EFLA_TOOLS_NPY_H
#define EFLA_TOOLS_NPY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define NPY_MAX_RANK 32

/* Element types; also bits of the `accepted` mask of npy_read. */
typedef enum npy_dtype {
    NPY_F16 = 1u << 0,
    NPY_F32 = 1u << 1,
    NPY_F64 = 1u << 2,
    NPY_I32 = 1u << 3,
    NPY_I64 = 1u << 4
} npy_dtype;
#define NPY_FLOATS (NPY_F32 | NPY_F16 | NPY_F64)
#define NPY_INTEGERS (NPY_I32 | NPY_I64)

typedef enum npy_result {
    NPY_OK = 0,
    NPY_ERROR_IO = 1,     /* cannot open, stat or read the file */
    NPY_ERROR_FORMAT = 2, /* malformed, lying or unsupported contents */
    NPY_ERROR_MEMORY = 3
} npy_result;

typedef struct npy_array {
    npy_dtype dtype;
    uint32_t rank;
    int64_t shape[NPY_MAX_RANK];
    uint64_t count;      /* number of elements (1 for rank 0) */
    unsigned char *data; /* count elements, little-endian as in the file */
} npy_array;

/* "<f4" etc. */
const char *npy_dtype_descr(npy_dtype dtype);
size_t npy_dtype_size(npy_dtype dtype);

/* Reads `path`. On failure writes "<path>: <problem>" into err and leaves
 * *out empty. `accepted` is a mask of npy_dtype bits. */
npy_result npy_read(const char *path, unsigned accepted, npy_array *out, char *err,
                    size_t err_size);
void npy_array_free(npy_array *array);

/* Converts a float array (f16, f32, f64) to f32; f64 rounds to nearest. */
void npy_to_f32(const npy_array *array, float *out);
/* Converts an integer array (i32, i64) to int64. */
void npy_to_i64(const npy_array *array, int64_t *out);

/* Writes a C-order '<f4' array, version 1.0. Returns NPY_OK or
 * NPY_ERROR_IO (with errno-style text in err). */
npy_result npy_write_f32(FILE *file, const float *data, uint32_t rank, const int64_t *shape,
                         char *err, size_t err_size);

#endif
