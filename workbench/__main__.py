"""`python -m workbench eval | search | batch | report`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch


def default_target() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def fmt_ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def fmt_x(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}x"


def cmd_eval(a: argparse.Namespace) -> int:
    from workbench.judge import evaluate, measure_facts, time_reference
    from workbench.problem import load_problem

    problem = load_problem(a.problem)
    baseline = time_reference(problem, target=a.target, compile=a.compile) if a.timing else None
    facts = measure_facts(a.target) if a.timing and a.target == "cuda" else None
    v = evaluate(problem, a.candidate, target=a.target, trials=a.trials, timing=a.timing, baseline=baseline,
                 facts=facts, timeout_s=a.timeout, samples=a.samples)
    print(f"problem    {problem.name}  ({problem.path})")
    print(f"candidate  {a.candidate}")
    print(f"verdict    {v.status.upper()}")
    for r in v.reasons:
        print(f"  - {r[:400]}")
    for b in v.builds:
        if "seconds" in b:
            print(f"build      {b['name']}: {b['seconds']:.1f} s{' (cached)' if b['cached'] else ''}"
                  + "".join(f"; {k['kernel'][:40]}: {k['registers']} regs, {k['spill_stores']} B spilled" for k in b.get("resources", [])))
    if v.status == "build_error":
        print(v.build_log[-3000:])
    if v.timing:
        t = v.timing
        print(f"device     {t['device']}  ({t['method']}, {t['samples']} samples)")
        print(f"kernel     {fmt_ms(v.ms)} ms  (p10 {fmt_ms(t['events']['p10'])}, p90 {fmt_ms(t['events']['p90'])}, wall {fmt_ms(t['wall']['median'])})")
    if baseline:
        sp = v.speedups()
        print(f"eager      {fmt_ms(baseline.get('eager_ms'))} ms  -> speedup {fmt_x(sp['eager'])}")
        if a.compile:
            print(f"compile    {fmt_ms(baseline.get('compile_ms'))} ms  -> speedup {fmt_x(sp['compile'])}"
                  + (f"  ({baseline['compile_error'][:200]})" if baseline.get("compile_error") else ""))
    if v.timing and v.timing.get("roofline_fraction"):
        print(f"roofline   {v.timing['roofline_ms']:.4f} ms floor, kernel at {100 * v.timing['roofline_fraction']:.1f}%")
    out = Path(a.out) if a.out else Path("outputs") / "evals" / f"{problem.name}-{Path(a.candidate).stem}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(v.to_json(), indent=1, default=str))
    print(f"record     {out}")
    return 0 if v.correct else 1


def search_params(a: argparse.Namespace, problem: str) -> Any:
    from workbench.search import SearchParams

    return SearchParams(problem=problem, models=a.model, rounds=a.rounds, ideas=a.ideas, impls=a.impls, seeds=a.seeds,
                        repairs=a.repairs, target=a.target, base_url=a.base_url, max_candidates=a.max_candidates,
                        max_tokens=a.max_tokens, max_wall_s=a.max_wall, compile_baseline=a.compile,
                        trials=a.trials, samples=a.samples, timeout_s=a.timeout)


def cmd_search(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from workbench.problem import load_problem
    from workbench.search import Search

    params = search_params(a, a.problem)
    load_problem(params.problem)  # a bad path fails here, before the progress bar draws
    from workbench.problem import load_problem

    total = len(load_problem(params.problem).seeds()) + params.rounds * params.ideas * params.impls
    bar = tqdm(total=total, desc=f"search {params.problem}", unit="cand")

    def on_event(ev: dict[str, Any]) -> None:
        if ev["type"] == "verdict":
            bar.update(1)
            bar.set_postfix_str(f"{ev['candidate']} {ev['status']} {fmt_ms(ev.get('ms'))} ms")
        elif ev["type"] == "round":
            tqdm.write(f"round {ev['round']}: best {ev['best']} {fmt_ms(ev['best_ms'])} ms, "
                       f"{fmt_x(ev['best_speedup_eager'])} eager, {fmt_x(ev['best_speedup_compile'])} compile")
        elif ev["type"] in ("baseline", "facts", "stopped"):
            tqdm.write(f"{ev['type']}: " + json.dumps({k: v for k, v in ev.items() if k not in ("id", "type", "time", "eager", "compile")}, default=str)[:300])

    store = Search(params, run_id=a.run_id, on_event=on_event, address=a.address).run()
    bar.close()
    print(f"run        {store.dir}")
    best = store.dir / "best.json"
    print(f"best       {best.read_text() if best.is_file() else 'no correct kernel'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workbench", description="Kernel workbench")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--target", choices=["cuda", "cpu"], default=default_target())
        sp.add_argument("--trials", type=int, default=4)
        sp.add_argument("--samples", type=int, default=30)
        sp.add_argument("--timeout", type=float, default=120.0, help="seconds per trial before the worker is killed")
        sp.add_argument("--compile", action=argparse.BooleanOptionalAction, default=default_target() == "cuda",
                        help="also time torch.compile (default on a GPU)")

    e = sub.add_parser("eval", help="judge one candidate file against a problem")
    e.add_argument("problem")
    e.add_argument("candidate")
    e.add_argument("--no-timing", dest="timing", action="store_false")
    e.add_argument("--out", help="where to write the JSON record")
    common(e)

    def search_args(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--model", action="append", default=None,
                        help="tuner | openai:<model> | gemini:<model>; repeat for an ensemble (default tuner)")
        sp.add_argument("--base-url", default=None, help="an OpenAI-compatible endpoint")
        sp.add_argument("--rounds", type=int, default=5)
        sp.add_argument("--ideas", type=int, default=4, help="K ideas per round")
        sp.add_argument("--impls", type=int, default=2, help="M implementations per idea")
        sp.add_argument("--seeds", type=int, default=2, help="B best kernels that seed the next round")
        sp.add_argument("--repairs", type=int, default=1, help="R repair attempts per failed candidate")
        sp.add_argument("--max-candidates", type=int, default=None)
        sp.add_argument("--max-tokens", type=int, default=None)
        sp.add_argument("--max-wall", type=float, default=None, help="seconds")
        sp.add_argument("--address", default=None,
                        help="judge on a Ray cluster (HEAD_IP:6379, from `ray start --head`); default: every local device")
        common(sp)

    s = sub.add_parser("search", help="search for a faster kernel")
    s.add_argument("problem")
    s.add_argument("--run-id", default=None, help="resume this run (same parameters)")
    search_args(s)

    b = sub.add_parser("batch", help="papermill: one search notebook per problem, then the report")
    b.add_argument("problems", nargs="*")
    b.add_argument("--out", default="outputs/notebooks")
    search_args(b)

    r = sub.add_parser("report", help="the report notebook and its HTML over every run")
    r.add_argument("--out", default="outputs/notebooks")

    a = p.parse_args(argv)
    if getattr(a, "model", "x") is None:
        a.model = ["tuner"]
    from workbench.problem import ProblemError

    try:
        if a.cmd == "eval":
            return cmd_eval(a)
        if a.cmd == "search":
            return cmd_search(a)
        from workbench import batch

        return batch.main(a)
    except (ProblemError, FileNotFoundError) as e:  # a bad path is the user's error, not a crash
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
