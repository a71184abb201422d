/* The payloads efla_cuda.h's functions hand the CUDA backend through the
 * core's interop entry points (no cuda.h needed on either side). */
#ifndef EFLA_CUDA_NATIVE_H
#define EFLA_CUDA_NATIVE_H

#include <stdint.h>

struct CUstream_st;

typedef struct efla_cuda_native_buffer {
    uint64_t address;
} efla_cuda_native_buffer;

typedef struct efla_cuda_native_stream {
    struct CUstream_st *stream;
} efla_cuda_native_stream;

#endif
