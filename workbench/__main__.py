"""`python -m workbench eval | search | batch | report`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def default_target() -> str:
    import torch  # here, not at the top: a bad argument is reported before torch takes seconds to import

    return "cuda" if torch.cuda.is_available() else "cpu"


def fmt_ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def fmt_x(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}x"


def check_candidate_file(path: str) -> str | None:
    """What is wrong with a candidate file before anything is built or timed, or None."""
    p = Path(path)
    if not p.exists():
        return f"candidate file {path} does not exist"
    if not p.is_file():
        return f"candidate {path} is not a file"
    try:
        source = p.read_text()
    except (OSError, UnicodeDecodeError) as e:
        return f"candidate file {path} cannot be read: {e}"
    try:
        compile(source, str(p), "exec")
    except SyntaxError as e:  # file:line:col as the judge's scan reports it (syntax_error: file:line:col: msg)
        return f"syntax error: {path}:{e.lineno}:{e.offset}: {e.msg}"
    return None


def cmd_eval(a: argparse.Namespace) -> int:
    from workbench.judge import evaluate, measure_facts, time_reference
    from workbench.problem import load_problem

    if a.suite:
        from workbench.suite import rejudge_main

        return rejudge_main(a)
    problem = load_problem(a.problem)
    baseline = time_reference(problem, target=a.target, compile=a.compile) if a.timing else None
    facts = measure_facts(a.target) if a.timing and a.target == "cuda" else None
    v = evaluate(problem, a.candidate, target=a.target, trials=a.trials, timing=a.timing, baseline=baseline,
                 facts=facts, timeout_s=a.timeout, samples=a.samples, **policy_kwargs(a))
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


def policy_kwargs(a: argparse.Namespace) -> dict[str, Any]:
    """--policy for one evaluation, passed on only to a judge that has policies."""
    from workbench.suite import judge_takes_policy

    return {"policy": a.policy[-1]} if a.policy and judge_takes_policy() else {}


def suite_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--only", action="append", default=None, metavar="PATTERN",
                    help="keep files whose relative path matches (glob) or contains (plain text) PATTERN; repeatable")
    sp.add_argument("--limit", type=int, default=None, help="at most N problems (eval: candidates), in order")
    sp.add_argument("--suite-id", default=None, help="resume this suite run (same parameters)")
    sp.add_argument("--suites-dir", default=None, help="where suite runs live (default outputs/suites)")


def search_params(a: argparse.Namespace, problem: str) -> Any:
    from workbench.search import SearchParams

    return SearchParams(problem=problem, models=a.model, rounds=a.rounds, ideas=a.ideas, impls=a.impls, seeds=a.seeds,
                        repairs=a.repairs, target=a.target, base_url=a.base_url, max_candidates=a.max_candidates,
                        max_tokens=a.max_tokens, max_wall_s=a.max_wall, compile_baseline=a.compile,
                        trials=a.trials, samples=a.samples, timeout_s=a.timeout)


def cmd_search(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from workbench import cleanup
    from workbench.problem import load_problem
    from workbench.search import Search

    params = search_params(a, a.problem)
    load_problem(params.problem)  # a bad path fails here, before the progress bar draws
    total = len(load_problem(params.problem, target=params.target).seeds()) + params.rounds * params.ideas * params.impls
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

    search = Search(params, run_id=a.run_id, on_event=on_event)
    cleanup.hint = f"resume with: python -m workbench search {a.problem} --run-id {search.store.run_id}"
    store = search.run()
    bar.close()
    print(f"run        {store.dir}")
    best = store.dir / "best.json"
    print(f"best       {best.read_text() if best.is_file() else 'no correct kernel'}")
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m workbench", description="Kernel workbench")
    sub = p.add_subparsers(dest="cmd", required=True)

    def common(sp: argparse.ArgumentParser) -> None:
        sp.add_argument("--target", choices=["cuda", "cpu"], default=None, help="default: cuda when there is a GPU")
        sp.add_argument("--trials", type=int, default=4)
        sp.add_argument("--samples", type=int, default=30)
        sp.add_argument("--timeout", type=float, default=120.0, help="seconds per trial before the worker is killed")
        sp.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="also time torch.compile (default on a GPU)")

    e = sub.add_parser("eval", help="judge one candidate file against a problem")
    e.add_argument("problem")
    e.add_argument("candidate")
    e.add_argument("--no-timing", dest="timing", action="store_false")
    e.add_argument("--out", help="where to write the JSON record")
    e.add_argument("--suite", action="store_true",
                   help="re-judge: PROBLEM is a directory of references, CANDIDATE a directory of kernels (docs/kernelbench.md)")
    e.add_argument("--policy", action="append", choices=["strict", "partial"], default=None,
                   help="judging policy (default: the problem's own; for --suite, repeat to judge under both)")
    suite_args(e)
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
        common(sp)

    s = sub.add_parser("search", help="search for a faster kernel")
    s.add_argument("problem")
    s.add_argument("--run-id", default=None, help="resume this run (same parameters)")
    search_args(s)

    b = sub.add_parser("batch", help="papermill: one search notebook per problem, then the report")
    b.add_argument("problems", nargs="*")
    b.add_argument("--out", default="outputs/notebooks")
    b.add_argument("--suite", default=None, metavar="DIR",
                   help="every KernelBench-format file under DIR: baselines, searches where possible, fast_p")
    b.add_argument("--policy", choices=["strict", "partial"], default=None,
                   help="judging policy for --suite (default: the file's POLICY, else strict for problems/, partial for the rest, as KernelBench)")
    suite_args(b)
    search_args(b)

    r = sub.add_parser("report", help="the report notebook and its HTML over every run")
    r.add_argument("--out", default="outputs/notebooks")

    a = p.parse_args(argv)
    if a.cmd == "eval" and (problem_with_candidate := check_candidate_file(a.candidate)):
        print(f"error: {problem_with_candidate}", file=sys.stderr)  # before torch is even imported
        return 2
    if hasattr(a, "target"):
        a.target = a.target or default_target()
        a.compile = (a.target == "cuda") if a.compile is None else a.compile
    if getattr(a, "model", "x") is None:
        a.model = ["tuner"]
    from workbench.problem import ProblemError

    try:
        if a.cmd == "eval":
            return cmd_eval(a)
        if a.cmd == "search":
            from workbench.panel import problem_spec

            a.problem = problem_spec(a.problem)  # stored as a name or an absolute path: resumable from anywhere
            return cmd_search(a)
        from workbench import batch

        return batch.main(a)
    except (ProblemError, FileNotFoundError) as e:  # a bad path is the user's error, not a crash
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from workbench import cleanup

    cleanup.install()  # only for the command line: a test or notebook calling main() keeps its own signals
    sys.exit(main())
