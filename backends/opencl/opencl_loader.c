/* Loading libOpenCL once per process; the names come from core/dynlib.c. */
#include "backends/opencl/opencl_loader.h"

#include "core/dynlib.h"
#include "core/error.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>

efla_cl_api efla_cl;

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static efla_status load_status;
static efla_dynlib *library; /* open for the life of the process */
static char load_message[512];

static const efla_dynlib_symbol symbols[] = {
#define EFLA_CL_SYMBOL(ret, name, params) {#name, offsetof(efla_cl_api, name), 1},
    EFLA_OPENCL_FUNCTIONS(EFLA_CL_SYMBOL)
#undef EFLA_CL_SYMBOL
};

static void load_library(void) {
    load_status = efla_dynlib_open(efla_dynlib_opencl_names, &library);
    if (load_status == EFLA_SUCCESS) {
        load_status =
            efla_dynlib_load_table(library, symbols, sizeof symbols / sizeof symbols[0], &efla_cl);
        /* The library stays loaded for the life of the process: OpenCL
         * objects handed to the host may outlive any efla context. */
        if (load_status != EFLA_SUCCESS) {
            efla_dynlib_close(library);
            library = NULL;
        }
    }
    if (load_status != EFLA_SUCCESS)
        snprintf(load_message, sizeof load_message, "%s", efla_last_error_message());
}

efla_status efla_cl_load(void) {
    pthread_once(&load_once, load_library);
    if (load_status != EFLA_SUCCESS) return efla_error(load_status, "%s", load_message);
    return EFLA_SUCCESS;
}
