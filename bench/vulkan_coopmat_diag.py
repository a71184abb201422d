#!/usr/bin/env python3
"""Where does the Vulkan coopmat path go non-finite? (H200 diagnosis.)

Runs `efla forward --backend vulkan --algorithm chunked` on small problems
with EFLA_PATH=vulkan:portable and vulkan:coopmat, per chunk size
(EFLA_VULKAN_CHUNK) and shape, and prints for each: non-finite counts of
the output and final state, the largest difference from portable, and the
first token and state row that differ by more than 1e-2.

usage: python3 bench/vulkan_coopmat_diag.py [path/to/efla]   (needs numpy)
Extra environment (e.g. EFLA_VULKAN_COOPMAT_EMULATE=1 on lavapipe) passes
through to efla.
"""
import os
import subprocess
import sys
import tempfile

import numpy as np

EFLA = sys.argv[1] if len(sys.argv) > 1 else "build/tools/efla"
SHAPES = [  # B, T, H, Dk, Dv, beta scale, with initial state
    (1, 64, 1, 32, 16, 0.0, True),  # beta 0: the state must pass through unchanged
    (1, 64, 1, 32, 16, 1.0, False),
    (1, 64, 1, 32, 16, 1.0, True),
    (1, 200, 2, 64, 64, 1.0, True),
    (2, 300, 2, 128, 128, 1.0, True),
    # Separating Dk from Dv (beta 0: a pure pass-through of the state; the
    # scan's state stages have idle subgroups when Dk/16 * Dv-tiles < 4, its
    # V' stage when the chunk is 32):
    (1, 64, 1, 32, 64, 0.0, True),
    (1, 64, 1, 64, 16, 0.0, True),
    (1, 64, 1, 64, 64, 0.0, True),
    (1, 32, 1, 64, 64, 0.0, True),  # one chunk of 32
]
if os.environ.get("DIAG_ONLY_NEW"):
    SHAPES = SHAPES[5:]


def run(d, path, chunk, storage):
    env = dict(os.environ, EFLA_PATH="vulkan:" + path)
    if chunk:
        env["EFLA_VULKAN_CHUNK"] = str(chunk)
    args = [EFLA, "forward", "--backend", "vulkan", "--storage", storage, "--algorithm",
            "chunked", "--json"]
    for name in ("q", "k", "v", "beta"):
        args += ["--" + name, os.path.join(d, name + ".npy")]
    if os.path.exists(os.path.join(d, "s0.npy")):
        args += ["--initial-state", os.path.join(d, "s0.npy")]
    out, state = os.path.join(d, path + "_o.npy"), os.path.join(d, path + "_s.npy")
    r = subprocess.run(args + ["--out", out, "--final-state", state], env=env,
                       capture_output=True, text=True)
    if r.returncode:
        return None, r.stderr.strip()[-300:]
    return (np.load(out), np.load(state)), r.stdout.strip()[-200:]


def main():
    rng = np.random.default_rng(1)
    for storage in ("f16", "bf16"):
        for chunk in (0, 64, 32):
            for B, T, H, Dk, Dv, bs, init in SHAPES:
                d = tempfile.mkdtemp()
                np.save(d + "/q.npy", rng.standard_normal((B, T, H, Dk)).astype("<f4"))
                k = rng.standard_normal((B, T, H, Dk)) / np.sqrt(Dk)
                np.save(d + "/k.npy", k.astype("<f4"))
                np.save(d + "/v.npy", rng.standard_normal((B, T, H, Dv)).astype("<f4"))
                np.save(d + "/beta.npy", (bs * rng.uniform(size=(B, T, H))).astype("<f4"))
                if init:
                    np.save(d + "/s0.npy", 0.3 * rng.standard_normal((B, H, Dk, Dv)).astype("<f4"))
                ref, _ = run(d, "portable", chunk, storage)
                got, info = run(d, "coopmat", chunk, storage)
                tag = f"{storage} chunk={chunk or 'auto'} B={B} T={T} H={H} Dk={Dk} Dv={Dv} beta*{bs} init={init}"
                if ref is None or got is None:
                    print(tag, "FAILED TO RUN:", info)
                    continue
                line = [tag]
                for name, a, b in (("out", ref[0], got[0]), ("state", ref[1], got[1])):
                    bad = ~np.isfinite(b)
                    err = np.abs(np.where(bad, 0, b) - a)
                    line.append(f"{name}: nonfinite {bad.sum()}/{b.size} maxdiff {err.max():.3g}"
                                f" (scale {np.abs(a).max():.3g})")
                    wrong = np.argwhere(bad | (err > 1e-2))
                    if len(wrong):
                        line.append(f"first bad {name} index {tuple(int(x) for x in wrong[0])}")
                print("; ".join(line), "|", info)


if __name__ == "__main__":
    main()
