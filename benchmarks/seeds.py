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


def _header(seed: str, status: str) -> str:
    return (f"{'problem':22s} {seed:18s} {status:10s} {'eager ms':>9s} {'compile':>9s} {'kernel':>9s} "
            f"{'x eager':>8s} {'x comp':>7s} {'roof%':>6s}")


def _f(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _row(r: dict, status: str) -> str:
    roof = _f(100 * r["roofline"] if r["roofline"] else None, 0)
    return (f"{r['problem']:22s} {r['seed'][:18]:18s} {status:10s} {_f(r['eager_ms']):>9s} {_f(r['compile_ms']):>9s} "
            f"{_f(r['kernel_ms']):>9s} {_f(r['vs_eager'], 2):>8s} {_f(r['vs_compile'], 2):>7s} {roof:>6s}")


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
    from workbench.pool import prebuild_all
    from workbench.problem import list_problems, load_problem

    target = a.target or ("cuda" if torch.cuda.is_available() else "cpu")
    names = a.problems or list_problems()
    problems = [load_problem(n, target=target) for n in names]  # its sizes and seeds for the target
    if target == "cuda":
        from workbench.build import target_arch

        target_arch()

    def chosen(p):
        return [s for s in p.seeds() if a.only is None or s.stem in a.only]

    problems = [p for p in problems if chosen(p)]
    seeds = [s for p in problems for s in chosen(p)]
    t = time.perf_counter()
    prebuild_all(seeds)  # every seed at once, while nothing is timed
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
    device = rows[0]["device"] if rows else "?"
    print(f"\nseed kernels on {device} (copy {_f(facts.get('copy_gbps'), 0)} GB/s)")
    print(_header("seed", "verdict"))
    for r in rows:
        print(_row(r, r["status"]))
    best: dict[str, dict] = {}
    for r in rows:  # the fastest correct seed of each problem
        if r["status"] == "correct" and r["kernel_ms"] and (r["problem"] not in best or r["kernel_ms"] < best[r["problem"]]["kernel_ms"]):
            best[r["problem"]] = r
    print(f"\nbest kernel per problem on {device}")
    print(_header("best seed", ""))
    for p in problems:
        print(_row(best[p.name], "") if p.name in best else f"{p.name:22s} (no correct seed)")
    if a.json:
        Path(a.json).write_text(json.dumps({"facts": facts, "rows": rows}, indent=1, default=str))


if __name__ == "__main__":
    main()
