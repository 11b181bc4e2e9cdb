"""`python -m workbench eval | search | batch | report`."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


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
                 facts=facts, timeout_s=a.timeout, samples=a.samples,
                 policy=a.policy[-1] if a.policy else None)
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


def suite_args(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--only", action="append", default=None, metavar="PATTERN",
                    help="keep files whose relative path matches (glob) or contains (plain text) PATTERN; repeatable")
    sp.add_argument("--limit", type=int, default=None, help="at most N problems (eval: candidates), in order")
    sp.add_argument("--suite-id", default=None, help="resume this suite run (same parameters)")
    sp.add_argument("--suites-dir", default=None, help="where suite runs live (default outputs/suites)")


def search_params(a: argparse.Namespace, problem: str) -> Any:
    """SearchParams from parsed options: every option is named after a SearchParams field."""
    from workbench.params import SearchParams, param_fields

    return SearchParams(problem=problem, **{f.name: getattr(a, dest) for f, _, dest in param_fields()
                                            if getattr(a, dest, None) is not None or f.default is None})


def totals_lines(totals: dict[str, Any]) -> list[str]:
    """The model accounting of a run, one line per model and one overall."""
    def line(name: str, t: dict[str, Any]) -> str:
        return (f"{name:<34} {t['calls']:>5} calls ({t['failed_calls']} failed, {t['retries']} retries, "
                f"{t['discarded_replies']} discarded)  in {t['input_tokens']:>8}  out {t['output_tokens']:>8} "
                f"(reasoning {t['reasoning_tokens']})  ${t['cost_usd']:.4f}")

    per = totals.get("per_model") or {}
    return [line(m, t) for m, t in sorted(per.items())] + ([line("total", totals["overall"])] if per else [])


def cmd_search(a: argparse.Namespace) -> int:
    from tqdm import tqdm

    from workbench import cleanup
    from workbench.problem import load_problem
    from workbench.progress import CandidateCount
    from workbench.search import ModelsUnreachable, Search, SearchParams
    from workbench.store import RunStore, problem_path

    if a.replay:  # the recorded run's parameters, its replies by place, no network
        from workbench.store import RUNS_DIR

        rdir = Path(a.replay) if Path(a.replay).is_dir() else RUNS_DIR / a.replay
        if not (rdir / "params.json").is_file():
            print(f"error: --replay {a.replay}: no recorded run at {rdir}", file=sys.stderr)
            return 2
        old = RunStore(rdir).params
        known = {f for f in SearchParams.__dataclass_fields__}
        params = SearchParams(**{k: v for k, v in old.items() if k in known})
    elif not a.problem:
        print("error: search needs a problem (or --replay RUN_ID)", file=sys.stderr)
        return 2
    else:
        params = search_params(a, a.problem)
    problem = load_problem(problem_path(params.problem), target=params.target)  # a bad path fails here, before the bar draws
    count = CandidateCount(len(problem.seeds()), params.rounds, params.ideas, params.impls)
    bar = tqdm(total=count.total, desc=f"search {problem.name}", unit="cand")
    search: Any = None

    def status() -> str:
        if search is None:
            return ""
        t = search.state.totals()["overall"]
        flying = sum(getattr(p, "in_flight", 0) for p in search.proposers.values())
        return f"calls in flight {flying}, tokens {t['input_tokens'] + t['output_tokens']}, ${t['cost_usd']:.4f}"

    def on_event(ev: dict[str, Any]) -> None:
        if count.update(ev):
            bar.total = count.total
            bar.refresh()
        if ev["type"] == "candidate" and ev.get("failed"):
            tqdm.write(f"NOTE: {ev['candidate']} was not made: {ev.get('error', '')}"[:300], file=sys.stderr)
        if ev["type"] == "verdict":
            bar.update(1)
            bar.set_postfix_str(f"{ev['candidate']} {ev['status']} {fmt_ms(ev.get('ms'))} ms; {status()}")
        elif ev["type"] == "call":
            bar.set_postfix_str(status())
        elif ev["type"] == "notice":
            tqdm.write(f"NOTE: {ev['message']}", file=sys.stderr)
        elif ev["type"] == "round":
            tqdm.write(f"round {ev['round']}: best {ev['best']} {fmt_ms(ev['best_ms'])} ms, "
                       f"{fmt_x(ev['best_speedup_eager'])} eager, {fmt_x(ev['best_speedup_compile'])} compile")
        elif ev["type"] in ("baseline", "facts", "stopped"):
            tqdm.write(f"{ev['type']}: " + json.dumps({k: v for k, v in ev.items() if k not in ("id", "type", "time", "eager", "compile")}, default=str)[:300])

    try:
        search = Search(params, run_id=a.run_id, on_event=on_event, replay=a.replay,
                        new_run_on_change=a.new_run_on_change, address=a.address)
        cleanup.hint = f"resume with: python -m workbench search {params.problem} --run-id {search.store.run_id}"
        store = search.run()
    except ModelsUnreachable as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    finally:
        bar.close()
    print(f"run        {store.dir}")
    for line in totals_lines(search.state.totals()):
        print(f"models     {line}")
    best = store.dir / "best.json"
    best_id = json.loads(best.read_text()).get("candidate") if best.is_file() else None
    print(f"best       {best_id or 'no correct kernel'}  ({best})")
    why = search.model_outcome()
    if why:
        print(f"error: the models produced no candidate: {why}", file=sys.stderr)
        return 1
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
        """One option per SearchParams field, its default and help from there."""
        from dataclasses import MISSING

        from workbench.params import param_fields

        for f, flag, dest in param_fields():
            if f.metadata.get("device"):  # decided after parsing (torch says whether a GPU is here)
                default, show = None, f.metadata.get("help", "")
            else:
                default = f.default_factory() if f.default_factory is not MISSING else f.default
                show = f"{f.metadata.get('help', '')} (default {default})"
            kind = {"int": int, "float": float, "str": str}.get(str(f.type).split(" ")[0].split("|")[0].strip())
            if f.name == "models":
                sp.add_argument(flag, dest=dest, action="append", default=None, help=show)
            elif f.type in ("bool", bool):
                sp.add_argument(flag, dest=dest, action=argparse.BooleanOptionalAction, default=default, help=show)
            else:
                sp.add_argument(flag, dest=dest, type=kind or str, default=default, help=show,
                                choices=f.metadata.get("choices"))
        # where to judge, not what to search: not a SearchParams field, so a run resumes anywhere
        sp.add_argument("--address", default=None,
                        help="judge on a Ray cluster (HEAD_IP:6379, from `ray start --head`; docs/distributed.md); "
                             "default: every local device")

    s = sub.add_parser("search", help="search for a faster kernel")
    s.add_argument("problem", nargs="?", help="a problem name or file (not needed with --replay)")
    s.add_argument("--run-id", default=None, help="resume this run (same parameters)")
    s.add_argument("--replay", default=None, metavar="RUN_ID",
                   help="re-run a recorded search with no network: each call gets the reply recorded at its place")
    s.add_argument("--new-run-on-change", action="store_true",
                   help="when --run-id names a run whose problem file changed, start a new run instead of refusing")
    search_args(s)

    b = sub.add_parser("batch", help="papermill: one search notebook per problem, then the report")
    b.add_argument("problems", nargs="*")
    b.add_argument("--out", default="outputs/notebooks")
    b.add_argument("--suite", default=None, metavar="DIR",
                   help="every KernelBench-format file under DIR: baselines, searches where possible, fast_p")
    suite_args(b)
    search_args(b)

    r = sub.add_parser("report", help="the report notebook and its HTML over every run")
    r.add_argument("--out", default="outputs/notebooks")

    a = p.parse_args(argv)
    if a.cmd == "eval" and not a.suite and (problem_with_candidate := check_candidate_file(a.candidate)):
        print(f"error: {problem_with_candidate}", file=sys.stderr)  # before any problem loads or worker starts
        return 2
    if a.cmd in ("search", "batch"):  # the device defaults, from SearchParams' own factories
        from workbench.params import param_fields

        for f, _, dest in param_fields():
            if f.metadata.get("device") and getattr(a, dest) is None:
                setattr(a, dest, f.default_factory())
    if hasattr(a, "target"):
        from workbench.params import default_target

        a.target = a.target or default_target()
        a.compile = (a.target == "cuda") if a.compile is None else a.compile
    if getattr(a, "model", "x") is None:
        a.model = ["tuner"]
    from workbench.problem import ProblemError
    from workbench.store import RunError

    try:
        if a.cmd == "eval":
            return cmd_eval(a)
        if a.cmd == "search":
            from workbench.panel import problem_spec

            if a.problem:  # --replay takes its problem from the recorded run
                a.problem = problem_spec(a.problem)  # stored as a name or an absolute path: resumable from anywhere
            return cmd_search(a)
        from workbench import batch

        return batch.main(a)
    except (ProblemError, FileNotFoundError, RunError, ValueError) as e:  # the user's error, not a crash
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    from workbench import cleanup

    cleanup.install()  # only for the command line: a test or notebook calling main() keeps its own signals
    sys.exit(main())
