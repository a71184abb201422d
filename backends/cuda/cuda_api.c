/* Loading the CUDA driver API at run time (see cuda_api.h). */
#include "backends/cuda/cuda_api.h"

#include "core/dynlib.h"
#include "core/error.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

/* cuGetProcAddress of CUDA 12+ (exported as cuGetProcAddress_v2) and of
 * CUDA 11 (cuGetProcAddress, without the status argument). */
typedef CUresult (*get_proc_v2_fn)(const char *, void **, int, cuuint64_t,
                                   CUdriverProcAddressQueryResult *);
typedef CUresult (*get_proc_v1_fn)(const char *, void **, int, cuuint64_t);

/* The entry points' ABI this file is written against. */
#define EFLA_CUDA_API_VERSION 12000

static efla_cuda_api api;
const efla_cuda_api *efla_cu;
static efla_status load_status = EFLA_SUCCESS;
static char load_message[512];
static pthread_once_t load_once = PTHREAD_ONCE_INIT;

/* Never dlsym a base name: dlsym("cuMemAlloc") is the 32-bit v1 ABI. */
static void *resolve(get_proc_v2_fn v2, get_proc_v1_fn v1, const char *name) {
    void *address = NULL;
    CUdriverProcAddressQueryResult found = CU_GET_PROC_ADDRESS_SUCCESS;
    CUresult result =
        v2 ? v2(name, &address, EFLA_CUDA_API_VERSION, CU_GET_PROC_ADDRESS_DEFAULT, &found)
           : v1(name, &address, EFLA_CUDA_API_VERSION, CU_GET_PROC_ADDRESS_DEFAULT);
    if (result != CUDA_SUCCESS || found != CU_GET_PROC_ADDRESS_SUCCESS) address = NULL;
    return address;
}

static efla_status resolve_all(efla_dynlib *lib) {
    get_proc_v2_fn v2 = NULL;
    get_proc_v1_fn v1 = NULL;
    void *symbol = efla_dynlib_symbol_address(lib, "cuGetProcAddress_v2");
    if (symbol) memcpy(&v2, &symbol, sizeof symbol);
    symbol = efla_dynlib_symbol_address(lib, "cuGetProcAddress");
    if (!v2 && symbol) memcpy(&v1, &symbol, sizeof symbol);
    if (!v2 && !v1)
        return efla_error(EFLA_ERROR_BACKEND_UNAVAILABLE,
                          "libcuda.so.1 has no cuGetProcAddress (NVIDIA driver older than R470?)");
#define EFLA_CUDA_RESOLVE(name, params, required)                                                  \
    do {                                                                                           \
        void *address = resolve(v2, v1, "cu" #name);                                               \
        if (!address && (required))                                                                \
            return efla_error(EFLA_ERROR_BACKEND_UNAVAILABLE,                                      \
                              "libcuda.so.1 lacks cu" #name " (NVIDIA driver too old?)");          \
        memcpy(&api.name, &address, sizeof address);                                               \
    } while (0);
    EFLA_CUDA_API_FUNCTIONS(EFLA_CUDA_RESOLVE)
#undef EFLA_CUDA_RESOLVE
    return EFLA_SUCCESS;
}

static efla_status load(void) {
    efla_dynlib *lib = NULL;
    efla_status status = efla_dynlib_open(efla_dynlib_cuda_names, &lib);
    if (status != EFLA_SUCCESS) return status; /* "libcuda.so.1 not found (...)" */
    status = resolve_all(lib);
    if (status != EFLA_SUCCESS) {
        efla_dynlib_close(lib);
        return status;
    }
    CUresult result = api.Init(0);
    if (result != CUDA_SUCCESS) {
        const char *text = NULL;
        if (api.GetErrorString(result, &text) != CUDA_SUCCESS || !text) text = "unknown error";
        status =
            efla_error(EFLA_ERROR_BACKEND_UNAVAILABLE, "cuInit failed: %s (libcuda.so.1)", text);
        efla_dynlib_close(lib);
        return status;
    }
    if (api.DriverGetVersion(&api.driver_version) != CUDA_SUCCESS) api.driver_version = 0;
    /* The library stays open for the life of the process. */
    efla_cu = &api;
    return EFLA_SUCCESS;
}

static void load_once_fn(void) {
    load_status = load();
    if (load_status != EFLA_SUCCESS)
        snprintf(load_message, sizeof load_message, "%s", efla_last_error_message());
}

efla_status efla_cuda_api_load(const efla_cuda_api **out) {
    pthread_once(&load_once, load_once_fn);
    if (load_status != EFLA_SUCCESS) return efla_error(load_status, "%s", load_message);
    *out = efla_cu;
    return EFLA_SUCCESS;
}

efla_status efla_cuda_fail(CUresult result, const char *what) {
    const char *name = NULL, *text = NULL;
    if (!efla_cu || efla_cu->GetErrorName(result, &name) != CUDA_SUCCESS || !name) name = "?";
    if (!efla_cu || efla_cu->GetErrorString(result, &text) != CUDA_SUCCESS || !text) text = "";
    efla_status status = EFLA_ERROR_DEVICE;
    switch (result) {
    case CUDA_ERROR_OUT_OF_MEMORY: status = EFLA_ERROR_OUT_OF_DEVICE_MEMORY; break;
    case CUDA_ERROR_ILLEGAL_ADDRESS:
    case CUDA_ERROR_LAUNCH_FAILED:
    case CUDA_ERROR_ILLEGAL_INSTRUCTION:
    case CUDA_ERROR_MISALIGNED_ADDRESS:
    case CUDA_ERROR_INVALID_ADDRESS_SPACE:
    case CUDA_ERROR_INVALID_PC:
    case CUDA_ERROR_HARDWARE_STACK_ERROR:
    case CUDA_ERROR_ECC_UNCORRECTABLE:
    case CUDA_ERROR_CONTEXT_IS_DESTROYED: status = EFLA_ERROR_DEVICE_LOST; break;
    default: break;
    }
    return efla_error(status, "%s failed: %s (%s)", what, name, text);
}
