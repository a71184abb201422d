/* Small public helpers: version, names of enums, tensor descriptions. */
#include "efla/efla.h"

#include <string.h>

uint32_t efla_version(void) { return EFLA_VERSION; }

#define EFLA_STRINGIFY2(x) #x
#define EFLA_STRINGIFY(x) EFLA_STRINGIFY2(x)

const char *efla_version_string(void) {
    return EFLA_STRINGIFY(EFLA_VERSION_MAJOR) "." EFLA_STRINGIFY(
        EFLA_VERSION_MINOR) "." EFLA_STRINGIFY(EFLA_VERSION_PATCH);
}

const char *efla_dtype_name(efla_dtype dtype) {
    switch (dtype) {
    case EFLA_DTYPE_F32: return "f32";
    case EFLA_DTYPE_F16: return "f16";
    case EFLA_DTYPE_BF16: return "bf16";
    case EFLA_DTYPE_I32: return "i32";
    case EFLA_DTYPE_I64: return "i64";
    default: return NULL;
    }
}

size_t efla_dtype_size(efla_dtype dtype) {
    switch (dtype) {
    case EFLA_DTYPE_F32: return 4;
    case EFLA_DTYPE_F16: return 2;
    case EFLA_DTYPE_BF16: return 2;
    case EFLA_DTYPE_I32: return 4;
    case EFLA_DTYPE_I64: return 8;
    default: return 0;
    }
}

const char *efla_algorithm_name(efla_algorithm algorithm) {
    switch (algorithm) {
    case EFLA_ALGORITHM_AUTO: return "auto";
    case EFLA_ALGORITHM_CHUNKED: return "chunked";
    case EFLA_ALGORITHM_RECURRENT: return "recurrent";
    default: return NULL;
    }
}

efla_tensor efla_tensor_contiguous(efla_buffer buffer, uint64_t offset_bytes, efla_dtype dtype,
                                   uint32_t rank, const int64_t *shape) {
    efla_tensor tensor;
    memset(&tensor, 0, sizeof tensor);
    tensor.buffer = buffer;
    tensor.offset = offset_bytes;
    tensor.dtype = dtype;
    tensor.rank = rank;
    if (!shape || rank > EFLA_MAX_RANK) return tensor; /* rejected when used */
    int64_t stride = 1;
    for (uint32_t i = rank; i-- > 0;) {
        tensor.shape[i] = shape[i];
        tensor.strides[i] = stride;
        stride *= shape[i] > 0 ? shape[i] : 1;
    }
    return tensor;
}
