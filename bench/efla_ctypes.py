#!/usr/bin/env python3
"""A small ctypes binding of libefla (include/efla/efla.h), for the benchmarks.

The struct layouts mirror efla.h field by field. C_LAYOUT records the sizes
and offsets a C compiler gives them on LP64 Linux (bench/efla_abi.c prints
them; bench/check_abi.sh compares both), and the import fails loudly if the
ctypes mirror disagrees, so a header change cannot silently garble a call.

Usage:
    lib = Library.load()                      # --lib / EFLA_LIB / build guesses
    with lib.context("cpu", profiling=True) as ctx:
        buf = ctx.buffer(nbytes); buf.upload(array) ...

Run as a script: `python3 efla_ctypes.py [--lib PATH] layout|backends|version`.
"""

import ctypes
import glob
import os
import sys
from ctypes import (POINTER, Structure, byref, c_char, c_char_p, c_double, c_float, c_int,
                    c_int32, c_int64, c_uint8, c_uint32, c_uint64, c_void_p)

# ---------------------------------------------------------------- enums ----

SUCCESS = 0
ERROR_UNSUPPORTED = 200
ERROR_BACKEND_UNAVAILABLE = 201

BACKENDS = {"auto": 0, "cpu": 1, "vulkan": 2, "opencl": 3, "cuda": 4}
GPU_BACKENDS = ("cuda", "vulkan", "opencl")

DTYPE_F32, DTYPE_F16, DTYPE_BF16, DTYPE_I32, DTYPE_I64 = 1, 2, 3, 4, 5
DTYPE_SIZE = {DTYPE_F32: 4, DTYPE_F16: 2, DTYPE_BF16: 2, DTYPE_I32: 4, DTYPE_I64: 8}

MODE_EFLA, MODE_DELTA = 0, 1
ALGORITHM_AUTO, ALGORITHM_CHUNKED, ALGORITHM_RECURRENT = 0, 1, 2
ALGORITHM_NAMES = {0: "auto", 1: "chunked", 2: "recurrent"}

CONTEXT_PROFILING = 1 << 0
MAX_RANK = 4

c_enum = c_int  # C enums whose values fit in int are int-sized on every ABI efla targets


# -------------------------------------------------------------- structs ----

class ContextCreateInfo(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("next", c_void_p),
        ("backend", c_enum),
        ("device_index", c_int32),
        ("threads", c_uint32),
        ("flags", c_uint32),
        ("allocator", c_void_p),
        ("parallel_for", c_void_p),
        ("parallel_for_user", c_void_p),
    ]


class DeviceInfo(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("backend", c_enum),
        ("index", c_uint32),
        ("type", c_enum),
        ("name", c_char * 256),
        ("vendor", c_char * 64),
        ("driver_version", c_char * 64),
        ("pci_bus_id", c_char * 32),
        ("uuid", c_uint8 * 16),
        ("vendor_id", c_uint32),
        ("device_id", c_uint32),
        ("compute_units", c_uint32),
        ("subgroup_size", c_uint32),
        ("shared_memory_bytes", c_uint64),
        ("memory_bytes", c_uint64),
        ("flags", c_uint32),
        ("kernel_path", c_char * 32),
    ]


class Tensor(Structure):
    _fields_ = [
        ("buffer", c_void_p),
        ("offset", c_uint64),
        ("dtype", c_enum),
        ("rank", c_uint32),
        ("shape", c_int64 * MAX_RANK),
        ("strides", c_int64 * MAX_RANK),
    ]


class ForwardDesc(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("next", c_void_p),
        ("q", Tensor),
        ("k", Tensor),
        ("v", Tensor),
        ("beta", Tensor),
        ("out", Tensor),
        ("initial_state", Tensor),
        ("final_state", Tensor),
        ("cu_seqlens", c_void_p),
        ("cu_seqlens_dtype", c_enum),
        ("num_sequences", c_int64),
        ("scale", c_float),
        ("mode", c_enum),
        ("algorithm", c_enum),
        ("flags", c_uint32),
    ]


class ForwardPlan(Structure):
    _fields_ = [
        ("struct_size", c_uint32),
        ("algorithm", c_enum),
        ("kernel_path", c_char * 32),
    ]


class StageTime(Structure):
    _fields_ = [
        ("name", c_char * 24),
        ("ms", c_double),
        ("dispatches", c_uint32),
    ]


STRUCTS = {
    "efla_context_create_info": ContextCreateInfo,
    "efla_device_info": DeviceInfo,
    "efla_tensor": Tensor,
    "efla_forward_desc": ForwardDesc,
    "efla_forward_plan": ForwardPlan,
    "efla_stage_time": StageTime,
}

# What bench/efla_abi.c prints on x86-64 / aarch64 Linux (gcc, LP64).
C_LAYOUT = {
    "efla_context_create_info": (56, dict(
        struct_size=0, next=8, backend=16, device_index=20, threads=24, flags=28,
        allocator=32, parallel_for=40, parallel_for_user=48)),
    "efla_device_info": (520, dict(
        struct_size=0, backend=4, index=8, type=12, name=16, vendor=272, driver_version=336,
        pci_bus_id=400, uuid=432, vendor_id=448, device_id=452, compute_units=456,
        subgroup_size=460, shared_memory_bytes=464, memory_bytes=472, flags=480,
        kernel_path=484)),
    "efla_tensor": (88, dict(buffer=0, offset=8, dtype=16, rank=20, shape=24, strides=56)),
    "efla_forward_desc": (672, dict(
        struct_size=0, next=8, q=16, k=104, v=192, beta=280, out=368, initial_state=456,
        final_state=544, cu_seqlens=632, cu_seqlens_dtype=640, num_sequences=648, scale=656,
        mode=660, algorithm=664, flags=668)),
    "efla_forward_plan": (40, dict(struct_size=0, algorithm=4, kernel_path=8)),
    "efla_stage_time": (40, dict(name=0, ms=24, dispatches=32)),
}


def ctypes_layout():
    """{struct name: (size, {field: offset})} as ctypes lays the mirror out."""
    return {name: (ctypes.sizeof(cls), {f: getattr(cls, f).offset for f, _ in cls._fields_})
            for name, cls in STRUCTS.items()}


def _check_layout():
    if ctypes.sizeof(c_void_p) != 8:
        return  # C_LAYOUT is for LP64; check_abi.sh covers other ABIs
    got = ctypes_layout()
    for name, want in C_LAYOUT.items():
        if got[name] != want:
            raise ImportError(f"efla_ctypes: {name} layout {got[name]} differs from C {want}; "
                              "efla.h changed: update bench/efla_ctypes.py")


_check_layout()


# ------------------------------------------------------------- library ----

class EflaError(RuntimeError):
    def __init__(self, what, status, message):
        super().__init__(f"{what}: {message or 'status'} (status {status})")
        self.status = status
        self.message = message


def library_candidates(explicit=None):
    """Where libefla.so may be: explicit path, EFLA_LIB, the bundle, build folders."""
    if explicit:
        return [explicit]
    if os.environ.get("EFLA_LIB"):
        return [os.environ["EFLA_LIB"]]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    guesses = [os.path.join(root, ".device", "bundle", "lib", "libefla.so"),
               os.path.join(root, "build-h200", "libefla.so"),
               os.path.join(root, "build", "libefla.so")]
    others = sorted(glob.glob(os.path.join(root, "build*", "libefla.so")),
                    key=os.path.getmtime, reverse=True)
    return [p for p in guesses + others if os.path.exists(p)]


_SIGNATURES = {
    # name: (restype, argtypes)
    "efla_version_string": (c_char_p, []),
    "efla_status_string": (c_char_p, [c_int]),
    "efla_last_error_message": (c_char_p, []),
    "efla_backend_compiled": (c_int, [c_enum]),
    "efla_backend_probe": (c_int, [c_enum]),
    "efla_device_count": (c_int, [c_enum, POINTER(c_uint32)]),
    "efla_device_get_info": (c_int, [c_enum, c_uint32, POINTER(DeviceInfo)]),
    "efla_context_create": (c_int, [POINTER(ContextCreateInfo), POINTER(c_void_p)]),
    "efla_context_destroy": (None, [c_void_p]),
    "efla_context_device_info": (c_int, [c_void_p, POINTER(DeviceInfo)]),
    "efla_context_synchronize": (c_int, [c_void_p]),
    "efla_context_last_forward_ms": (c_int, [c_void_p, POINTER(c_double)]),
    "efla_context_last_forward_stages": (c_int, [c_void_p, POINTER(StageTime), c_uint32,
                                                 POINTER(c_uint32)]),
    "efla_buffer_create": (c_int, [c_void_p, c_uint64, POINTER(c_void_p)]),
    "efla_buffer_destroy": (None, [c_void_p]),
    "efla_buffer_size": (c_uint64, [c_void_p]),
    "efla_buffer_upload": (c_int, [c_void_p, c_uint64, c_void_p, c_uint64]),
    "efla_buffer_download": (c_int, [c_void_p, c_uint64, c_void_p, c_uint64]),
    "efla_tensor_contiguous": (Tensor, [c_void_p, c_uint64, c_enum, c_uint32, POINTER(c_int64)]),
    "efla_forward": (c_int, [c_void_p, POINTER(ForwardDesc)]),
    "efla_forward_query": (c_int, [c_void_p, POINTER(ForwardDesc), POINTER(ForwardPlan)]),
}


# Interop entry points (include/efla/efla_cuda.h): bound only when the library
# exports them (a build with the CUDA backend).
_OPTIONAL_SIGNATURES = {
    "efla_cuda_buffer_wrap": (c_int, [c_void_p, c_uint64, c_uint64, POINTER(c_void_p)]),
    "efla_cuda_buffer_address": (c_int, [c_void_p, POINTER(c_uint64)]),
}


class Library:
    """libefla loaded with ctypes, every used function typed."""

    def __init__(self, path):
        self.path = path
        self.dll = ctypes.CDLL(path)
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(self.dll, name)
            fn.restype = restype
            fn.argtypes = argtypes
            setattr(self, name[len("efla_"):], fn)
        for name, (restype, argtypes) in _OPTIONAL_SIGNATURES.items():
            if self.has(name):
                fn = getattr(self.dll, name)
                fn.restype = restype
                fn.argtypes = argtypes
                setattr(self, name[len("efla_"):], fn)

    @classmethod
    def load(cls, explicit=None):
        candidates = library_candidates(explicit)
        if not candidates:
            raise FileNotFoundError("libefla.so not found: pass --lib PATH or set EFLA_LIB")
        return cls(candidates[0])

    def has(self, symbol):
        return hasattr(self.dll, symbol)

    def check(self, status, what):
        if status != SUCCESS:
            raise EflaError(what, status, self.last_error_message().decode(errors="replace"))

    def version(self):
        return self.version_string().decode()

    def compiled_backends(self):
        return [b for b, v in BACKENDS.items() if b != "auto" and self.backend_compiled(v)]

    def context(self, backend="auto", device_index=-1, threads=0, profiling=True):
        return Context(self, backend, device_index, threads, profiling)


def _text(chars):
    return bytes(chars).split(b"\0", 1)[0].decode(errors="replace")


class Context:
    """An efla context; a context manager that destroys it (and its buffers)."""

    def __init__(self, lib, backend, device_index, threads, profiling):
        self.lib = lib
        self.buffers = []
        info = ContextCreateInfo(struct_size=ctypes.sizeof(ContextCreateInfo),
                                 backend=BACKENDS[backend], device_index=device_index,
                                 threads=threads, flags=CONTEXT_PROFILING if profiling else 0)
        handle = c_void_p()
        lib.check(lib.context_create(byref(info), byref(handle)), f"context on {backend}")
        self.handle = handle

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def free_buffers(self):
        """Destroys every buffer made with buffer()."""
        for buf in self.buffers:
            self.lib.buffer_destroy(buf.handle)
        self.buffers = []

    def close(self):
        self.free_buffers()
        if self.handle:
            self.lib.context_destroy(self.handle)
            self.handle = None

    def device_info(self):
        info = DeviceInfo(struct_size=ctypes.sizeof(DeviceInfo))
        self.lib.check(self.lib.context_device_info(self.handle, byref(info)), "device info")
        return {"name": _text(info.name), "vendor": _text(info.vendor),
                "driver_version": _text(info.driver_version), "kernel_path": _text(info.kernel_path),
                "compute_units": info.compute_units, "memory_bytes": info.memory_bytes}

    def buffer(self, size_bytes):
        handle = c_void_p()
        self.lib.check(self.lib.buffer_create(self.handle, size_bytes, byref(handle)),
                       f"buffer of {size_bytes} bytes")
        buf = Buffer(self.lib, handle, size_bytes)
        self.buffers.append(buf)
        return buf

    def wrap_cuda(self, device_address, size_bytes):
        """A buffer over caller-owned CUDA device memory (efla_cuda_buffer_wrap); the memory
        must outlive the buffer. None when the library has no CUDA interop."""
        if not self.lib.has("efla_cuda_buffer_wrap"):
            return None
        handle = c_void_p()
        self.lib.check(self.lib.cuda_buffer_wrap(self.handle, device_address, size_bytes,
                                                 byref(handle)), "wrap CUDA memory")
        buf = Buffer(self.lib, handle, size_bytes)
        self.buffers.append(buf)
        return buf

    def synchronize(self):
        self.lib.check(self.lib.context_synchronize(self.handle), "synchronize")

    def last_forward_ms(self):
        ms = c_double()
        self.lib.check(self.lib.context_last_forward_ms(self.handle, byref(ms)), "last forward ms")
        return ms.value

    def last_forward_stages(self):
        """[(name, ms, dispatches)] of the last forward, or None where the backend has none."""
        stages = (StageTime * 8)()
        count = c_uint32()
        if self.lib.context_last_forward_stages(self.handle, stages, 8, byref(count)) != 0:
            return None
        return [(s.name.decode(), s.ms, s.dispatches) for s in stages[:min(count.value, 8)]]

    def forward(self, desc):
        self.lib.check(self.lib.forward(self.handle, byref(desc)), "forward")

    def query(self, desc):
        plan = ForwardPlan(struct_size=ctypes.sizeof(ForwardPlan))
        self.lib.check(self.lib.forward_query(self.handle, byref(desc), byref(plan)), "query")
        return ALGORITHM_NAMES.get(plan.algorithm, "?"), _text(plan.kernel_path)


class Buffer:
    def __init__(self, lib, handle, size):
        self.lib = lib
        self.handle = handle
        self.size = size

    def upload(self, address, size_bytes, offset=0):
        self.lib.check(self.lib.buffer_upload(self.handle, offset, address, size_bytes), "upload")

    def download(self, address, size_bytes, offset=0):
        self.lib.check(self.lib.buffer_download(self.handle, offset, address, size_bytes),
                       "download")

    def tensor(self, dtype, shape, offset=0):
        """A C-contiguous tensor over this buffer (efla_tensor_contiguous)."""
        dims = (c_int64 * len(shape))(*shape)
        return self.lib.tensor_contiguous(self.handle, offset, dtype, len(shape), dims)


def forward_desc(q, k, v, beta, out, initial_state=None, final_state=None, scale=0.0,
                 mode=MODE_EFLA, algorithm=ALGORITHM_AUTO, flags=0):
    """An efla_forward_desc (EFLA_FORWARD_DESC_INIT plus the given fields)."""
    desc = ForwardDesc(struct_size=ctypes.sizeof(ForwardDesc), q=q, k=k, v=v, beta=beta, out=out,
                       scale=scale, mode=mode, algorithm=algorithm, flags=flags)
    if initial_state is not None:
        desc.initial_state = initial_state
    if final_state is not None:
        desc.final_state = final_state
    return desc


def _main(argv):
    import argparse
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lib", help="libefla.so (default: EFLA_LIB, then build guesses)")
    parser.add_argument("what", choices=["layout", "backends", "version"])
    args = parser.parse_args(argv)
    if args.what == "layout":  # the same lines bench/efla_abi.c prints
        for name, (size, fields) in ctypes_layout().items():
            print(name, size)
            for field, offset in fields.items():
                print(f"{name}.{field} {offset}")
        return 0
    lib = Library.load(args.lib)
    if args.what == "version":
        print(lib.version(), lib.path)
    else:
        print(" ".join(lib.compiled_backends()))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
