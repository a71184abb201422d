#include "core/kernel_path.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *efla_kernel_path_requested(efla_backend backend, char *buffer, size_t size) {
    const char *text = getenv("EFLA_PATH");
    const char *backend_name = efla_backend_name(backend);
    const char *found = NULL;
    size_t found_length = 0;
    while (text && *text && backend_name) {
        size_t length = strcspn(text, ",");
        const char *colon = memchr(text, ':', length);
        const char *path = colon ? colon + 1 : text;
        size_t path_length = length - (size_t)(path - text);
        bool applies = !colon || ((size_t)(colon - text) == strlen(backend_name) &&
                                  strncasecmp(text, backend_name, strlen(backend_name)) == 0);
        if (applies && path_length) {
            found = path;
            found_length = path_length;
        }
        text += length + (text[length] == ',');
    }
    if (!found || size == 0) return NULL;
    if (found_length >= size) found_length = size - 1;
    memcpy(buffer, found, found_length);
    buffer[found_length] = '\0';
    return buffer;
}
