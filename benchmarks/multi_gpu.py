"""One batch judged on 1 GPU and on 2 GPUs: throughput ratio, and whether the verdicts agree.

    python benchmarks/multi_gpu.py [problem ...] [--one 0] [--two 0,1] [--copies 2] [--ray] [--out notes/multi-gpu]

The batch is every seed of four problems (softmax, layernorm, rmsnorm, matmul_fp16 unless named),
each seed judged `--copies` times as separate candidate files, so every problem's batch splits
evenly over two GPUs. Everything is built first (builds are not what this measures), each
problem's eager baseline is timed once, then the same pool code the search uses (EvalPool, one
judging thread per device) judges the batch problem by problem on the `--one` device list, then
on the `--two` list. `--ray` adds a third pass on a local Ray instance over every GPU (the
RayEvalPool the search uses with --address), to check the Ray path on CUDA.

Throughput is candidates judged per second of wall time. Verdicts agree when every candidate
has the same status and reason codes in both runs (times differ, as any two runs do). Writes
<out>.json (every verdict) and <out>.md (the table); exits 1 if the verdicts disagree.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_PROBLEMS = ["softmax", "layernorm", "rmsnorm", "matmul_fp16"]


def devices(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def judge_batch(pool, problems, batch, baselines) -> tuple[float, dict[str, dict]]:
    """Judge every problem's candidates with `pool`; wall seconds and one record per candidate."""
    records: dict[str, dict] = {}
    t0 = time.perf_counter()
    for p in problems:
        pool.eval_kwargs.update(baseline=baselines[p.name])
        out = pool.evaluate_many(p, batch[p.name])
        for path, v in out.items():
            records[f"{p.name}/{Path(path).name}"] = {
                "status": v.status, "codes": sorted(c for c in v.codes if c != "trivial_check_tightened"),
                "ms": v.ms, "device": (v.timing or {}).get("device"), "device_index": getattr(v, "device_index", None),
                "node": getattr(v, "node", None), "seconds": v.seconds}
    return time.perf_counter() - t0, records


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("problems", nargs="*", default=DEFAULT_PROBLEMS)
    ap.add_argument("--one", type=devices, default=[0], help="device list of the first run")
    ap.add_argument("--two", type=devices, default=[0, 1], help="device list of the second run")
    ap.add_argument("--copies", type=int, default=2, help="times each seed is judged")
    ap.add_argument("--target", default="cuda", help="cpu: a smoke test, the device lists only count judges")
    ap.add_argument("--ray", action="store_true", help="also judge the batch with RayEvalPool on a local Ray")
    ap.add_argument("--out", default=str(ROOT / "notes" / "multi-gpu"), help="writes <out>.json and <out>.md")
    a = ap.parse_args()
    import torch

    from workbench.build import target_arch
    from workbench.judge import time_reference
    from workbench.pool import EvalPool, prebuild_all
    from workbench.problem import load_problem

    cuda = a.target == "cuda"
    count = torch.cuda.device_count() if cuda else max(a.one + a.two) + 1
    if max(a.one + a.two) >= count:
        print(f"error: needs GPUs {sorted(set(a.one + a.two))}, this machine has {count}", file=sys.stderr)
        return 2
    if cuda:
        target_arch()
    names = sorted({torch.cuda.get_device_name(i) if cuda else "cpu" for i in set(a.one + a.two)})
    problems = [load_problem(n, target=a.target) for n in (a.problems or DEFAULT_PROBLEMS)]  # this target's seeds
    work = Path(tempfile.mkdtemp(prefix="multi-gpu-"))
    batch: dict[str, list[Path]] = {}
    for p in problems:  # <work>/<problem>/<seed>-c<k>.py: same source, a separate evaluation each
        (work / p.name).mkdir()
        batch[p.name] = []
        for seed in p.seeds():
            for k in range(a.copies):
                dst = work / p.name / f"{seed.stem}-c{k}.py"
                shutil.copy(seed, dst)
                batch[p.name].append(dst)
    paths = [x for p in problems for x in batch[p.name]]
    t = time.perf_counter()
    prebuild_all(paths)
    print(f"prebuilt {len(paths)} candidates in {time.perf_counter() - t:.0f} s on {names}", flush=True)
    baselines = {p.name: time_reference(p, target=a.target, compile=False) for p in problems}

    runs = {}
    configs = [(f"{len(a.one)} GPU ({','.join(map(str, a.one))})", lambda: EvalPool(a.target, devices=a.one)),
               (f"{len(a.two)} GPU ({','.join(map(str, a.two))})", lambda: EvalPool(a.target, devices=a.two))]
    if a.ray:
        from workbench.ray_backend import RayEvalPool

        configs.append(("ray", lambda: RayEvalPool(None, a.target)))
    for label, make in configs:
        pool = make()
        if label == "ray":
            label = f"ray, {len(pool.slots)} judge(s)"
        first = problems[0]
        pool.eval_kwargs.update(baseline=baselines[first.name])
        pool.evaluate_many(first, batch[first.name][:len(getattr(pool, "slots", pool.devices))])  # warm up
        wall, records = judge_batch(pool, problems, batch, baselines)
        getattr(pool, "close", lambda: None)()
        runs[label] = {"wall_s": wall, "throughput": len(records) / wall, "records": records}
        print(f"{label}: {len(records)} judged in {wall:.1f} s ({len(records) / wall:.3f} /s)", flush=True)

    labels = list(runs)
    base = runs[labels[0]]
    lines = [f"Batch: {len(paths)} candidates ({a.copies} copies of every seed of {', '.join(p.name for p in problems)}), "
             f"prebuilt; GPUs: {', '.join(names)}.", "",
             "| run | candidates | wall s | per s | x first run | verdicts as first run | median ms spread |",
             "|---|---|---|---|---|---|---|"]
    agree_all = True
    for label in labels:
        r = runs[label]
        same = all((r["records"][k]["status"], r["records"][k]["codes"]) == (base["records"][k]["status"], base["records"][k]["codes"])
                   for k in base["records"]) and set(r["records"]) == set(base["records"])
        agree_all &= same
        # how far one run's times sit from the first run's, seed by seed (same kernel, other GPU or run)
        ratios = [r["records"][k]["ms"] / base["records"][k]["ms"] for k in base["records"]
                  if r["records"].get(k, {}).get("ms") and base["records"][k]["ms"]]
        spread = f"{statistics.median(ratios):.3f}x" if ratios else "-"
        r.update(ratio=r["throughput"] / base["throughput"], same_verdicts=same)
        lines.append(f"| {label} | {len(r['records'])} | {r['wall_s']:.1f} | {r['throughput']:.3f} | "
                     f"{r['ratio']:.2f} | {'yes' if same else 'NO'} | {spread} |")
    table = "\n".join(lines)
    print(table)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps({"gpus": names, "problems": [p.name for p in problems],
                                                    "copies": a.copies, "baselines": baselines, "runs": runs},
                                                   indent=1, default=str))
    out.with_suffix(".md").write_text(table + "\n")
    print(f"wrote {out.with_suffix('.json')} and {out.with_suffix('.md')}")
    shutil.rmtree(work, ignore_errors=True)
    return 0 if agree_all else 1


if __name__ == "__main__":
    sys.exit(main())
