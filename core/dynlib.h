/*
 * Run-time loading of GPU runtimes (libvulkan, libOpenCL, libcuda), so that
 * a missing runtime disables a backend instead of breaking libefla.
 * OS-specific names and calls stay in dynlib.c.
 */
#ifndef EFLA_CORE_DYNLIB_H
#define EFLA_CORE_DYNLIB_H

#include "efla/efla.h"

#include <stddef.h>

typedef struct efla_dynlib efla_dynlib;

/* One entry of a function table: the symbol and where its pointer goes. */
typedef struct efla_dynlib_symbol {
    const char *name;
    size_t table_offset; /* offsetof(the table struct, the member) */
    int required;        /* 0: left NULL when absent */
} efla_dynlib_symbol;

/* Opens the first library of `names` (NULL-terminated) that loads.
 * Fails with EFLA_ERROR_BACKEND_UNAVAILABLE and "<first name> not found
 * (<loader message>)". The handle stays open until efla_dynlib_close. */
efla_status efla_dynlib_open(const char *const *names, efla_dynlib **out);
void efla_dynlib_close(efla_dynlib *lib);
void *efla_dynlib_symbol_address(efla_dynlib *lib, const char *name);

/* Fills `table` (a struct of function pointers) from `symbols`. A missing
 * required symbol fails with EFLA_ERROR_BACKEND_UNAVAILABLE naming it. */
efla_status efla_dynlib_load_table(efla_dynlib *lib, const efla_dynlib_symbol *symbols,
                                   size_t count, void *table);

/* Platform library names, so that backends need not spell them. */
extern const char *const efla_dynlib_vulkan_names[];
extern const char *const efla_dynlib_opencl_names[];
extern const char *const efla_dynlib_cuda_names[];

#endif
