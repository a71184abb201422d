#include "core/dynlib.h"

#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(_WIN32)
#include <windows.h>
#else
#include <dlfcn.h>
#endif

struct efla_dynlib {
    void *handle;
};

#if defined(_WIN32)
const char *const efla_dynlib_vulkan_names[] = {"vulkan-1.dll", NULL};
const char *const efla_dynlib_opencl_names[] = {"OpenCL.dll", NULL};
const char *const efla_dynlib_cuda_names[] = {"nvcuda.dll", NULL};
#elif defined(__APPLE__)
const char *const efla_dynlib_vulkan_names[] = {"libvulkan.1.dylib", "libMoltenVK.dylib", NULL};
const char *const efla_dynlib_opencl_names[] = {
    "/System/Library/Frameworks/OpenCL.framework/OpenCL", NULL};
const char *const efla_dynlib_cuda_names[] = {"libcuda.dylib", NULL};
#else
const char *const efla_dynlib_vulkan_names[] = {"libvulkan.so.1", NULL};
const char *const efla_dynlib_opencl_names[] = {"libOpenCL.so.1", NULL};
const char *const efla_dynlib_cuda_names[] = {"libcuda.so.1", NULL};
#endif

static void *platform_open(const char *name, char *why, size_t why_size) {
#if defined(_WIN32)
    void *handle = (void *)LoadLibraryA(name);
    if (!handle) snprintf(why, why_size, "error %lu", (unsigned long)GetLastError());
    return handle;
#else
    void *handle = dlopen(name, RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
        const char *message = dlerror();
        strncpy(why, message ? message : "unknown error", why_size - 1);
        why[why_size - 1] = '\0';
    }
    return handle;
#endif
}

efla_status efla_dynlib_open(const char *const *names, efla_dynlib **out) {
    char why[512] = "";
    for (const char *const *name = names; *name; ++name) {
        void *handle = platform_open(*name, why, sizeof why);
        if (!handle) continue;
        efla_dynlib *lib = malloc(sizeof *lib);
        if (!lib) return efla_error(EFLA_ERROR_OUT_OF_HOST_MEMORY, "out of host memory");
        lib->handle = handle;
        *out = lib;
        return EFLA_SUCCESS;
    }
    return efla_error(EFLA_ERROR_BACKEND_UNAVAILABLE, "%s not found (%s)", names[0], why);
}

void efla_dynlib_close(efla_dynlib *lib) {
    if (!lib) return;
#if defined(_WIN32)
    FreeLibrary((HMODULE)lib->handle);
#else
    dlclose(lib->handle);
#endif
    free(lib);
}

void *efla_dynlib_symbol_address(efla_dynlib *lib, const char *name) {
#if defined(_WIN32)
    return (void *)GetProcAddress((HMODULE)lib->handle, name);
#else
    return dlsym(lib->handle, name);
#endif
}

efla_status efla_dynlib_load_table(efla_dynlib *lib, const efla_dynlib_symbol *symbols,
                                   size_t count, void *table) {
    for (size_t i = 0; i < count; ++i) {
        void *address = efla_dynlib_symbol_address(lib, symbols[i].name);
        if (!address && symbols[i].required)
            return efla_error(EFLA_ERROR_BACKEND_UNAVAILABLE, "runtime lacks the symbol %s",
                              symbols[i].name);
        /* Function and object pointers share a representation on every
         * platform efla targets (POSIX requires it for dlsym). */
        memcpy((char *)table + symbols[i].table_offset, &address, sizeof address);
    }
    return EFLA_SUCCESS;
}
