/* The thread-local last-error message behind efla_last_error_message(). */
#ifndef EFLA_CORE_ERROR_H
#define EFLA_CORE_ERROR_H

#include "efla/efla.h"

#if defined(__GNUC__) || defined(__clang__)
#define EFLA_PRINTF(fmt_index, first_arg) __attribute__((format(printf, fmt_index, first_arg)))
#else
#define EFLA_PRINTF(fmt_index, first_arg)
#endif

/* Sets the message (printf-style) and returns `status`, so that failures
 * read: return efla_error(EFLA_ERROR_INVALID_TENSOR, "q has rank %u", r); */
efla_status efla_error(efla_status status, const char *format, ...) EFLA_PRINTF(2, 3);

/* Clears the message; every public entry point calls it first. */
void efla_error_clear(void);

/* Prefixes the current message with "<prefix>: " (adds context while a
 * failure travels up, e.g. "vulkan: "). */
void efla_error_prefix(const char *prefix);

#endif
