"""Sweep a seed's marked tunables on one problem: every combination judged and timed side by side.

    python benchmarks/sweep.py PROBLEM SEED [NAME=v1,v2 ...] [--json out.json]

Without NAME=... assignments every marked tunable is swept over all its listed values (the cross
product can be large: name the ones you want). Variants are written to outputs/sweeps/, built in
parallel, then judged one by one against one eager baseline. Prints one row per variant, fastest
first, with the device named.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("problem")
    ap.add_argument("seed", help="seed file stem in problems/<problem>/seeds/, or a path")
    ap.add_argument("assign", nargs="*", help="NAME=v1,v2 (default: every marked tunable, all values)")
    ap.add_argument("--json", default=None)
    ap.add_argument("--target", default=None)
    a = ap.parse_args()
    import torch

    from workbench.judge import evaluate, measure_facts, time_reference
    from workbench.pool import prebuild_all
    from workbench.problem import REPO_ROOT, load_problem
    from workbench.proposers.tuner import apply, source_hash, tunables

    target = a.target or ("cuda" if torch.cuda.is_available() else "cpu")
    if target == "cuda":
        from workbench.build import target_arch

        target_arch()
    problem = load_problem(a.problem)
    seed = Path(a.seed) if a.seed.endswith(".py") else problem.seeds_dir / f"{a.seed}.py"
    source = seed.read_text()
    marks = tunables(source)
    grid = {k: v.split(",") for k, v in (s.split("=", 1) for s in a.assign)} or {n: t.options for n, t in marks.items()}
    unknown = sorted(set(grid) - set(marks))
    if unknown:
        sys.exit(f"not marked as tunable in {seed.name}: {', '.join(unknown)} (marked: {', '.join(marks)})")
    out_dir = REPO_ROOT / "outputs" / "sweeps" / problem.name
    out_dir.mkdir(parents=True, exist_ok=True)
    variants = []
    for values in itertools.product(*grid.values()):
        assign = dict(zip(grid, values))
        text = apply(source, assign)
        path = out_dir / f"{seed.stem}-{source_hash(text)}.py"
        path.write_text(text)
        variants.append((assign, path))
    t = time.perf_counter()
    prebuild_all([path for _, path in variants])  # every variant at once, while nothing is timed
    print(f"built {len(variants)} variants of {seed.name} in {time.perf_counter() - t:.0f} s", flush=True)
    facts = measure_facts(target)
    base = time_reference(problem, target=target, compile=False)
    rows = []
    for assign, path in variants:
        v = evaluate(problem, path, target=target, baseline=base, facts=facts)
        rows.append({"assign": assign, "status": v.status, "ms": v.ms, "vs_eager": v.speedups()["eager"],
                     "roofline": (v.timing or {}).get("roofline_fraction"), "reasons": v.reasons[:2]})
        print(json.dumps(rows[-1], default=str), flush=True)
    rows.sort(key=lambda r: (r["ms"] is None, r["ms"] or 0))
    print(f"\n{problem.name} / {seed.stem} on {base.get('device')}: eager {base.get('eager_ms', 0):.3f} ms")
    for r in rows:
        ms = "-" if r["ms"] is None else f"{r['ms']:.3f}"
        roof = "-" if not r["roofline"] else f"{100 * r['roofline']:.0f}%"
        print(f"  {' '.join(f'{k}={v}' for k, v in r['assign'].items()):40s} {r['status']:10s} {ms:>8s} ms  {roof:>5s}")
    if a.json:
        Path(a.json).write_text(json.dumps({"facts": facts, "baseline": base, "rows": rows}, indent=1, default=str))


if __name__ == "__main__":
    main()
