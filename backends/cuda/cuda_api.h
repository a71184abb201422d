/*
 * The CUDA driver API, loaded at run time: libcuda.so.1 is opened once,
 * cuGetProcAddress is looked up by dlsym, and every other entry point is
 * resolved through it by its base name for CUDA 12.0, which yields the
 * right versioned symbol (cuMemAlloc -> cuMemAlloc_v2, ...). cuda.h is
 * included for types only; nothing links against libcuda.
 */
#ifndef EFLA_CUDA_API_H
#define EFLA_CUDA_API_H

#include "efla/efla.h"

#include <cuda.h>

/* X(name, (parameters), required): the members of efla_cuda_api, named like
 * the driver's functions without the "cu" prefix; all return CUresult. */
#define EFLA_CUDA_API_FUNCTIONS(X)                                                                 \
    X(Init, (unsigned int), 1)                                                                     \
    X(DriverGetVersion, (int *), 1)                                                                \
    X(GetErrorName, (CUresult, const char **), 1)                                                  \
    X(GetErrorString, (CUresult, const char **), 1)                                                \
    X(DeviceGetCount, (int *), 1)                                                                  \
    X(DeviceGet, (CUdevice *, int), 1)                                                             \
    X(DeviceGetName, (char *, int, CUdevice), 1)                                                   \
    X(DeviceGetUuid, (CUuuid *, CUdevice), 0)                                                      \
    X(DeviceGetPCIBusId, (char *, int, CUdevice), 0)                                               \
    X(DeviceTotalMem, (size_t *, CUdevice), 1)                                                     \
    X(DeviceGetAttribute, (int *, CUdevice_attribute, CUdevice), 1)                                \
    X(DevicePrimaryCtxRetain, (CUcontext *, CUdevice), 1)                                          \
    X(DevicePrimaryCtxRelease, (CUdevice), 1)                                                      \
    X(CtxPushCurrent, (CUcontext), 1)                                                              \
    X(CtxPopCurrent, (CUcontext *), 1)                                                             \
    X(CtxGetDevice, (CUdevice *), 1)                                                               \
    X(CtxSynchronize, (void), 1)                                                                   \
    X(StreamCreate, (CUstream *, unsigned int), 1)                                                 \
    X(StreamDestroy, (CUstream), 1)                                                                \
    X(StreamSynchronize, (CUstream), 1)                                                            \
    X(StreamWaitEvent, (CUstream, CUevent, unsigned int), 1)                                       \
    X(EventCreate, (CUevent *, unsigned int), 1)                                                   \
    X(EventDestroy, (CUevent), 1)                                                                  \
    X(EventRecord, (CUevent, CUstream), 1)                                                         \
    X(EventSynchronize, (CUevent), 1)                                                              \
    X(EventElapsedTime, (float *, CUevent, CUevent), 1)                                            \
    X(ModuleLoadData, (CUmodule *, const void *), 1)                                               \
    X(ModuleUnload, (CUmodule), 1)                                                                 \
    X(ModuleGetFunction, (CUfunction *, CUmodule, const char *), 1)                                \
    X(FuncSetAttribute, (CUfunction, CUfunction_attribute, int), 1)                                \
    X(LaunchKernel,                                                                                \
      (CUfunction, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, unsigned, CUstream, \
       void **, void **),                                                                          \
      1)                                                                                           \
    X(MemAlloc, (CUdeviceptr *, size_t), 1)                                                        \
    X(MemFree, (CUdeviceptr), 1)                                                                   \
    X(MemcpyHtoD, (CUdeviceptr, const void *, size_t), 1)                                          \
    X(MemcpyDtoH, (void *, CUdeviceptr, size_t), 1)                                                \
    X(MemcpyHtoDAsync, (CUdeviceptr, const void *, size_t, CUstream), 1)

typedef struct efla_cuda_api {
#define EFLA_CUDA_MEMBER(name, params, required) CUresult(*name) params;
    EFLA_CUDA_API_FUNCTIONS(EFLA_CUDA_MEMBER)
#undef EFLA_CUDA_MEMBER
    int driver_version; /* e.g. 13000 for CUDA 13.0 */
} efla_cuda_api;

/* Loads libcuda and calls cuInit(0), once (thread-safe). The table, or NULL
 * with the status and message of the failure (which is remembered). */
efla_status efla_cuda_api_load(const efla_cuda_api **out);

/* Sets the thread-local message "<what> failed: NAME (string)" and returns
 * the efla status for `result` (OOM, device lost, or EFLA_ERROR_DEVICE). */
efla_status efla_cuda_fail(CUresult result, const char *what);

/* The loaded table (only after a successful efla_cuda_api_load). */
extern const efla_cuda_api *efla_cu;

#endif
