#!/usr/bin/env python3
"""The Markdown table docs/BENCHMARKS.md wants, from a run's own output files.

    python3 bench/to_markdown.py --bench h200-out/bench-cuda.jsonl --fla h200-out/fla-cuda.json

--bench: `efla bench --json` output (one JSON object per line). --fla: a
fla_compare.py --json file of the same run; its efla/fla ratio (same inputs,
same flush, one process) fills the "x fla" column. Either may be given alone.
Prints the rows in the order measured; nothing is computed that the files do
not hold except unit changes and tokens/s for fla-only rows.
"""

import argparse
import json
import sys


def read_bench(path):
    rows = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                rows.append(json.loads(line))
    return rows


def dims(shape):
    return ",".join(str(shape[k]) for k in ("B", "T", "H", "HV", "Dk", "Dv"))


def num(x, spec):
    return "—" if x is None or x != x else format(x, spec)


def flop_unit(bench_rows):
    """GFLOP/s for the CPU (PERFORMANCE.md compares with its FMA peak), TFLOP/s for GPUs."""
    return ("GFLOP/s", 1.0) if all(r["backend"] == "cpu" for r in bench_rows) else ("TFLOP/s", 1e-3)


def bench_table(bench_rows, fla_rows):
    unit, scale = flop_unit(bench_rows)
    out = [f"| shape | B,T,H,HV,Dk,Dv | storage | path | median ms | p10 / p90 ms | tokens/s | "
           f"nominal {unit} | GB/s | x fla | x byte floor | x FMA floor |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in bench_rows:
        peer = fla_rows.get(r["id"], {})
        out.append(
            f"| {r['id']} | {dims(r['shape'])} | {r['storage']} | {r['algorithm']}/{r['path']} | "
            f"{r['median_ms']:.4f} | {r['p10_ms']:.4f} / {r['p90_ms']:.4f} | "
            f"{r['tokens_per_s']:.4g} | {num(r['nominal_gflops'] * scale, '.3g')} | "
            f"{r['gbps']:.1f} | {num(peer.get('ratio'), '.2f')} | "
            f"{num(r.get('x_byte_floor'), '.2f')} | {num(r.get('x_fma_floor'), '.2f')} |")
    return out


def fla_table(fla_doc):
    out = ["| shape | B,T,H,HV,Dk,Dv | efla path | efla ms (p10 / p90) | fla path | fla ms "
           "(p10 / p90) | x fla | err o | err state | host ms/call efla / fla | result |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in fla_doc["rows"]:
        e, f = r.get("efla", {}), r.get("fla", {})

        def ms(t):
            if not t:
                return "—"
            return f"{t['median_ms']:.4f} ({t['p10_ms']:.4f} / {t['p90_ms']:.4f})"

        host = "—"
        if "efla_host_ms_per_call" in r:
            host = (f"{r['efla_host_ms_per_call']:.4f} / "
                    f"{num(r.get('fla_host_ms_per_call'), '.4f')}")
        out.append(f"| {r['shape']} | {','.join(map(str, r['dims']))} | {r.get('efla_path', '—')} | "
                   f"{ms(e)} | {r.get('fla_path', '—')} | {ms(f)} | {num(r.get('ratio'), '.2f')} | "
                   f"{num(r.get('err_o'), '.1e')} | {num(r.get('err_state'), '.1e')} | {host} | "
                   f"{r['status']} |")
    return out


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--bench", action="append", default=[], help="efla bench --json output")
    p.add_argument("--fla", help="fla_compare.py --json output")
    args = p.parse_args(argv)
    if not args.bench and not args.fla:
        p.error("give --bench and/or --fla")
    fla_doc = None
    if args.fla:
        with open(args.fla) as f:
            fla_doc = json.load(f)
    fla_rows = {r["shape"]: r for r in fla_doc["rows"]} if fla_doc else {}
    bench_rows = [r for path in args.bench for r in read_bench(path)]
    lines = []
    if bench_rows:
        lines += ["efla bench:", ""] + bench_table(bench_rows, fla_rows)
    if fla_doc:
        env = fla_doc["environment"]
        lines += ["", f"fla_compare ({env.get('fla', 'no fla')}; flush {env['flush']}; "
                      f"median of {env['iters']}):", ""] + fla_table(fla_doc)
    print("\n".join(lines).lstrip("\n"))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
