#!/usr/bin/env python3
"""efla beside fla (flash-linear-attention): the same bf16 inputs, one table.

For every shape, efla (libefla through ctypes, on --backend) and fla (Triton,
chunk_delta_rule for prefill, fused_recurrent_delta_rule for decode) get the
same bf16 q, k, v; fla gets EFLA's step alpha = -expm1(-beta |k|^2) / |k|^2
precomputed from the same beta and keys as its beta. Both outputs and final
states are compared (relative Frobenius error against fla), and both are timed
with device timestamps after an L2 flush: median of --iters runs after warm-up.

fla is imported from the git-ignored folder .fla/ (see bench/README.md).
Exit status: 0 all agree, 1 a comparison failed, 2 usage or missing fla/torch,
3 an efla call failed.
"""

import argparse
import functools
import json
import os
import platform
import sys
import time
from collections import namedtuple

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import efla_ctypes as ec  # noqa: E402

Shape = namedtuple("Shape", "id B T H HV Dk Dv")

# PERFORMANCE.md's suite.
SUITE = {
    "S1": Shape("S1", 1, 8192, 16, 16, 128, 128),
    "S2": Shape("S2", 4, 4096, 16, 16, 128, 128),
    "S3": Shape("S3", 8, 2048, 32, 32, 64, 64),
    "S4": Shape("S4", 1, 32768, 8, 8, 128, 128),
    "S5": Shape("S5", 2, 4096, 16, 16, 256, 256),
    "D1": Shape("D1", 64, 1, 16, 16, 128, 128),
}
PREFILL = ["S1", "S2", "S3", "S4", "S5"]
DECODE = ["D1"]

# efla's AUTO rule (core/backend.h, EFLA_RECURRENT_MAX_TOKENS): at most this
# many tokens run the recurrent kernel, so fla's recurrent kernel is the peer.
RECURRENT_MAX_TOKENS = 64

TOLERANCE = 2.5e-2
FLA_MISSING = "fla not found in .fla/: see bench/README.md"


def is_decode(shape):
    return shape.T <= RECURRENT_MAX_TOKENS


# ------------------------------------------------------------- inputs ----

def to_bf16_bits(x):
    """float32 array -> bf16 bit patterns (uint16), round to nearest even (finite inputs)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((u + (((u >> 16) & 1) + np.uint32(0x7FFF))) >> 16).astype(np.uint16)


def bf16_to_f32(bits):
    return (bits.astype(np.uint32) << 16).view(np.float32)


def efla_alpha(beta, lam):
    """EFLA's step beta * (1 - exp(-x)) / x with x = beta * lam, in float64.

    A short series where x is tiny (or zero) avoids 0/0; float64 expm1 is
    accurate everywhere else."""
    x = beta * lam
    small = x < 1e-4
    xs = np.where(small, 1.0, x)
    phi = np.where(small, 1.0 - x / 2.0 + x * x / 6.0, -np.expm1(-xs) / xs)
    return beta * phi


Inputs = namedtuple("Inputs", "q k v beta alpha h0")  # bf16 bits, except h0 (f32 or None)


def make_inputs(shape, seed, with_state):
    """PERFORMANCE.md's inputs: q, k, v ~ N(0,1) (keys not normalised), beta = sigmoid(N(0,1))."""
    B, T, H, HV, Dk, Dv = shape.B, shape.T, shape.H, shape.HV, shape.Dk, shape.Dv
    rng = np.random.default_rng(seed)
    q = to_bf16_bits(rng.standard_normal((B, T, H, Dk), dtype=np.float32))
    k = to_bf16_bits(rng.standard_normal((B, T, H, Dk), dtype=np.float32))
    v = to_bf16_bits(rng.standard_normal((B, T, HV, Dv), dtype=np.float32))
    z = rng.standard_normal((B, T, HV), dtype=np.float32)
    beta = to_bf16_bits(1.0 / (1.0 + np.exp(-z)))
    # |k|^2 of the keys as stored: a bf16 square is exact in f32; sum in f64.
    lam = np.square(bf16_to_f32(k)).sum(axis=-1, dtype=np.float64)
    lam = np.repeat(lam, HV // H, axis=2)  # v-head hv reads key head hv // (HV/H)
    alpha = to_bf16_bits(efla_alpha(bf16_to_f32(beta).astype(np.float64), lam))
    h0 = rng.standard_normal((B, HV, Dk, Dv), dtype=np.float32) if with_state else None
    return Inputs(q, k, v, beta, alpha, h0)


def rel_error(got, want):
    """|got - want|_F / |want|_F in float64."""
    want = want.astype(np.float64).ravel()
    diff = got.astype(np.float64).ravel() - want
    norm = np.sqrt(np.dot(want, want))
    return float(np.sqrt(np.dot(diff, diff)) / norm) if norm > 0 else float(np.abs(diff).max())


def percentiles(times):
    p10, p50, p90 = np.percentile(np.asarray(times, dtype=np.float64), [10, 50, 90])
    return {"median_ms": float(p50), "p10_ms": float(p10), "p90_ms": float(p90)}


# ----------------------------------------------------------- L2 flush ----

class Flush:
    """Evicts the caches between timed runs by writing a large buffer.

    On a GPU it is a torch buffer on the CUDA device (the same physical GPU
    serves efla's Vulkan and OpenCL backends there); for the CPU backend a
    host buffer; without torch on a GPU backend there is none, and it says so."""

    def __init__(self, backend, megabytes, torch):
        self.torch = None
        self.host = None
        self.note = ""
        nbytes = megabytes << 20
        if nbytes == 0:
            self.note = "no cache flush (--flush-mb 0)"
        elif torch is not None and torch.cuda.is_available():
            self.torch = torch
            self.device_buffer = torch.empty(nbytes, dtype=torch.uint8, device="cuda")
        elif backend == "cpu":
            self.host = np.empty(nbytes, dtype=np.uint8)
        else:
            self.note = "no L2 flush: torch with CUDA is not available"

    def __call__(self, wait):
        """Writes the buffer; `wait` blocks until done (for work on another stream or API)."""
        if self.torch is not None:
            self.device_buffer.zero_()
            if wait:
                self.torch.cuda.synchronize()
        elif self.host is not None:
            self.host.fill(0)


# --------------------------------------------------------------- efla ----

class HostMemory:
    """efla buffers of the context, filled from host memory once (every backend)."""

    name = "uploaded"

    def __init__(self, ctx):
        self.ctx = ctx

    def input(self, array):
        array = np.ascontiguousarray(array)
        buf = self.ctx.buffer(array.nbytes)
        buf.upload(array.ctypes.data, array.nbytes)
        return buf

    def output(self, nbytes):
        return self.ctx.buffer(nbytes)

    def read(self, buf, dtype, shape):
        array = np.empty(shape, dtype=dtype)
        buf.download(array.ctypes.data, array.nbytes)
        return array


class TorchMemory:
    """efla buffers wrapped around torch CUDA tensors (efla_cuda_buffer_wrap): efla on CUDA
    shares the device's primary context with torch, so it reads torch's memory directly."""

    name = "torch tensors, wrapped"

    def __init__(self, ctx, torch):
        self.ctx = ctx
        self.torch = torch
        self.tensors = {}  # buffer handle -> tensor: keeps the memory alive

    def _wrap(self, tensor):
        buf = self.ctx.wrap_cuda(tensor.data_ptr(), tensor.numel() * tensor.element_size())
        self.tensors[buf.handle.value] = tensor
        return buf

    def input(self, array):
        tensor = self.torch.from_numpy(np.ascontiguousarray(array)).cuda()
        self.torch.cuda.synchronize()  # efla reads it from its own stream
        return self._wrap(tensor)

    def output(self, nbytes):
        return self._wrap(self.torch.empty(nbytes, dtype=self.torch.uint8, device="cuda"))

    def read(self, buf, dtype, shape):
        self.ctx.synchronize()
        raw = self.tensors[buf.handle.value].cpu().numpy()
        return raw.view(dtype).reshape(shape)


def efla_memory(ctx, backend, torch):
    """Torch-wrapped memory for the CUDA backend when both sides can, else host uploads."""
    if backend == "cuda" and torch is not None and ctx.lib.has("efla_cuda_buffer_wrap"):
        return TorchMemory(ctx, torch)
    return HostMemory(ctx)


class EflaRun:
    """One shape on an efla context: inputs put in place once, then timed forwards."""

    def __init__(self, ctx, memory, shape, inputs):
        B, T, H, HV, Dk, Dv = shape.B, shape.T, shape.H, shape.HV, shape.Dk, shape.Dv
        self.ctx = ctx
        self.memory = memory
        self.shape = shape
        bf16, f32 = ec.DTYPE_BF16, ec.DTYPE_F32
        q = memory.input(inputs.q).tensor(bf16, (B, T, H, Dk))
        k = memory.input(inputs.k).tensor(bf16, (B, T, H, Dk))
        v = memory.input(inputs.v).tensor(bf16, (B, T, HV, Dv))
        beta = memory.input(inputs.beta).tensor(bf16, (B, T, HV))
        self.out = memory.output(B * T * HV * Dv * 2)
        self.state = memory.output(B * HV * Dk * Dv * 4)
        h0 = None
        if inputs.h0 is not None:
            h0 = memory.input(inputs.h0).tensor(f32, (B, HV, Dk, Dv))
        self.desc = ec.forward_desc(q, k, v, beta, self.out.tensor(bf16, (B, T, HV, Dv)),
                                    initial_state=h0,
                                    final_state=self.state.tensor(f32, (B, HV, Dk, Dv)),
                                    scale=Dk ** -0.5)
        algorithm, kernel_path = ctx.query(self.desc)
        self.path = f"{algorithm}/{kernel_path}"

    def forward(self):
        self.ctx.forward(self.desc)

    def time(self, iters, warmup, flush):
        warm_up(self.forward, self.ctx.synchronize, warmup)
        times = []
        self.stages = {}  # name: summed ms, where the backend times stages
        for _ in range(iters):
            flush(wait=True)
            self.forward()
            times.append(self.ctx.last_forward_ms())
            for name, ms, _ in self.ctx.last_forward_stages() or []:
                self.stages[name] = self.stages.get(name, 0.0) + ms / iters
        return times

    def host_ms_per_call(self, iters):
        """Wall clock of back-to-back calls and one synchronize, per call (decode loops)."""
        self.ctx.synchronize()
        start = time.perf_counter()
        for _ in range(iters):
            self.forward()
        self.ctx.synchronize()
        return (time.perf_counter() - start) * 1e3 / iters

    def results(self):
        s = self.shape
        o = self.memory.read(self.out, np.uint16, (s.B, s.T, s.HV, s.Dv))
        st = self.memory.read(self.state, np.float32, (s.B, s.HV, s.Dk, s.Dv))
        return bf16_to_f32(o), st


# ---------------------------------------------------------------- fla ----

def import_fla(fla_dir):
    """(torch, chunk_delta_rule, fused_recurrent_delta_rule) or raises ImportError with why."""
    if not os.path.isdir(os.path.join(fla_dir, "fla")):
        raise ImportError(f"{FLA_MISSING} (no {os.path.join(fla_dir, 'fla')})")
    import importlib.util
    missing = [m for m in ("torch", "triton") if importlib.util.find_spec(m) is None]
    if missing:
        raise ImportError(f"fla needs torch and triton; not installed: {', '.join(missing)}")
    import torch
    if not torch.cuda.is_available():
        raise ImportError("torch sees no CUDA device: fla runs on CUDA only")
    sys.path.insert(0, fla_dir)
    sys.path.append(os.path.join(fla_dir, "deps"))  # fallbacks from bundle.sh; host's win
    try:
        from fla.ops.delta_rule import chunk_delta_rule, fused_recurrent_delta_rule
    except ImportError as e:
        raise ImportError(f"importing fla from {fla_dir} failed: {e}; {FLA_MISSING}") from e
    return torch, chunk_delta_rule, fused_recurrent_delta_rule


def bits_to_torch(torch, bits):
    """bf16 bit patterns (numpy uint16) -> a bf16 CUDA tensor with the same values."""
    return torch.from_numpy(bits.view(np.int16)).cuda().view(torch.bfloat16)


class FlaRun:
    def __init__(self, fla, shape, inputs):
        torch, chunk, recurrent = fla
        if shape.H != shape.HV:
            raise ValueError(f"{shape.id}: fla's delta rule needs H == HV")
        self.torch = torch
        self.fn = recurrent if is_decode(shape) else chunk
        self.path = "fused_recurrent" if is_decode(shape) else "chunk"
        h0 = None if inputs.h0 is None else torch.from_numpy(inputs.h0).cuda()
        self.args = (bits_to_torch(torch, inputs.q), bits_to_torch(torch, inputs.k),
                     bits_to_torch(torch, inputs.v))
        self.kwargs = dict(beta=bits_to_torch(torch, inputs.alpha), scale=shape.Dk ** -0.5,
                           initial_state=h0, output_final_state=True,
                           use_qk_l2norm_in_kernel=False)

    def forward(self):
        with self.torch.no_grad():
            result = self.fn(*self.args, **self.kwargs)
        # (o, final_state) in fla 0.5; o alone in versions that drop a None state.
        if isinstance(result, (tuple, list)):
            return result[0], (result[1] if len(result) > 1 else None)
        return result, None

    def time(self, iters, warmup, flush):
        torch = self.torch
        warm_up(self.forward, torch.cuda.synchronize, warmup)
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        times = []
        for _ in range(iters):
            flush(wait=False)  # same stream: ordered before the start event
            start.record()
            self.forward()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end))
        return times

    def host_ms_per_call(self, iters):
        torch = self.torch
        torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(iters):
            self.forward()
        torch.cuda.synchronize()
        return (time.perf_counter() - start) * 1e3 / iters

    def results(self):
        o, state = self.forward()
        self.torch.cuda.synchronize()
        o = o.float().cpu().numpy()
        return o, (None if state is None else state.float().cpu().numpy())


WARMUP_SECONDS = 1.0


def warm_up(forward, synchronize, runs):
    """`runs` forwards, then more until WARMUP_SECONDS have passed (for runs > 0), back to
    back (a wait every 16): on the H200's Vulkan driver a shape's first 5-11 forwards after
    the previous shape's buffers were freed took 4-5x their steady time, and some processes
    ran slow for seconds (efla bench does the same)."""
    start, done = time.perf_counter(), 0
    while done < runs or (runs > 0 and time.perf_counter() - start < WARMUP_SECONDS):
        forward()
        done += 1
        if done % 16 == 0:
            synchronize()
    synchronize()


def numpy_delta_rule(shape, inputs):
    """fla's job done by a float64 recurrence on fla's own inputs (bf16 alpha as its beta).

    --reference uses it where fla cannot run (no CUDA) to check everything
    fla_compare adds around the kernels: alpha, layouts, scale, the error."""
    B, T, H, HV, Dk, Dv = shape.B, shape.T, shape.H, shape.HV, shape.Dk, shape.Dv
    group = HV // H
    q = np.repeat(bf16_to_f32(inputs.q).astype(np.float64), group, axis=2)
    k = np.repeat(bf16_to_f32(inputs.k).astype(np.float64), group, axis=2)
    v = bf16_to_f32(inputs.v).astype(np.float64)
    alpha = bf16_to_f32(inputs.alpha).astype(np.float64)
    S = np.zeros((B, HV, Dk, Dv)) if inputs.h0 is None else inputs.h0.astype(np.float64)
    o = np.empty((B, T, HV, Dv))
    for t in range(T):
        u = v[:, t] - np.einsum("bhkv,bhk->bhv", S, k[:, t])
        S += alpha[:, t, :, None, None] * k[:, t, :, :, None] * u[:, :, None, :]
        o[:, t] = Dk ** -0.5 * np.einsum("bhkv,bhk->bhv", S, q[:, t])
    return o, S


# ------------------------------------------------------------ driving ----

def kernel_times(torch, run, sync, count):
    """Per-kernel device times of `count` back-to-back forwards under CUPTI (torch.profiler):
    [(kernel name, launches per forward, mean us per launch)], longest total first. CUPTI sees
    every context of the process, so it times efla's own launches too (no L2 flush between)."""
    from torch.profiler import ProfilerActivity, profile
    sync()
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(count):
            run.forward()
        sync()
    rows = []
    for e in prof.key_averages():
        total = getattr(e, "device_time_total", None) or getattr(e, "cuda_time_total", 0)
        if e.count and total and not e.key.startswith("cuda"):  # kernels, not API calls
            rows.append((e.key, e.count / count, total / e.count))
    return sorted(rows, key=lambda r: -r[1] * r[2])


def print_kernels(who, kernels):
    total = sum(n * us for _, n, us in kernels)
    print(f"#   {who} kernels ({total:.1f} us per forward):")
    for name, n, us in kernels:
        print(f"#     {us:9.1f} us x {n:g}  {name[:110]}")


def time_efla(args, ctx, memory, flush, shape, inputs, row):
    """Runs efla on one shape; returns its (output, final state) as f32 arrays."""
    try:
        efla = EflaRun(ctx, memory(), shape, inputs)
        row["efla_path"] = efla.path
        row["efla"] = percentiles(efla.time(args.iters, args.warmup, flush))
        if efla.stages:
            row["efla_stages_ms"] = efla.stages
        if is_decode(shape):
            row["efla_host_ms_per_call"] = efla.host_ms_per_call(args.iters)
        if args.kernels and args.torch is not None:
            row["efla_kernels"] = kernel_times(args.torch, efla, ctx.synchronize, args.kernels)
        return efla.results()
    finally:
        try:  # no work may still use memory about to be freed
            ctx.synchronize()
        except ec.EflaError:
            pass
        ctx.free_buffers()  # this shape's memory, before the next shape


def time_fla(args, fla, flush, shape, inputs, row):
    peer = FlaRun(fla, shape, inputs)
    row["fla_path"] = peer.path
    row["fla"] = percentiles(peer.time(args.iters, args.warmup, flush))
    if is_decode(shape):
        row["fla_host_ms_per_call"] = peer.host_ms_per_call(args.iters)
    if args.kernels:
        row["fla_kernels"] = kernel_times(fla[0], peer, fla[0].cuda.synchronize, args.kernels)
    results = peer.results()
    del peer
    fla[0].cuda.empty_cache()
    return results


def judge(args, row, efla_out, peer_out):
    """Sets row's errors and status from the two (output, final state) pairs."""
    (o, s), (o_peer, s_peer) = efla_out, peer_out
    row["err_o"] = rel_error(o, o_peer)
    row["err_state"] = None if s_peer is None else rel_error(s, s_peer)
    if row["err_state"] is None:
        row["status"], row["why"] = "FAIL", "the peer returned no final state"
    elif max(row["err_o"], row["err_state"]) >= args.tolerance:
        row["status"], row["why"] = "FAIL", f"relative error at or above {args.tolerance:g}"
    else:
        row["status"] = "PASS"


def run_shape(args, ctx, memory, fla, flush, shape):
    """One table row: efla timed, then fla (or the NumPy reference), then compared."""
    with_state = args.initial_state or is_decode(shape)
    inputs = make_inputs(shape, args.seed, with_state)
    row = {"shape": shape.id, "dims": list(shape[1:]), "storage": "bf16",
           "initial_state": with_state, "status": "ok"}
    try:
        efla_out = time_efla(args, ctx, memory, flush, shape, inputs, row)
    except ec.EflaError as e:
        row["status"], row["why"] = "ERROR", f"efla: {e}"
        return row
    if not all(np.isfinite(x).all() for x in efla_out):
        row["status"], row["why"] = "FAIL", "efla wrote non-finite values"
        return row
    if fla is not None:
        try:
            peer_out = time_fla(args, fla, flush, shape, inputs, row)
        except Exception as e:  # a Triton or fla failure: report it, go on
            row["status"], row["why"] = "ERROR", f"fla: {type(e).__name__}: {e}"
            return row
        row["ratio"] = row["efla"]["median_ms"] / row["fla"]["median_ms"]
        judge(args, row, efla_out, peer_out)
    elif args.reference:
        row["fla_path"] = "numpy-f64"
        judge(args, row, efla_out, numpy_delta_rule(shape, inputs))
    return row


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def print_table(rows, out=sys.stdout):
    head = ("shape", "B,T,H,HV,Dk,Dv", "efla ms", "fla ms", "ratio", "efla path", "fla path",
            "err o", "err state", "host ms efla/fla", "result")
    lines = [head]
    for r in rows:
        host = "-"
        if "efla_host_ms_per_call" in r:
            host = f"{r['efla_host_ms_per_call']:.4f}/{fmt(r.get('fla_host_ms_per_call'), '.4f')}"
        lines.append((r["shape"], ",".join(map(str, r["dims"])),
                      fmt(r.get("efla", {}).get("median_ms"), ".4f"),
                      fmt(r.get("fla", {}).get("median_ms"), ".4f"),
                      fmt(r.get("ratio"), ".2f"), r.get("efla_path", "-"), r.get("fla_path", "-"),
                      fmt(r.get("err_o"), ".2e"), fmt(r.get("err_state"), ".2e"), host,
                      r["status"]))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(head))]
    for line in lines:
        print("  ".join(str(c).ljust(w) for c, w in zip(line, widths)).rstrip(), file=out)


def print_progress(r):
    """One line per finished shape, so a run cut short still shows what it did."""
    parts = [f"{r['shape']}: efla {fmt(r.get('efla', {}).get('median_ms'), '.4f')} ms "
             f"({r.get('efla_path', '-')})"]
    if "fla" in r:
        parts.append(f"fla {r['fla']['median_ms']:.4f} ms, ratio {r['ratio']:.2f}")
    if r.get("err_o") is not None:
        parts.append(f"err o {r['err_o']:.2e} state {fmt(r.get('err_state'), '.2e')}")
    parts.append(r["status"] + (f" ({r['why']})" if "why" in r else ""))
    print("# " + ", ".join(parts))
    if "efla_stages_ms" in r:
        print("#   efla stages (mean device ms): " +
              ", ".join(f"{n} {ms:.4f}" for n, ms in r["efla_stages_ms"].items()))
    for who in ("efla", "fla"):
        if f"{who}_kernels" in r:
            print_kernels(who, r[f"{who}_kernels"])
    sys.stdout.flush()


def write_json(path, env, rows, final):
    """Writes the rows so far to path (after each shape, so a timeout keeps them); '-' prints
    them to stdout once, at the end."""
    if not path or (path == "-" and not final):
        return
    doc = json.dumps({"environment": env, "rows": rows, "complete": final}, indent=1)
    if path == "-":
        print(doc)
        return
    with open(path + ".tmp", "w") as f:
        f.write(doc + "\n")
    os.replace(path + ".tmp", path)


def parse_shapes(spec, extra):
    ids = []
    for item in filter(None, (x.strip() for x in spec.split(","))):
        ids += {"all": PREFILL + DECODE, "prefill": PREFILL, "decode": DECODE}.get(item, [item])
    shapes = []
    for i in ids:
        if i not in SUITE:
            raise ValueError(f"unknown shape {i!r}; known: {', '.join(SUITE)}, all, prefill, decode")
        shapes.append(SUITE[i])
    for dims in extra or []:
        try:
            B, T, H, HV, Dk, Dv = (int(x) for x in dims.split(","))
        except ValueError:
            raise ValueError(f"--shape wants B,T,H,HV,Dk,Dv, got {dims!r}") from None
        shapes.append(Shape(f"{B}x{T}x{H}x{HV}x{Dk}x{Dv}", B, T, H, HV, Dk, Dv))
    return shapes


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--backend", default=os.environ.get("EFLA_BACKEND", "auto"),
                   choices=list(ec.BACKENDS), help="efla backend (default EFLA_BACKEND or auto)")
    p.add_argument("--device", type=int, default=-1, help="efla device index (default: first)")
    p.add_argument("--shapes", default="all",
                   help="comma list of S1..S5, D1, all, prefill, decode (default all); "
                        "empty with --shape for custom shapes only")
    p.add_argument("--shape", action="append", metavar="B,T,H,HV,Dk,Dv",
                   help="an extra shape (repeatable)")
    p.add_argument("--iters", type=int, default=50, help="timed runs per shape (default 50)")
    p.add_argument("--warmup", type=int, default=5,
                   help="untimed runs first (default 5), then more for 1 s (none with 0)")
    p.add_argument("--flush-mb", type=int, default=256, help="cache flush buffer (default 256)")
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--initial-state", action="store_true",
                   help="give an initial state for prefill shapes too (decode always has one)")
    p.add_argument("--tolerance", type=float, default=TOLERANCE)
    p.add_argument("--threads", type=int, default=0, help="CPU backend threads (0: all)")
    p.add_argument("--lib", help="libefla.so (default EFLA_LIB, then .device/bundle, build*/)")
    p.add_argument("--fla-dir", default=os.path.join(ROOT, ".fla"),
                   help="folder holding fla's fla/ package (default <checkout>/.fla)")
    p.add_argument("--efla-only", action="store_true", help="time efla alone, without fla")
    p.add_argument("--reference", action="store_true",
                   help="with --efla-only: check efla against a float64 NumPy recurrence fed "
                        "fla's inputs (small shapes; slow)")
    p.add_argument("--kernels", type=int, default=0, metavar="N",
                   help="also time each kernel of efla and fla over N forwards (CUPTI through "
                        "torch.profiler; needs torch)")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON ('-': stdout)")
    args = p.parse_args(argv)
    if args.iters < 1 or args.warmup < 0:
        p.error("--iters must be >= 1 and --warmup >= 0")
    try:
        args.shape_list = parse_shapes(args.shapes, args.shape)
    except ValueError as e:
        p.error(str(e))
    if not args.shape_list:
        p.error("no shapes")
    return args


def environment(lib, ctx, args, fla, flush):
    info = ctx.device_info()
    env = {"date": time.strftime("%Y-%m-%d %H:%M:%S %z"), "host": platform.node(),
           "backend": args.backend, "device": info["name"], "driver": info["driver_version"],
           "efla_version": lib.version(), "efla_lib": lib.path, "commit": git_commit(lib.path),
           "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
           "iters": args.iters, "warmup": args.warmup, "flush": flush.note or f"{args.flush_mb} MB"}
    if fla is not None:
        import fla as fla_pkg  # already imported by import_fla
        import triton
        version = getattr(fla_pkg, "__version__", "?")
        try:  # bench/bundle.sh records the exported commit
            with open(os.path.join(args.fla_dir, "FLA_COMMIT")) as f:
                version += f" ({f.read().strip()})"
        except OSError:
            pass
        env.update(torch=fla[0].__version__, triton=triton.__version__, fla=version,
                   gpu=fla[0].cuda.get_device_name())
    return env


def git_commit(lib_path=None):
    """EFLA_COMMIT, else the COMMIT file bench/bundle.sh puts beside the library it bundles
    (what runs: the GPU host's copy of the checkout may carry an older .git), else git."""
    if os.environ.get("EFLA_COMMIT"):
        return os.environ["EFLA_COMMIT"]
    if lib_path:
        try:
            with open(os.path.join(os.path.dirname(os.path.abspath(lib_path)), "..", "COMMIT")) as f:
                return f.read().strip()
        except OSError:
            pass
    import subprocess
    try:
        out = subprocess.run(["git", "-C", ROOT, "describe", "--always", "--dirty"],
                             capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open(os.path.join(ROOT, ".device", "bundle", "COMMIT")) as f:
            return f.read().strip()
    except OSError:
        return "unknown"


def main(argv):
    args = parse_args(argv)
    fla = None
    torch = None
    if not args.efla_only:
        try:
            fla = import_fla(args.fla_dir)
        except ImportError as e:
            print(f"fla_compare: {e}", file=sys.stderr)
            print("fla_compare: use --efla-only to time efla alone", file=sys.stderr)
            return 2
        torch = fla[0]
    elif args.backend != "cpu" or args.kernels:
        try:
            import torch  # only for the L2 flush on a GPU
        except ImportError:
            torch = None

    try:
        lib = ec.Library.load(args.lib)
    except (OSError, FileNotFoundError) as e:
        print(f"fla_compare: {e}", file=sys.stderr)
        return 2
    args.torch = torch
    if args.kernels and torch is None:
        print("fla_compare: --kernels needs torch; not timing kernels", file=sys.stderr)
    flush = Flush(args.backend, args.flush_mb, torch)
    rows = []
    try:
        with lib.context(args.backend, args.device, args.threads, profiling=True) as ctx:
            env = environment(lib, ctx, args, fla, flush)
            memory = functools.partial(efla_memory, ctx, args.backend, torch)
            env["efla_memory"] = memory().name
            print(f"# efla {env['efla_version']} ({env['efla_lib']}) on {args.backend}: "
                  f"{env['device']}, driver {env['driver']}; commit {env['commit']}")
            if fla is not None:
                print(f"# fla {env['fla']}, torch {env['torch']}, triton {env['triton']} "
                      f"on {env['gpu']}")
            print(f"# median of {args.iters} runs after {args.warmup} warm-up; flush: "
                  f"{env['flush']}; tolerance {args.tolerance:g}; efla inputs "
                  f"{env['efla_memory']}")
            sys.stdout.flush()
            for shape in args.shape_list:
                rows.append(run_shape(args, ctx, memory, fla, flush, shape))
                print_progress(rows[-1])
                write_json(args.json, env, rows, final=False)
    except ec.EflaError as e:
        print(f"fla_compare: efla failed: {e}", file=sys.stderr)
        if rows:
            print_table(rows)
        return 3

    print_table(rows)
    write_json(args.json, env, rows, final=True)
    for r in rows:
        if "why" in r:
            print(f"fla_compare: {r['shape']}: {r['status']}: {r['why']}", file=sys.stderr)
    statuses = {r["status"] for r in rows}
    return 1 if "FAIL" in statuses else 3 if "ERROR" in statuses else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
