"""The seed table: every seed kernel judged and timed against eager and torch.compile.

    python benchmarks/seeds.py [problem ...] [--only SEED ...] [--no-compile] [--json out.json]

One row per seed: problem, eager ms, compile ms, kernel ms, speedups, percent of the
roofline (bytes at the measured copy bandwidth, flops at the measured matmul rate), verdict.
Baselines and kernels are measured in the same run, on the same device, by the same protocol.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("problems", nargs="*")
    ap.add_argument("--no-compile", dest="compile", action="store_false")
    ap.add_argument("--json", default=None)
    ap.add_argument("--target", default=None)
    ap.add_argument("--only", nargs="*", default=None, help="seed file stems to run (default: every seed)")
    a = ap.parse_args()
    import torch

    from workbench.judge import evaluate, measure_facts, time_reference
    from workbench.pool import prebuild
    from workbench.problem import list_problems, load_problem
    from concurrent.futures import ThreadPoolExecutor

    target = a.target or ("cuda" if torch.cuda.is_available() else "cpu")
    names = a.problems or list_problems()
    problems = [load_problem(n) for n in names]
    if target == "cuda":
        from workbench.build import target_arch

        target_arch()
    def chosen(p):
        return [s for s in p.seeds() if a.only is None or s.stem in a.only]

    problems = [p for p in problems if chosen(p)]
    seeds = [s for p in problems for s in chosen(p)]
    t = time.perf_counter()
    with ThreadPoolExecutor(14) as ex:  # build every seed at once while nothing is timed
        list(ex.map(lambda s: prebuild(s, 600), seeds))
    print(f"prebuilt {len(seeds)} seeds in {time.perf_counter() - t:.0f} s", flush=True)
    facts = measure_facts(target)
    print("facts", json.dumps(facts), flush=True)
    rows = []
    for p in problems:
        base = time_reference(p, target=target, compile=a.compile)
        print(p.name, "baseline", {k: v for k, v in base.items() if k.endswith(("_ms", "_error"))}, flush=True)
        for s in chosen(p):
            v = evaluate(p, s, target=target, baseline=base, facts=facts)
            sp = v.speedups()
            row = {"problem": p.name, "seed": s.stem, "status": v.status, "eager_ms": base.get("eager_ms"),
                   "compile_ms": base.get("compile_ms"), "kernel_ms": v.ms, "vs_eager": sp["eager"],
                   "vs_compile": sp["compile"], "roofline": (v.timing or {}).get("roofline_fraction"),
                   "reasons": v.reasons[:3], "device": (v.timing or {}).get("device") or base.get("device")}
            rows.append(row)
            print(json.dumps(row, default=str), flush=True)
    f = lambda x, d=3: "-" if x is None else f"{x:.{d}f}"  # noqa: E731
    print(f"\nseed kernels on {rows[0]['device'] if rows else '?'} (copy {f(facts.get('copy_gbps'), 0)} GB/s)")
    print(f"{'problem':22s} {'seed':18s} {'verdict':10s} {'eager ms':>9s} {'compile':>9s} {'kernel':>9s} {'x eager':>8s} {'x comp':>7s} {'roof%':>6s}")
    for r in rows:
        print(f"{r['problem']:22s} {r['seed'][:18]:18s} {r['status']:10s} {f(r['eager_ms'])!s:>9s} {f(r['compile_ms'])!s:>9s} "
              f"{f(r['kernel_ms'])!s:>9s} {f(r['vs_eager'], 2):>8s} {f(r['vs_compile'], 2):>7s} "
              f"{f(100 * r['roofline'] if r['roofline'] else None, 0):>6s}")
    best: dict[str, dict] = {}
    for r in rows:  # the fastest correct seed of each problem
        if r["status"] == "correct" and r["kernel_ms"] and (r["problem"] not in best or r["kernel_ms"] < best[r["problem"]]["kernel_ms"]):
            best[r["problem"]] = r
    print(f"\nbest kernel per problem on {rows[0]['device'] if rows else '?'}")
    print(f"{'problem':22s} {'best seed':18s} {'eager ms':>9s} {'compile':>9s} {'kernel':>9s} {'x eager':>8s} {'x comp':>7s} {'roof%':>6s}")
    for p in problems:
        r = best.get(p.name)
        if r is None:
            print(f"{p.name:22s} {'(no correct seed)':18s}")
            continue
        print(f"{r['problem']:22s} {r['seed'][:18]:18s} {f(r['eager_ms'])!s:>9s} {f(r['compile_ms'])!s:>9s} "
              f"{f(r['kernel_ms'])!s:>9s} {f(r['vs_eager'], 2):>8s} {f(r['vs_compile'], 2):>7s} "
              f"{f(100 * r['roofline'] if r['roofline'] else None, 0):>6s}")
    if a.json:
        Path(a.json).write_text(json.dumps({"facts": facts, "rows": rows}, indent=1, default=str))


if __name__ == "__main__":
    main()
