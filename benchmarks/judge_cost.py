"""Where one full evaluation's seconds go, per problem (issue: the judge at search speed).

    python benchmarks/judge_cost.py [problem ...] [--repeat 2] [--json notes/judge-cost.json]

For each problem, its best seed is built first (so every evaluation sees a cached build), then
judged `--repeat` times with the full protocol (every trial, the audit, the timing); the table
gives the median wall seconds of one evaluation and its phases. The judge records its own
phases (`Verdict.phases`); for a judge that does not, the phases are measured from outside by
wrapping its steps (worker start, load, reference, trials, output transfer, timing).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# The best seed of each problem (README's seed table).
BEST = {"softmax": "cluster_registers", "layernorm": "pipelined_resident", "rmsnorm": "regs_per_position",
        "gelu": "vec4_sigmoid", "depthwise_conv2d": "smem_tile", "conv2d": "tf32_mma_implicit",
        "conv2d_relu_maxpool": "tf32_mma_relu_pool", "matmul_fp32": "bf16x3_wgmma", "matmul_fp16": "wgmma_tma",
        "attention_fp16": "mma_flash2"}


def _wrap_old_judge(marks: dict[str, float]):
    """Time the steps of a judge without Verdict.phases, by wrapping them (returns an undo)."""
    from workbench import judge

    undo = []

    def wrap(owner, name, label_of):
        original = getattr(owner, name)

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                label = label_of(args, kwargs)
                if label:
                    marks[label] += time.perf_counter() - t0

        setattr(owner, name, timed)
        undo.append(lambda: setattr(owner, name, original))

    def op_label(args, kwargs):
        req = args[1] if len(args) > 1 else kwargs.get("req", {})
        return {"load": "worker load+build", "trial": "worker trials (inputs, call, outputs to files)",
                "time": "worker timing"}.get(req.get("op"), "worker other")

    wrap(judge.WorkerProcess, "request", op_label)
    # a read without a nonce is the wait for the worker's start-up (inside the first request)
    wrap(judge.WorkerProcess, "_read", lambda a, k: None if (len(a) > 2 or k.get("nonce")) else "worker start (wait)")
    wrap(judge.Reference, "__init__", lambda a, k: "reference model+template+calibration")
    wrap(judge.Reference, "judge", lambda a, k: "reference outputs+compare")
    wrap(judge, "_load_output", lambda a, k: "outputs to judge")
    wrap(judge, "take_worker", lambda a, k: "take worker")
    return lambda: [u() for u in undo]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("problems", nargs="*")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--json", default=None)
    ap.add_argument("--label", default="", help="a name for this measurement (before/after)")
    a = ap.parse_args()
    import torch

    from workbench import judge
    from workbench.pool import prebuild_all
    from workbench.problem import load_problem

    target = "cuda" if torch.cuda.is_available() else "cpu"
    names = a.problems or list(BEST)
    problems = {n: load_problem(n) for n in names}
    seeds = {n: problems[n].seeds_dir / f"{BEST[n]}.py" for n in names}
    t0 = time.perf_counter()
    prebuild_all(list(seeds.values()))
    print(f"prebuilt {len(seeds)} seeds in {time.perf_counter() - t0:.1f} s", flush=True)
    rows = []
    for n in names:
        runs = []
        for _ in range(a.repeat):
            marks: dict[str, float] = defaultdict(float)
            undo = None if "phases" in getattr(judge.Verdict, "__dataclass_fields__", {}) else _wrap_old_judge(marks)
            t = time.perf_counter()
            try:
                v = judge.evaluate(problems[n], seeds[n], target=target)
            finally:
                if undo:
                    undo()
            wall = time.perf_counter() - t
            phases = dict(getattr(v, "phases", None) or marks)
            runs.append({"wall_s": wall, "status": v.status, "ms": v.ms, "phases": phases,
                         "stage": getattr(v, "stage", "full"), "reasons": v.reasons[:3]})
            print(f"  {n:22s} {v.status:9s} {wall:6.2f} s  " +
                  ", ".join(f"{k} {s:.2f}" for k, s in sorted(phases.items(), key=lambda kv: -kv[1])[:6]), flush=True)
        rows.append({"problem": n, "seed": BEST[n], "median_wall_s": statistics.median(r["wall_s"] for r in runs),
                     "runs": runs})
    device = torch.cuda.get_device_name() if target == "cuda" else "cpu"
    med = statistics.median(r["median_wall_s"] for r in rows)
    print(f"\njudge cost per full evaluation on {device} ({a.label or 'this checkout'}), cached build:")
    print(f"{'problem':22s} {'seed':20s} {'seconds':>8s}  top phases")
    for r in rows:
        ph = r["runs"][-1]["phases"]
        top = ", ".join(f"{k} {s:.2f}" for k, s in sorted(ph.items(), key=lambda kv: -kv[1])[:3])
        print(f"{r['problem']:22s} {r['seed']:20s} {r['median_wall_s']:8.2f}  {top}")
    print(f"{'median':43s} {med:8.2f}")
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps({"device": device, "label": a.label, "median_s": med, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
