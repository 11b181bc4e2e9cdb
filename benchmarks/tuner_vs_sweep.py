"""The tuner's best within `make run`'s candidate budget against a sweep of the same space.

    python benchmarks/tuner_vs_sweep.py [PROBLEM ...] [--sweep-cap 48] [--json notes/tuner-vs-sweep.json]

For each problem (default softmax, layernorm, matmul_fp16):
1. the tuner searches as `make run` does (5 rounds x 4 ideas x 2 implementations after the seeds,
   the search's defaults; no torch.compile baseline, which does not change any kernel's time);
2. the sweep judges every point of the joint space (seed variant x its marked tunables), or, when the
   space has more than --sweep-cap points, the tuner's best point plus each variant's share of the
   cap (small variants whole, a seeded random sample of the large ones), through the judge's pool
   (parallel builds, every GPU of the machine) against the search's baseline;
3. one row: points in the space, points swept, candidates the tuner used, the tuner's best as the
   search measured it, the sweep's time for that same point and the sweep's best, and their ratio
   (sweep time of the tuner's point / sweep best: one protocol, one process, so noise between runs
   does not enter it). When the sweep covered the whole space, the tuner is also replayed offline
   against the sweep's table with --replay-seeds other seeds (no GPU time), to show the spread.
Prints the table, writes the raw rows to --json.

Every phase resumes: the search has a fixed run id (<problem>-seed<k> under outputs/tuner_vs_sweep/;
a killed search continues from its log) and each swept point's verdict is appended to
outputs/tuner_vs_sweep/<problem>-sweep.jsonl as it is judged. With --time-limit S the sweep stops
judging after S seconds and the script exits 3: run the same command again to continue
(a search killed from outside also continues on the next run). Delete outputs/tuner_vs_sweep/ to
start over.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PROBLEMS = ["softmax", "layernorm", "matmul_fp16"]


def point_text(p: Any) -> str:
    return f"{p.variant}(" + ", ".join(f"{n}={v}" for n, v in p.values) + ")"


def run_tuner(problem_name: str, target: str, runs_dir: Path, seed: int, trials: int, samples: int) -> dict[str, Any]:
    """A `make run` search on the tuner; the verdicts go to the tuner as they are recorded."""
    from workbench.search import Search, SearchParams

    params = SearchParams(problem=problem_name, models=["tuner"], target=target, compile_baseline=False, tuner_seed=seed,
                          trials=trials, samples=samples)
    budget = params.rounds * params.ideas * params.impls
    s = Search(params, run_id=f"{Path(problem_name).name}-seed{seed}", runs_dir=runs_dir)
    for v in s.store.events("verdict"):  # a resumed search: what it already judged, first
        s.proposers["tuner"].observe(v["candidate"], s.store.candidate_path(v["candidate"]).read_text(), v)
    tuner = s.proposers["tuner"]

    def feed(ev: dict[str, Any]) -> None:  # observe() is idempotent: harmless if the search calls it too
        if ev["type"] == "verdict":
            tuner.observe(ev["candidate"], s.store.candidate_path(ev["candidate"]).read_text(), ev)
        if ev["type"] in ("verdict", "round"):
            what = f"{ev['candidate']} {ev['status']} {ev.get('ms') or '-'}" if ev["type"] == "verdict" else \
                f"round {ev['round']} done, best {ev.get('best_ms')}"
            print(f"  [tuner {problem_name}] {what}", flush=True)

    s.on_event = feed
    t0 = time.perf_counter()
    store = s.run()
    verdicts = {e["candidate"]: e for e in store.events("verdict")}
    cands = {e["candidate"]: e for e in store.events("candidate")}
    correct = [v for v in verdicts.values() if v["status"] == "correct" and v.get("ms")]
    best = min(correct, key=lambda v: v["ms"]) if correct else None
    per_round = {r: sum(c["round"] == r and not c.get("failed") for c in cands.values()) for r in range(params.rounds + 1)}
    return {"run_dir": str(store.dir), "seconds": time.perf_counter() - t0, "budget": budget,
            "candidates": len(verdicts), "per_round": per_round, "constraints": [c.__dict__ for c in tuner.constraints],
            "best": best and {"candidate": best["candidate"], "ms": best["ms"],
                              "source": store.candidate_path(best["candidate"]).read_text()},
            "baseline": store.get("baseline") or {}, "facts": (store.get("facts") or {}).get("facts", {})}


def sweep_points(space: Any, cap: int, must: Any, rng: random.Random) -> list[Any]:
    """The whole space, or at most `cap` points: `must` (the tuner's best), then each variant's share of
    the rest, smallest variants first and whole when they fit, a seeded random sample of the others."""
    if not cap or space.size <= cap:
        return list(space.points())
    chosen = [must] if must else []
    variants = sorted(space.variants.values(), key=lambda v: v.size)
    for i, v in enumerate(variants):
        share = (cap - len(chosen)) // (len(variants) - i)
        pool = [p for p in space.points(v.name) if p != must]
        chosen += pool if len(pool) <= share else rng.sample(pool, share)
    return chosen


class OutOfTime(Exception):
    pass


def sweep(problem: Any, space: Any, points: list[Any], target: str, base: dict[str, Any], facts: dict[str, Any],
          trials: int, samples: int, cache: Path, deadline: float | None, screen: bool,
          must: Any = None) -> list[dict[str, Any]]:
    """Every point judged once (rows already in `cache` are reused), through the judge's pool: built
    in parallel, judged on every GPU of the machine, each verdict appended to `cache` as it comes.
    With `screen`, a point whose short timing after its first trial is 25% slower than the best so far
    stops there (the search's screening stage): it cannot be the sweep's best, and the full protocol
    is ~1 s of the ~2.7 s a point costs. `must` (the tuner's best) is judged first and in full: the
    ratio compares its full time."""
    from workbench.pool import EvalPool
    from workbench.problem import REPO_ROOT
    from workbench.proposers.tuner import source_hash

    protocol = {"trials": trials, "samples": samples, "target": target}
    done = {r["hash"]: r for r in _rows(cache) if r.get("protocol") == protocol}
    out_dir = REPO_ROOT / "outputs" / "sweeps" / problem.name
    out_dir.mkdir(parents=True, exist_ok=True)
    todo: dict[Path, Any] = {}
    for p in points:
        text = space.source(p)
        row = done.get(source_hash(text))
        if row is None or (p == must and row["status"] == "screened"):  # the tuner's point: in full
            path = out_dir / f"{p.variant}-{source_hash(text)}.py"
            path.write_text(text)
            todo[path] = p
    print(f"  [sweep {problem.name}] {len(points)} points, {len(points) - len(todo)} already judged", flush=True)
    lock = threading.Lock()
    stopped = lambda: deadline is not None and time.time() > deadline  # noqa: E731

    def record(path: Path, v: Any) -> None:
        if stopped() and v.status == "error":
            return  # not judged (stopped): left for the next run
        p = todo[path]
        row = {"hash": source_hash(space.source(p)), "protocol": protocol, "point": point_text(p), "variant": p.variant,
               "assign": p.assign, "status": v.status, "ms": v.ms, "stage": v.stage, "reasons": v.reasons[:2],
               "device_index": getattr(v, "device_index", None),
               "build_log": v.build_log[-4000:] if v.status == "build_error" else ""}
        with lock:  # one device thread at a time
            with open(cache, "a") as f:
                f.write(json.dumps(row, default=str) + "\n")
            done[row["hash"]] = row
        print(f"  [sweep {problem.name}] {len(done)}/{len(points)} {row['point']} {v.status} {v.ms or '-'}", flush=True)

    def threshold() -> float | None:
        with lock:
            full = [r["ms"] for r in done.values() if r["status"] == "correct" and r["ms"]]
        return 1.25 * min(full) if full else None

    first = [path for path, p in todo.items() if p == must]
    for batch, screened in ((first, False), ([path for path in todo if path not in first], screen)):
        if batch:
            pool = EvalPool(target, trials=trials, samples=samples, baseline=base, facts=facts)
            pool.screen = threshold if screened else None
            pool.evaluate_many(problem, batch, on_done=record, should_stop=stopped)
    missing = [p for p in points if source_hash(space.source(p)) not in done]
    if missing:
        raise OutOfTime(f"{problem.name}: {len(missing)} points left to sweep")
    return [done[source_hash(space.source(p))] for p in points]


def confirm(problem: Any, space: Any, table: dict[Any, dict[str, Any]], tuner_point: Any, k: int, target: str,
            tuned: dict[str, Any], trials: int, samples: int, cache: Path, deadline: float | None) -> dict[str, Any]:
    """The tuner's point and the k best bench points, judged in full side by side (the judge's protocol
    and clock): the bench finds the candidates, the judge's times give the ratio that counts."""
    ranked = sorted((p for p, r in table.items() if r["status"] == "correct" and r["ms"]), key=lambda p: table[p]["ms"])
    chosen = ([tuner_point] if tuner_point else []) + [p for p in ranked if p != tuner_point][:k]
    rows = sweep(problem, space, chosen, target, tuned["baseline"], tuned["facts"], trials, samples, cache, deadline,
                 screen=False, must=tuner_point)
    by_point = dict(zip(chosen, rows))
    ok = {p: r for p, r in by_point.items() if r["status"] == "correct" and r["ms"]}
    best = min(ok, key=lambda p: ok[p]["ms"]) if ok else None
    at_tuner = ok.get(tuner_point) if tuner_point else None
    return {"points": {point_text(p): {"judge_ms": r["ms"], "status": r["status"], "bench_ms": table[p]["ms"]}
                       for p, r in by_point.items()},
            "best_point": best and point_text(best), "best_ms": best and ok[best]["ms"],
            "tuner_ms": at_tuner and at_tuner["ms"],
            "ratio": (at_tuner["ms"] / ok[best]["ms"]) if at_tuner and best else None}


def bench_sweep(problem: Any, space: Any, points: list[Any], target: str, cache: Path, deadline: float | None,
                chunk: int = 64) -> list[dict[str, Any]]:
    """Every point timed by benchmarks/bench_points.py (one process, ~0.1 s a point after its build):
    built in chunks of `chunk` in parallel, then timed, each row appended to `cache` (a killed or timed-out
    run resumes). Points it could not time (a sticky CUDA fault ends its process's use) are left for
    the next run, which benches them in a fresh process."""
    from benchmarks.bench_points import bench
    from workbench.pool import prebuild_all
    from workbench.problem import REPO_ROOT
    from workbench.proposers.tuner import source_hash

    protocol = {"bench": True, "target": target}
    done = {r["hash"]: r for r in _rows(cache) if r.get("protocol") == protocol}
    out_dir = REPO_ROOT / "outputs" / "sweeps" / problem.name
    out_dir.mkdir(parents=True, exist_ok=True)
    todo = [p for p in points if source_hash(space.source(p)) not in done]
    print(f"  [bench {problem.name}] {len(points)} points, {len(points) - len(todo)} already timed", flush=True)
    for start in range(0, len(todo), chunk):
        if deadline is not None and time.time() > deadline:
            break
        paths = {}
        for p in todo[start:start + chunk]:
            text = space.source(p)
            path = out_dir / f"{p.variant}-{source_hash(text)}.py"
            path.write_text(text)
            paths[path] = p
        t = time.perf_counter()
        prebuild_all(list(paths))
        built = time.perf_counter() - t
        rows = bench(problem, list(paths), target)
        with open(cache, "a") as f:
            for path, row in rows.items():
                p = paths[path]
                row = {"hash": source_hash(space.source(p)), "protocol": protocol, "point": point_text(p),
                       "variant": p.variant, "assign": p.assign, **row}
                f.write(json.dumps(row, default=str) + "\n")
                done[row["hash"]] = row
        print(f"  [bench {problem.name}] {len(done)}/{len(points)} (chunk built in {built:.0f} s, timed in "
              f"{time.perf_counter() - t - built:.0f} s)", flush=True)
    missing = [p for p in points if source_hash(space.source(p)) not in done]
    if missing:
        raise OutOfTime(f"{problem.name}: {len(missing)} points left to bench")
    return [done[source_hash(space.source(p))] for p in points]


def _rows(cache: Path) -> list[dict[str, Any]]:
    rows = []
    if cache.is_file():
        for line in cache.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a torn last line of a killed run: that point is done again
    return rows


def replay(problem: Any, space: Any, table: dict[Any, dict[str, Any]], budget: int, seeds: int,
           sampler: str = "tpe") -> list[float]:
    """The tuner against the sweep's measured table (whole space swept): its best ms per tuner seed."""
    from workbench.proposers.proposal import Context
    from workbench.proposers.tuner import Tuner, source_hash

    found = []
    for seed in range(seeds):
        tuner, tried, judged = Tuner(seed, budget=budget, sampler=sampler), set(), []
        for path in problem.seeds():  # round 0: the seeds as written
            p = space.locate(path.read_text())
            tried.add(source_hash(path.read_text()))
            if p in table:
                tuner.observe(f"r0-{path.stem}", path.read_text(), table[p])
                if table[p]["status"] == "correct" and table[p]["ms"]:
                    judged.append(table[p]["ms"])
        for r in range(1, 6):
            ctx = Context(problem, {}, r, [], [], set(tried))
            for j, idea in enumerate(tuner.ideas(ctx, 4)):
                for m in range(2):
                    impl = tuner.implement(ctx, idea, None, m)
                    if impl.source is None:
                        continue
                    ctx.tried.add(source_hash(impl.source))
                    rec = table[space.locate(impl.source)]
                    tuner.observe(f"r{r}-i{j}-m{m}", impl.source, rec)
                    if rec["status"] == "correct" and rec["ms"]:
                        judged.append(rec["ms"])
            tried |= ctx.tried
        found.append(min(judged) if judged else float("nan"))
    return found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("problems", nargs="*", default=PROBLEMS)
    ap.add_argument("--sweep-cap", type=int, default=48, help="most points swept per problem (0: the whole space)")
    ap.add_argument("--trials", type=int, default=4, help="judge trials per candidate, search and sweep (make run: 4)")
    ap.add_argument("--samples", type=int, default=30, help="timed samples per trial (make run: 30)")
    ap.add_argument("--time-limit", type=float, default=0, help="seconds; stop the sweep between points after it (exit 3)")
    ap.add_argument("--screen", action=argparse.BooleanOptionalAction, default=True,
                    help="stop a swept point after its first trial when it is 25%% slower than the best so far")
    ap.add_argument("--bench", action=argparse.BooleanOptionalAction, default=True,
                    help="time the swept points with benchmarks/bench_points.py (~0.1 s a point), then re-judge "
                         "the best --confirm of them and the tuner's point with the judge; --no-bench judges every point")
    ap.add_argument("--confirm", type=int, default=3, help="best bench points re-judged beside the tuner's point")
    ap.add_argument("--replay-seeds", type=int, default=10)
    ap.add_argument("--tuner-seed", type=int, default=0)
    ap.add_argument("--target", default=None)
    ap.add_argument("--json", default=str(ROOT / "notes" / "tuner-vs-sweep.json"))
    a = ap.parse_args()
    import torch

    from workbench.problem import REPO_ROOT, load_problem
    from workbench.proposers.tuner import Space

    target = a.target or ("cuda" if torch.cuda.is_available() else "cpu")
    runs_dir = REPO_ROOT / "outputs" / "tuner_vs_sweep"
    deadline = time.time() + a.time_limit if a.time_limit else None
    out = Path(a.json)
    # One JSON for all problems: a run of one problem replaces its row and keeps the others'.
    results = [r for r in (json.loads(out.read_text()) if out.is_file() else []) if r["problem"] not in a.problems]
    for name in a.problems:
        problem = load_problem(name, target=target)  # the space of this target's seeds, as the search sees it
        space = Space(problem.seeds())
        sizes = {v.name: v.size for v in space.variants.values()}
        print(f"{name}: {space.size} points ({', '.join(f'{k} {n}' for k, n in sizes.items())})", flush=True)
        tuned = run_tuner(name, target, runs_dir, a.tuner_seed, a.trials, a.samples)
        tuner_point = space.locate(tuned["best"]["source"]) if tuned["best"] else None
        points = sweep_points(space, a.sweep_cap, tuner_point, random.Random(f"sweep-{name}"))
        t = time.perf_counter()
        confirmed: dict[str, Any] = {}
        try:
            if a.bench:
                rows = bench_sweep(problem, space, points, target, runs_dir / f"{problem.name}-bench.jsonl", deadline)
                confirmed = confirm(problem, space, dict(zip(points, rows)), tuner_point, a.confirm, target, tuned,
                                    a.trials, a.samples, runs_dir / f"{problem.name}-confirm.jsonl", deadline)
            else:
                rows = sweep(problem, space, points, target, tuned["baseline"], tuned["facts"], a.trials, a.samples,
                             runs_dir / f"{problem.name}-sweep.jsonl", deadline, a.screen, tuner_point)
        except OutOfTime as e:
            print(f"time limit reached ({e}); run the same command again to continue", flush=True)
            sys.exit(3)
        sweep_s = time.perf_counter() - t
        by_point = dict(zip(points, rows))
        ok = [r for r in rows if r["status"] == "correct" and r["ms"]]
        best_row = min(ok, key=lambda r: r["ms"]) if ok else None
        at_tuner = by_point.get(tuner_point) if tuner_point else None
        ratio = (at_tuner["ms"] / best_row["ms"]) if at_tuner and at_tuner.get("ms") and best_row else None
        result = {"problem": name, "device": tuned["baseline"].get("device"), "space_points": space.size,
                  "variant_points": sizes, "swept": len(points), "exhaustive": len(points) == space.size,
                  "sweep_seconds": sweep_s, "tuner_seconds": tuned["seconds"], "tuner_candidates": tuned["candidates"],
                  "tuner_per_round": tuned["per_round"], "tuner_constraints": tuned["constraints"],
                  "tuner_run": tuned["run_dir"], "tuner_best_ms": tuned["best"] and tuned["best"]["ms"],
                  "tuner_point": tuner_point and point_text(tuner_point),
                  "sweep_ms_of_tuner_point": at_tuner and at_tuner["ms"], "sweep_best_ms": best_row and best_row["ms"],
                  "sweep_best_point": best_row and best_row["point"], "ratio": ratio,
                  "sweep_screened": sum(r["status"] == "screened" for r in rows),
                  "sweep_failures": sum(r["status"] not in ("correct", "screened") for r in rows),
                  "method": "bench (benchmarks/bench_points.py), best points re-judged" if a.bench else "judge",
                  "judge_confirm": confirmed, "rows": rows}
        if result["exhaustive"] and best_row:
            found = replay(problem, space, by_point, tuned["budget"], a.replay_seeds)
            result["replay_best_ms"] = found
            result["replay_ratios"] = [f / best_row["ms"] for f in found]
            rand = replay(problem, space, by_point, tuned["budget"], a.replay_seeds, sampler="random")
            result["replay_random_ratios"] = [f / best_row["ms"] for f in rand]  # the baseline TPE must beat
        results.append(result)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1, default=str))  # after every problem: nothing lost

    print(f"\ntuner vs sweep on {results[0]['device'] if results else '-'} (make run's budget: 5 x 4 x 2 after the seeds)")
    head = f"{'problem':12s} {'points':>6s} {'swept':>6s} {'cands':>5s} {'tuner ms':>9s} {'sweep@tuner':>11s} " \
           f"{'sweep best':>10s} {'ratio':>6s}  replay worst/median: tpe | random"
    print(head)
    for r in results:
        f = lambda x: "-" if x is None else f"{x:.4f}"  # noqa: E731
        rep, rnd = sorted(r.get("replay_ratios") or []), sorted(r.get("replay_random_ratios") or [])
        rep_text = f"{rep[-1]:.3f}/{rep[len(rep) // 2]:.3f} | {rnd[-1]:.3f}/{rnd[len(rnd) // 2]:.3f}" if rep and rnd \
            else "(sweep capped)"
        print(f"{Path(r['problem']).name:12s} {r['space_points']:6d} {r['swept']:6d} {r['tuner_candidates']:5d} "
              f"{f(r['tuner_best_ms']):>9s} {f(r['sweep_ms_of_tuner_point']):>11s} {f(r['sweep_best_ms']):>10s} "
              f"{'-' if r['ratio'] is None else format(r['ratio'], '.3f'):>6s}  {rep_text}")
        print(f"{'':12s} tuner: {r['tuner_point']}   sweep best: {r['sweep_best_point']}")
        if (jc := r.get("judge_confirm")) and jc.get("ratio") is not None:
            print(f"{'':12s} re-judged: tuner {jc['tuner_ms']:.4f} ms, best of {len(jc['points'])} "
                  f"{jc['best_ms']:.4f} ms ({jc['best_point']}), ratio {jc['ratio']:.3f}")
    print(f"raw rows: {a.json}")
    if not results or any(r["tuner_best_ms"] is None for r in results if r["problem"] in a.problems):
        sys.exit(1)


if __name__ == "__main__":
    main()
