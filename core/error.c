#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define EFLA_ERROR_CAPACITY 1024

static _Thread_local char last_message[EFLA_ERROR_CAPACITY];

efla_status efla_error(efla_status status, const char *format, ...) {
    va_list args;
    va_start(args, format);
    vsnprintf(last_message, sizeof last_message, format, args);
    va_end(args);
    return status;
}

void efla_error_clear(void) { last_message[0] = '\0'; }

void efla_error_prefix(const char *prefix) {
    size_t prefix_length = strlen(prefix) + 2; /* "<prefix>: " */
    size_t message_length = strlen(last_message);
    if (prefix_length >= sizeof last_message) return;
    if (message_length > sizeof last_message - 1 - prefix_length)
        message_length = sizeof last_message - 1 - prefix_length;
    memmove(last_message + prefix_length, last_message, message_length);
    last_message[prefix_length + message_length] = '\0';
    memcpy(last_message, prefix, prefix_length - 2);
    memcpy(last_message + prefix_length - 2, ": ", 2);
}

const char *efla_last_error_message(void) { return last_message; }

const char *efla_status_string(efla_status status) {
    switch (status) {
    case EFLA_SUCCESS: return "success";
    case EFLA_ERROR_INVALID_ARGUMENT: return "invalid argument";
    case EFLA_ERROR_INVALID_TENSOR: return "invalid tensor";
    case EFLA_ERROR_OUT_OF_BOUNDS: return "tensor out of buffer bounds";
    case EFLA_ERROR_OVERLAP: return "overlapping tensors";
    case EFLA_ERROR_BACKEND_MISMATCH: return "buffer belongs to another context";
    case EFLA_ERROR_UNSUPPORTED: return "unsupported";
    case EFLA_ERROR_BACKEND_UNAVAILABLE: return "backend unavailable";
    case EFLA_ERROR_DEVICE_NOT_FOUND: return "device not found";
    case EFLA_ERROR_DEVICE: return "device error";
    case EFLA_ERROR_DEVICE_LOST: return "device lost";
    case EFLA_ERROR_KERNEL_BUILD: return "kernel build failed";
    case EFLA_ERROR_DRIVER_TOO_OLD: return "driver too old";
    case EFLA_ERROR_OUT_OF_HOST_MEMORY: return "out of host memory";
    case EFLA_ERROR_OUT_OF_DEVICE_MEMORY: return "out of device memory";
    case EFLA_ERROR_INTERNAL: return "internal error";
    }
    return "unknown status";
}
