/*
 * A stand-in for libcuda.so.1 that runs efla's kernels in the emulator
 * (emu_runtime.cpp), so that the whole CUDA backend, host code included,
 * can be tested on a machine without a GPU. It exports only
 * cuGetProcAddress_v2 / cuGetProcAddress, as efla resolves everything else
 * through them. It checks what a real driver would reject: no current
 * context, block sizes over the kernel's launch bounds, dynamic shared
 * memory over 48 KiB without cuFuncSetAttribute or over the device's
 * opt-in limit, grid limits, copies outside an allocation, unknown kernel
 * names, fatbin images without the fatbin magic or misaligned.
 *
 * Synchronous host-to-device copies model the driver's staging: cuMemcpyHtoD
 * from pageable memory returns once the bytes are staged, and the DMA lands
 * later, ordered with the legacy stream but not with streams created
 * CU_STREAM_NON_BLOCKING. Here it lands after the next kernel launched on
 * such a stream (the race lost), or before legacy / blocking-stream work
 * and synchronizations. Fresh allocations hold 0xff bytes (NaN in every
 * float dtype), so reads of memory nobody wrote show up.
 *
 * The emulated device: "efla emulator (H200-like)", sm_90, 132 SMs, 227 KiB
 * opt-in shared memory; EFLA_FAKE_CUDA_SMEM_OPTIN overrides the latter
 * (e.g. 101376 for sm_86/89-class limits), EFLA_FAKE_CUDA_SMS the SM count,
 * EFLA_FAKE_CUDA_DEVICES the device count.
 */
#include "emu_runtime.h"

#include <cuda.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace {

struct Function {
    const char *name;
    efla_emu_kernel_fn fn;
    int max_threads;
    int max_dynamic_smem = 48 * 1024;
};

struct Context {
    int device;
    int retains = 0;
};

std::map<uintptr_t, size_t> g_allocations;

/* Legacy-stream host-to-device copies whose DMA has not landed yet. */
struct PendingCopy {
    CUdeviceptr dst;
    std::vector<unsigned char> bytes;
};
std::vector<PendingCopy> g_pending;

void land_pending_copies() {
    for (const PendingCopy &copy : g_pending)
        std::memcpy(reinterpret_cast<void *>((uintptr_t)copy.dst), copy.bytes.data(),
                    copy.bytes.size());
    g_pending.clear();
}

/* Streams are an int holding their creation flags; 0 is the legacy stream. */
bool non_blocking(CUstream stream) {
    return stream && (*reinterpret_cast<int *>(stream) & CU_STREAM_NON_BLOCKING);
}
std::vector<CUcontext> g_stack;
Context g_contexts[8];
bool g_initialized = false;

int env_int(const char *name, int fallback) {
    const char *text = std::getenv(name);
    return text && *text ? std::atoi(text) : fallback;
}

int device_count() { return env_int("EFLA_FAKE_CUDA_DEVICES", 1); }
int smem_optin() { return env_int("EFLA_FAKE_CUDA_SMEM_OPTIN", 232448); }

CUresult need_context() {
    if (!g_initialized) return CUDA_ERROR_NOT_INITIALIZED;
    return g_stack.empty() ? CUDA_ERROR_INVALID_CONTEXT : CUDA_SUCCESS;
}

/* Whether [address, address + size) lies inside one allocation. */
bool inside_allocation(CUdeviceptr address, size_t size) {
    auto it = g_allocations.upper_bound((uintptr_t)address);
    if (it == g_allocations.begin()) return false;
    --it;
    return (uintptr_t)address >= it->first && (uintptr_t)address + size <= it->first + it->second;
}

CUresult fake_Init(unsigned int flags) {
    if (flags) return CUDA_ERROR_INVALID_VALUE;
    if (std::getenv("EFLA_FAKE_CUDA_NO_DEVICE")) return CUDA_ERROR_NO_DEVICE;
    g_initialized = true;
    return CUDA_SUCCESS;
}

CUresult fake_DriverGetVersion(int *version) {
    *version = 13000;
    return CUDA_SUCCESS;
}

CUresult fake_GetErrorName(CUresult result, const char **name) {
    switch (result) {
    case CUDA_SUCCESS: *name = "CUDA_SUCCESS"; break;
    case CUDA_ERROR_INVALID_VALUE: *name = "CUDA_ERROR_INVALID_VALUE"; break;
    case CUDA_ERROR_OUT_OF_MEMORY: *name = "CUDA_ERROR_OUT_OF_MEMORY"; break;
    case CUDA_ERROR_NOT_INITIALIZED: *name = "CUDA_ERROR_NOT_INITIALIZED"; break;
    case CUDA_ERROR_NO_DEVICE: *name = "CUDA_ERROR_NO_DEVICE"; break;
    case CUDA_ERROR_INVALID_DEVICE: *name = "CUDA_ERROR_INVALID_DEVICE"; break;
    case CUDA_ERROR_INVALID_IMAGE: *name = "CUDA_ERROR_INVALID_IMAGE"; break;
    case CUDA_ERROR_INVALID_CONTEXT: *name = "CUDA_ERROR_INVALID_CONTEXT"; break;
    case CUDA_ERROR_NOT_FOUND: *name = "CUDA_ERROR_NOT_FOUND"; break;
    case CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES: *name = "CUDA_ERROR_LAUNCH_OUT_OF_RESOURCES"; break;
    default: *name = "CUDA_ERROR_UNKNOWN"; break;
    }
    return CUDA_SUCCESS;
}

CUresult fake_GetErrorString(CUresult result, const char **text) {
    *text = result == CUDA_SUCCESS ? "no error" : "emulated driver error";
    return CUDA_SUCCESS;
}

CUresult fake_DeviceGetCount(int *count) {
    if (!g_initialized) return CUDA_ERROR_NOT_INITIALIZED;
    *count = device_count();
    return CUDA_SUCCESS;
}

CUresult fake_DeviceGet(CUdevice *device, int ordinal) {
    if (ordinal < 0 || ordinal >= device_count()) return CUDA_ERROR_INVALID_DEVICE;
    *device = ordinal;
    return CUDA_SUCCESS;
}

CUresult fake_DeviceGetName(char *name, int length, CUdevice device) {
    std::snprintf(name, (size_t)length, "efla emulator %d (H200-like)", device);
    return CUDA_SUCCESS;
}

CUresult fake_DeviceGetUuid(CUuuid *uuid, CUdevice device) {
    std::memset(uuid->bytes, 0x5a, sizeof uuid->bytes);
    uuid->bytes[15] = (char)device;
    return CUDA_SUCCESS;
}

CUresult fake_DeviceGetPCIBusId(char *text, int length, CUdevice device) {
    std::snprintf(text, (size_t)length, "0000:%02X:00.0", 0x3b + device);
    return CUDA_SUCCESS;
}

CUresult fake_DeviceTotalMem(size_t *bytes, CUdevice) {
    *bytes = (size_t)150 << 30;
    return CUDA_SUCCESS;
}

CUresult fake_DeviceGetAttribute(int *value, CUdevice_attribute attribute, CUdevice) {
    switch (attribute) {
    case CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT:
        *value = env_int("EFLA_FAKE_CUDA_SMS", 132);
        break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR: *value = 9; break;
    case CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR: *value = 0; break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN: *value = smem_optin(); break;
    case CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_MULTIPROCESSOR:
        *value = smem_optin() + 1024;
        break;
    case CU_DEVICE_ATTRIBUTE_WARP_SIZE: *value = 32; break;
    case CU_DEVICE_ATTRIBUTE_INTEGRATED: *value = 0; break;
    default: *value = 0; break;
    }
    return CUDA_SUCCESS;
}

CUresult fake_DevicePrimaryCtxRetain(CUcontext *context, CUdevice device) {
    if (device < 0 || device >= 8) return CUDA_ERROR_INVALID_DEVICE;
    g_contexts[device].device = device;
    g_contexts[device].retains++;
    *context = reinterpret_cast<CUcontext>(&g_contexts[device]);
    return CUDA_SUCCESS;
}

CUresult fake_DevicePrimaryCtxRelease(CUdevice device) {
    if (g_contexts[device].retains <= 0) return CUDA_ERROR_INVALID_CONTEXT;
    g_contexts[device].retains--;
    return CUDA_SUCCESS;
}

CUresult fake_CtxPushCurrent(CUcontext context) {
    if (!context) return CUDA_ERROR_INVALID_CONTEXT;
    g_stack.push_back(context);
    return CUDA_SUCCESS;
}

CUresult fake_CtxPopCurrent(CUcontext *context) {
    if (g_stack.empty()) return CUDA_ERROR_INVALID_CONTEXT;
    if (context) *context = g_stack.back();
    g_stack.pop_back();
    return CUDA_SUCCESS;
}

CUresult fake_CtxGetDevice(CUdevice *device) {
    if (CUresult r = need_context()) return r;
    *device = reinterpret_cast<Context *>(g_stack.back())->device;
    return CUDA_SUCCESS;
}

CUresult fake_context_only() { return need_context(); }
CUresult fake_CtxSynchronize() {
    land_pending_copies();
    return fake_context_only();
}

CUresult fake_StreamCreate(CUstream *stream, unsigned int flags) {
    if (CUresult r = need_context()) return r;
    *stream = reinterpret_cast<CUstream>(new int((int)flags));
    return CUDA_SUCCESS;
}
CUresult fake_StreamDestroy(CUstream stream) {
    delete reinterpret_cast<int *>(stream);
    return CUDA_SUCCESS;
}
CUresult fake_StreamSynchronize(CUstream stream) {
    if (!non_blocking(stream)) land_pending_copies();
    return need_context();
}
CUresult fake_StreamWaitEvent(CUstream, CUevent event, unsigned int) {
    return event ? need_context() : CUDA_ERROR_INVALID_VALUE;
}

CUresult fake_EventCreate(CUevent *event, unsigned int) {
    if (CUresult r = need_context()) return r;
    *event = reinterpret_cast<CUevent>(new int(0));
    return CUDA_SUCCESS;
}
CUresult fake_EventDestroy(CUevent event) {
    delete reinterpret_cast<int *>(event);
    return CUDA_SUCCESS;
}
CUresult fake_EventRecord(CUevent event, CUstream) {
    if (CUresult r = need_context()) return r;
    ++*reinterpret_cast<int *>(event);
    return CUDA_SUCCESS;
}
CUresult fake_EventSynchronize(CUevent event) {
    return event ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}
CUresult fake_EventElapsedTime(float *ms, CUevent start, CUevent stop) {
    if (!*reinterpret_cast<int *>(start) || !*reinterpret_cast<int *>(stop))
        return CUDA_ERROR_INVALID_VALUE; /* not recorded */
    *ms = 0.5f;
    return CUDA_SUCCESS;
}

CUresult fake_ModuleLoadData(CUmodule *module, const void *image) {
    if (CUresult r = need_context()) return r;
    uint32_t magic;
    std::memcpy(&magic, image, sizeof magic);
    if (magic != 0xBA55ED50u || reinterpret_cast<uintptr_t>(image) % 8)
        return CUDA_ERROR_INVALID_IMAGE;
    *module = reinterpret_cast<CUmodule>(new int(0));
    return CUDA_SUCCESS;
}
CUresult fake_ModuleUnload(CUmodule module) {
    delete reinterpret_cast<int *>(module);
    return CUDA_SUCCESS;
}

CUresult fake_ModuleGetFunction(CUfunction *function, CUmodule, const char *name) {
    if (CUresult r = need_context()) return r;
    Function *f = new Function();
    f->name = name; /* the kernel table's string literal */
    if (!efla_emu_find_kernel(name, &f->fn, &f->max_threads)) {
        delete f;
        return CUDA_ERROR_NOT_FOUND;
    }
    *function = reinterpret_cast<CUfunction>(f); /* leaked with the module: a test tool */
    return CUDA_SUCCESS;
}

CUresult fake_FuncSetAttribute(CUfunction function, CUfunction_attribute attribute, int value) {
    if (attribute != CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES) return CUDA_SUCCESS;
    if (value > smem_optin()) return CUDA_ERROR_INVALID_VALUE;
    reinterpret_cast<Function *>(function)->max_dynamic_smem = value;
    return CUDA_SUCCESS;
}

CUresult fake_LaunchKernel(CUfunction function, unsigned gx, unsigned gy, unsigned gz, unsigned bx,
                           unsigned by, unsigned bz, unsigned smem, CUstream stream, void **params,
                           void **extra) {
    if (CUresult r = need_context()) return r;
    Function *f = reinterpret_cast<Function *>(function);
    if (!params || extra || gz != 1 || by != 1 || bz != 1) return CUDA_ERROR_INVALID_VALUE;
    if (gx == 0 || gy == 0 || gx > 0x7fffffffu || gy > 65535) return CUDA_ERROR_INVALID_VALUE;
    if (bx == 0 || bx > 1024 || (int)bx > f->max_threads) return CUDA_ERROR_INVALID_VALUE;
    if ((int)smem > f->max_dynamic_smem) return CUDA_ERROR_INVALID_VALUE;
    const bool racing = non_blocking(stream);
    /* EFLA_FAKE_CUDA_TRACE: which kernel each launch ran, for tests of
     * the host's choices (tiles, parts, paths). */
    if (std::getenv("EFLA_FAKE_CUDA_TRACE"))
        std::fprintf(stderr, "fake cuda: launch %s grid %ux%u block %u smem %u\n", f->name, gx, gy,
                     bx, smem);
    if (!racing) land_pending_copies();
    efla_emu_launch(f->fn, gx, gy, bx, smem, static_cast<const efla_cuda_params *>(params[0]));
    land_pending_copies(); /* a non-blocking stream's kernel ran before the DMA landed */
    return CUDA_SUCCESS;
}

CUresult fake_MemAlloc(CUdeviceptr *address, size_t size) {
    if (CUresult r = need_context()) return r;
    if (size == 0) return CUDA_ERROR_INVALID_VALUE;
    void *memory = std::aligned_alloc(256, (size + 255) / 256 * 256);
    if (!memory) return CUDA_ERROR_OUT_OF_MEMORY;
    std::memset(memory, 0xff, size); /* NaN in every dtype: reads of unwritten device memory show */
    g_allocations[(uintptr_t)memory] = size;
    *address = (CUdeviceptr)(uintptr_t)memory;
    return CUDA_SUCCESS;
}

CUresult fake_MemFree(CUdeviceptr address) {
    if (CUresult r = need_context()) return r;
    auto it = g_allocations.find((uintptr_t)address);
    if (it == g_allocations.end()) return CUDA_ERROR_INVALID_VALUE;
    land_pending_copies(); /* cuMemFree waits for the device */
    std::free(reinterpret_cast<void *>(it->first));
    g_allocations.erase(it);
    return CUDA_SUCCESS;
}

/* Staged: the DMA lands later (see the top of this file). */
CUresult fake_MemcpyHtoD(CUdeviceptr dst, const void *src, size_t size) {
    if (CUresult r = need_context()) return r;
    if (!inside_allocation(dst, size)) return CUDA_ERROR_INVALID_VALUE;
    const unsigned char *bytes = static_cast<const unsigned char *>(src);
    g_pending.push_back(PendingCopy{dst, std::vector<unsigned char>(bytes, bytes + size)});
    return CUDA_SUCCESS;
}
/* In stream order: earlier legacy copies land first unless the stream is
 * non-blocking, where they may land after it (and overwrite it). */
CUresult fake_MemcpyHtoDAsync(CUdeviceptr dst, const void *src, size_t size, CUstream stream) {
    if (CUresult r = need_context()) return r;
    if (!inside_allocation(dst, size)) return CUDA_ERROR_INVALID_VALUE;
    if (!non_blocking(stream)) land_pending_copies();
    std::memcpy(reinterpret_cast<void *>((uintptr_t)dst), src, size);
    return CUDA_SUCCESS;
}
CUresult fake_MemcpyDtoH(void *dst, CUdeviceptr src, size_t size) {
    if (CUresult r = need_context()) return r;
    if (!inside_allocation(src, size)) return CUDA_ERROR_INVALID_VALUE;
    land_pending_copies(); /* legacy stream: after the earlier legacy copies */
    std::memcpy(dst, reinterpret_cast<const void *>((uintptr_t)src), size);
    return CUDA_SUCCESS;
}

struct Entry {
    const char *name;
    void *address;
};

#define FAKE(name)                                                                                 \
    { "cu" #name, reinterpret_cast<void *>(&fake_##name) }
const Entry g_entries[] = {
    FAKE(Init),
    FAKE(DriverGetVersion),
    FAKE(GetErrorName),
    FAKE(GetErrorString),
    FAKE(DeviceGetCount),
    FAKE(DeviceGet),
    FAKE(DeviceGetName),
    FAKE(DeviceGetUuid),
    FAKE(DeviceGetPCIBusId),
    FAKE(DeviceTotalMem),
    FAKE(DeviceGetAttribute),
    FAKE(DevicePrimaryCtxRetain),
    FAKE(DevicePrimaryCtxRelease),
    FAKE(CtxPushCurrent),
    FAKE(CtxPopCurrent),
    FAKE(CtxGetDevice),
    FAKE(CtxSynchronize),
    FAKE(StreamCreate),
    FAKE(StreamDestroy),
    FAKE(StreamSynchronize),
    FAKE(StreamWaitEvent),
    FAKE(EventCreate),
    FAKE(EventDestroy),
    FAKE(EventRecord),
    FAKE(EventSynchronize),
    FAKE(EventElapsedTime),
    FAKE(ModuleLoadData),
    FAKE(ModuleUnload),
    FAKE(ModuleGetFunction),
    FAKE(FuncSetAttribute),
    FAKE(LaunchKernel),
    FAKE(MemAlloc),
    FAKE(MemFree),
    FAKE(MemcpyHtoD),
    FAKE(MemcpyDtoH),
    FAKE(MemcpyHtoDAsync),
};

} // namespace

extern "C" __attribute__((visibility("default"))) CUresult
cuGetProcAddress_v2(const char *symbol, void **pfn, int version, cuuint64_t,
                    CUdriverProcAddressQueryResult *status) {
    if (status) *status = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    *pfn = nullptr;
    if (version < 12000) return CUDA_ERROR_NOT_FOUND;
    for (const Entry &entry : g_entries)
        if (std::strcmp(entry.name, symbol) == 0) {
            *pfn = entry.address;
            if (status) *status = CU_GET_PROC_ADDRESS_SUCCESS;
            return CUDA_SUCCESS;
        }
    return CUDA_ERROR_NOT_FOUND;
}
