"""KernelBench at scale: a suite of reference files, and re-judging a directory of someone else's kernels.

`python -m workbench batch --suite DIR` finds every KernelBench-format file under DIR, loads each
(a missing optional import or a model too large for the device is a per-problem message, not a
crash), measures its eager and torch.compile baselines over every local device, and searches the
problems that can be searched: those with seeds (the tuner's starting points) or any problem when
a model proposer is given. `python -m workbench eval --suite REFS KERNELS` matches each candidate
file to its reference by KernelBench's naming and judges them all, one baseline per reference.

Both keep an append-only log in outputs/suites/<id>/ (workbench.store.RunStore): a killed run
given the same --suite-id resumes and never re-measures what it recorded. Both end with
KernelBench's figures (workbench.fastp) per level, the judging policy named in every table.
"""
from __future__ import annotations

import fnmatch
import json
import os
import queue
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from workbench.fastp import P_VALUES, figures
from workbench.problem import POLICIES, PROBLEMS_DIR, REPO_ROOT, Problem, ProblemError, load_problem, tensor_bytes
from workbench.store import RunStore

SUITES_DIR = Path(os.environ.get("WORKBENCH_SUITES", REPO_ROOT / "outputs" / "suites"))
# KernelBench's own checker treats torch compute in a candidate as a warning unless asked to be
# strict, so its published numbers are partial-replacement numbers; a suite of its files is judged
# the same way unless the file states POLICY or the run passes --policy.
SUITE_DEFAULT_POLICY = "partial"
# The judge's process holds the reference and the worker holds the candidate, each with its own
# inputs and outputs, on the same device; leave this much of the free memory for allocator slack.
FOOTPRINT_COPIES = 2
FREE_FRACTION = 0.9

LEVEL_DIR = re.compile(r"^level[_-]?(\d+)$", re.I)
NUMBERED = re.compile(r"^(\d+)_\w+$")
RUNS_NAME = re.compile(r"^level_(\d+)_problem_(\d+)_sample_(\d+)_kernel$")
REFERENCE_STEMS = ("ref", "reference")


# -- finding files -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Entry:
    """One reference file of a suite directory."""
    path: Path
    rel: str  # path relative to the suite directory: the key in every log and table
    level: int | None
    number: int | None  # KernelBench's problem id, the file name's numeric prefix

    @property
    def stem(self) -> str:
        return self.path.stem

    @property
    def label(self) -> str:
        return f"level{self.level}" if self.level is not None else "-"


def _read(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def is_candidate_source(text: str) -> bool:
    return re.search(r"^class ModelNew\b", text, re.M) is not None


def is_reference_source(text: str) -> bool:
    return (re.search(r"^class Model\b", text, re.M) is not None and "def get_inputs" in text
            and not is_candidate_source(text))


def level_of(rel: Path) -> int | None:
    """The level named by the nearest enclosing directory level1, level_2, level-3 ..."""
    for part in reversed(rel.parts[:-1]):
        m = LEVEL_DIR.match(part)
        if m:
            return int(m.group(1))
    return None


def python_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*.py")
                  if not any(part.startswith(".") or part == "__pycache__" for part in p.relative_to(root).parts))


def selected(rel: str, patterns: list[str] | None) -> bool:
    """A pattern with a wildcard is matched against the relative path; a plain one as a substring."""
    if not patterns:
        return True
    return any(fnmatch.fnmatch(rel, p) if any(c in p for c in "*?[") else p in rel for p in patterns)


def discover(root: str | Path, only: list[str] | None = None, limit: int | None = None) -> list[Entry]:
    """Every KernelBench-format reference under root, ordered by level, problem number and path."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"no suite directory {str(root)!r}")
    entries = []
    for path in python_files(root):
        rel = path.relative_to(root)
        if not is_reference_source(_read(path)) or not selected(rel.as_posix(), only):
            continue
        m = NUMBERED.match(path.stem)
        entries.append(Entry(path.resolve(), rel.as_posix(), level_of(rel), int(m.group(1)) if m else None))
    entries.sort(key=lambda e: (e.level if e.level is not None else 1 << 30,
                                e.number if e.number is not None else 1 << 30, e.rel))
    return entries[:limit] if limit is not None else entries


# -- loading and sizing ----------------------------------------------------------------------------------
def load_entry(entry: Entry) -> tuple[Problem | None, dict[str, Any]]:
    """The problem, or None and a status that says why not (missing_import, load_error)."""
    try:
        return load_problem(entry.path), {"status": "ok"}
    except ProblemError as e:
        cause = e.__cause__
        if isinstance(cause, ImportError):
            name = getattr(cause, "name", None) or str(cause)
            return None, {"status": "missing_import",
                          "message": f"needs the optional module {name!r}, which is not installed (pip install {name})"}
        return None, {"status": "load_error", "message": str(e)[:800]}


def footprint(problem: Problem) -> dict[str, int | None]:
    """Bytes of parameters and buffers, inputs and outputs, found on the meta device (nothing is allocated)."""
    with torch.device("meta"):
        model = problem.module.Model(*problem.module.get_init_inputs())
        inputs = list(problem.module.get_inputs())
    params = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
    ins = tensor_bytes(inputs)
    try:
        with torch.no_grad():
            outs: int | None = tensor_bytes(model(*[x.to("meta") if isinstance(x, torch.Tensor) else x for x in inputs]))
    except Exception:  # an operator without a meta kernel: the outputs stay unknown
        outs = None
    return {"params": params, "inputs": ins, "outputs": outs}


def free_bytes(target: str, device_index: int = 0) -> int:
    if target == "cuda":
        return int(torch.cuda.mem_get_info(device_index)[0])
    return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))


def size_check(problem: Problem, target: str, device_index: int = 0) -> dict[str, Any]:
    """{"status": "ok"|"too_large", ...}: would the judge's two copies fit in the device's free memory?"""
    try:
        fp = footprint(problem)
    except Exception as e:  # the estimate failed; let the judge find out for real
        return {"status": "ok", "footprint_error": f"{type(e).__name__}: {e}"[:300]}
    need = FOOTPRINT_COPIES * (fp["params"] + fp["inputs"] + (fp["outputs"] or 0))
    free = free_bytes(target, device_index)
    out: dict[str, Any] = {"status": "ok", "footprint": fp, "need_bytes": need, "free_bytes": free}
    if need > FREE_FRACTION * free:
        out.update(status="too_large",
                   message=f"too large for the device: {fp['params'] / 2**30:.1f} GiB of parameters and "
                           f"{(fp['inputs'] + (fp['outputs'] or 0)) / 2**30:.1f} GiB of inputs and outputs, "
                           f"x{FOOTPRINT_COPIES} (reference and candidate) = {need / 2**30:.1f} GiB, "
                           f"{free / 2**30:.1f} GiB free on {target}:{device_index}")
    return out


# -- policies ----------------------------------------------------------------------------------------------
def policy_for(problem: Problem, asked: str | None) -> str:
    """--policy, else the file's POLICY, else strict for our own problems/ and SUITE_DEFAULT_POLICY for the rest."""
    own = problem.path.resolve().is_relative_to(PROBLEMS_DIR.resolve())
    policy = asked or getattr(problem.module, "POLICY", None) or ("strict" if own else SUITE_DEFAULT_POLICY)
    if policy not in POLICIES:
        raise ProblemError(f"{problem.path}: policy {policy!r} is not one of {', '.join(POLICIES)}")
    return policy


# -- records and tables -----------------------------------------------------------------------------------
def first_reason(reasons: list[str]) -> str:
    for r in reasons:
        if not r.startswith("trivial_check_tightened"):
            return r
    return ""


def verdict_row(v: Any, asked_policy: str) -> dict[str, Any]:
    """What a table needs from a Verdict."""
    sp = v.speedups()
    timing = v.timing or {}
    return {"status": v.status, "correct": bool(v.correct), "codes": sorted(v.codes), "reason": first_reason(v.reasons),
            "reasons": v.reasons[:8], "ms": v.ms, "speedup_eager": sp["eager"], "speedup_compile": sp["compile"],
            "policy_asked": asked_policy, "policy": v.policy, "device_share": timing.get("device_share"),
            "degenerate": bool(v.degenerate), "stage": v.stage, "device_name": v.device_name or timing.get("device"),
            "seconds": v.seconds}


def _num(x: float | None, fmt: str = "{:.4f}") -> str:
    return "-" if x is None else fmt.format(x)


def markdown_table(header: list[str], rows: list[list[Any]]) -> str:
    cells = [[str(c).replace("|", "/").replace("\n", " ") for c in r] for r in rows]
    return "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                     + ["| " + " | ".join(r) + " |" for r in cells])


def figures_by_level(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """KernelBench's figures per level and over all, degenerate problems counted apart (not in n)."""
    out: dict[str, Any] = {}
    levels = sorted({r.get("level_label", "-") for r in rows})
    for label in levels + ["all"]:
        group = [r for r in rows if label == "all" or r.get("level_label", "-") == label]
        kept = [r for r in group if not r.get("degenerate")]
        out[label] = {**figures(kept), "degenerate": len(group) - len(kept)}
    return out


def fastp_table(by_policy: dict[str, dict[str, Any]]) -> str:
    """One line per policy and level: n, correct, fast_p over eager and compile, geomean speedups."""
    ps = [str(p) for p in P_VALUES]
    header = (["policy", "level", "n", "correct", "degenerate"] + [f"fast_{p} eager" for p in ps]
              + [f"fast_{p} compile" for p in ps] + ["geomean eager", "geomean compile"])
    lines = []
    for policy, levels in by_policy.items():
        for label, f in levels.items():
            lines.append([policy, label, f["n"], f["correct"], f["degenerate"]]
                         + [_num(f["eager"]["fast_p"][p], "{:.2f}") for p in ps]
                         + [_num(f["compile"]["fast_p"][p], "{:.2f}") for p in ps]
                         + [_num(f["eager"]["geomean"], "{:.3f}x"), _num(f["compile"]["geomean"], "{:.3f}x")])
    return markdown_table(header, lines)


def share_text(share: dict[str, float] | None) -> str:
    return "-" if not share else f"own {share.get('own', 0):.0%} / torch {share.get('torch', 0):.0%}"


def _new_id(prefix: str, root: Path) -> str:
    name = re.sub(r"[^\w.-]", "_", root.resolve().name)
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{prefix}-{name}-{os.getpid() % 10000:04d}"


def devices_for(target: str) -> list[int]:
    return list(range(torch.cuda.device_count())) if target == "cuda" else [0]


def on_devices(items: list[Any], work: Callable[[Any, int], None], target: str) -> None:
    """Run work(item, device_index) for every item, one thread per local device pulling from one queue."""
    q: queue.Queue[Any] = queue.Queue()
    for it in items:
        q.put(it)

    def loop(index: int) -> None:
        while True:
            try:
                it = q.get_nowait()
            except queue.Empty:
                return
            work(it, index)

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in devices_for(target)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


class Log:
    """A RunStore shared by device threads: appends under a lock, progress lines on stdout."""

    def __init__(self, store: RunStore, say: Callable[[str], None] = print):
        self.store, self.say, self.lock = store, say, threading.Lock()

    def append(self, kind: str, event_id: str, **data: Any) -> dict[str, Any]:
        with self.lock:
            return self.store.append(kind, event_id, **data)

    def has(self, event_id: str) -> bool:
        with self.lock:
            return self.store.has(event_id)

    def get(self, event_id: str) -> dict[str, Any] | None:
        with self.lock:
            return self.store.get(event_id)


def open_problems(log: Log, entries: list[Entry], target: str) -> dict[str, Problem]:
    """Load every entry once per run (its status recorded once); returns the loadable, fitting ones."""
    problems: dict[str, Problem] = {}
    for e in entries:
        problem, status = load_entry(e)
        if problem is not None:
            status = size_check(problem, target)
        if not log.has(f"problem:{e.rel}"):
            log.append("problem", f"problem:{e.rel}", rel=e.rel, path=str(e.path), level=e.level, number=e.number,
                       seeds=len(problem.seeds()) if problem else 0, **status)
        if status["status"] != "ok":
            log.say(f"skip       {e.rel}: {status['status']}: {status.get('message', '')}")
        elif problem is not None:
            problems[e.rel] = problem
    return problems


def measure_baselines(log: Log, entries: list[Entry], problems: dict[str, Problem], target: str, compile: bool,
                      samples: int) -> int:
    """Eager and torch.compile timings of every loadable problem not yet in the log; returns how many were measured."""
    from workbench.judge import time_reference

    todo = [e for e in entries if e.rel in problems and not log.has(f"baseline:{e.rel}")]
    done = [0]

    def one(e: Entry, index: int) -> None:
        t0 = time.perf_counter()
        try:
            b = time_reference(problems[e.rel], target=target, compile=compile, samples=samples, device_index=index)
        except Exception as ex:  # the judge failed on this problem: say so, keep going
            b = {"eager_error": f"{type(ex).__name__}: {ex}"[:2000]}
        log.append("baseline", f"baseline:{e.rel}", rel=e.rel, device_index=index, seconds=time.perf_counter() - t0, **b)
        with log.lock:
            done[0] += 1
            k = done[0]
        errs = "; ".join(f"{key}: {str(b[key]).strip().splitlines()[-1][:160]}" for key in ("eager_error", "compile_error")
                         if b.get(key))
        log.say(f"baseline   [{k}/{len(todo)}] {e.rel}: eager {_num(b.get('eager_ms'))} ms, "
                f"compile {_num(b.get('compile_ms'))} ms (device {index}, {time.perf_counter() - t0:.0f} s)"
                + (f"  {errs}" if errs else ""))

    on_devices(todo, one, target)
    return len(todo)


# -- batch --suite -----------------------------------------------------------------------------------------
def searchable(problem: Problem, models: list[str]) -> bool:
    """The tuner rewrites seeds, so it needs some; a model proposer writes kernels from the reference alone."""
    return bool(problem.seeds()) or any(m != "tuner" for m in models)


def run_search(log: Log, e: Entry, problem: Problem, a: Any, policy: str, suite_dir: Path) -> dict[str, Any]:
    """A search of one problem, in its own run under the suite; the suite's baseline is its baseline."""
    from dataclasses import asdict

    from workbench.search import Search, SearchParams

    kw = dict(problem=str(problem.path), models=list(a.model), rounds=a.rounds, ideas=a.ideas, impls=a.impls,
              seeds=a.seeds, repairs=a.repairs, target=a.target, base_url=a.base_url, max_candidates=a.max_candidates,
              max_tokens=a.max_tokens, max_wall_s=a.max_wall, compile_baseline=a.compile, trials=a.trials,
              samples=a.samples, timeout_s=a.timeout, policy=policy)
    params = SearchParams(**kw)
    run_id = re.sub(r"[^\w.-]", "_", e.rel.removesuffix(".py"))
    runs_dir = suite_dir / "runs"
    store = RunStore.open(run_id, asdict(params), runs_dir)
    baseline = log.get(f"baseline:{e.rel}") or {}
    if not store.has("baseline") and baseline.get("eager_ms"):
        store.append("baseline", "baseline", **{k: v for k, v in baseline.items() if k not in ("id", "type", "time", "rel")})
    store.close()  # one writer per run: the search opens it next
    def progress(ev: dict[str, Any]) -> None:
        if ev["type"] == "verdict":
            log.say(f"  {ev['candidate']}: {ev['status']} {_num(ev.get('ms'))} ms, {_num(ev.get('speedup_eager'), '{:.2f}x')} eager")
        elif ev["type"] == "round":
            log.say(f"  round {ev['round']}: best {ev['best']} {_num(ev.get('best_ms'))} ms")

    Search(params, run_id=run_id, runs_dir=runs_dir, on_event=progress).run()
    store = RunStore(store.dir)  # the search appended through its own store: read the log again
    verdicts = store.events("verdict")
    best_path = store.dir / "best.json"
    best = json.loads(best_path.read_text()) if best_path.is_file() else None
    return {"run": str(store.dir), "candidates": len(verdicts), "correct": best is not None,
            "best": best.get("candidate") if best else None, "ms": best.get("ms") if best else None,
            "speedup_eager": best.get("speedup_eager") if best else None,
            "speedup_compile": best.get("speedup_compile") if best else None,
            "degenerate": any(v.get("degenerate") for v in verdicts),
            "policy_asked": policy, "policy": policy}


def suite_main(a: Any) -> int:
    """`batch --suite DIR`: load, size, baseline and (where possible) search every problem; then the report."""
    root = Path(a.suite).resolve()
    entries = discover(root, a.only, a.limit)
    if not entries:
        print(f"error: no KernelBench-format file under {root}" + (f" matching {a.only}" if a.only else ""))
        return 1
    suites_dir = Path(a.suites_dir) if a.suites_dir else SUITES_DIR
    params = {"kind": "suite", "suite": str(root), "only": a.only, "limit": a.limit, "policy": a.policy,
              "target": a.target, "compile": a.compile, "samples": a.samples, "trials": a.trials,
              "models": list(a.model), "rounds": a.rounds, "ideas": a.ideas, "impls": a.impls}
    store = RunStore.open(a.suite_id or _new_id("suite", root), params, suites_dir)
    log = Log(store)
    print(f"suite      {root}: {len(entries)} problems -> {store.dir}")
    problems = open_problems(log, entries, a.target)
    measured = measure_baselines(log, entries, problems, a.target, a.compile, a.samples)
    searched = 0
    for e in entries:
        problem = problems.get(e.rel)
        if problem is None or not searchable(problem, list(a.model)) or log.has(f"search:{e.rel}"):
            continue
        policy = policy_for(problem, a.policy)
        print(f"search     {e.rel} ({len(problem.seeds())} seeds, {', '.join(a.model)}, policy {policy})", flush=True)
        try:
            rec = run_search(log, e, problem, a, policy, store.dir)
        except Exception as ex:  # one failed search does not stop the suite
            rec = {"error": f"{type(ex).__name__}: {ex}"[:2000], "correct": False, "candidates": 0,
                   "policy_asked": policy, "policy": None}
        log.append("search", f"search:{e.rel}", rel=e.rel, **rec)
        searched += 1
    report = suite_report(store, problems)
    (store.dir / "report.md").write_text(report["markdown"])
    (store.dir / "summary.json").write_text(json.dumps(report["summary"], indent=1, default=str))
    print(report["markdown"])
    print(f"\nmeasured   {measured} baselines, {searched} searches this time; the rest was in the log")
    print(f"report     {store.dir / 'report.md'}")
    print(f"summary    {store.dir / 'summary.json'}")
    useful = any(ev.get("eager_ms") for ev in store.events("baseline")) or store.events("search")
    return 0 if useful else 1


def suite_report(store: RunStore, problems: dict[str, Problem]) -> dict[str, Any]:
    """Per-problem table (status, baselines, search outcome) and the fast_p table of the searched problems."""
    base = {ev["rel"]: ev for ev in store.events("baseline")}
    searches = {ev["rel"]: ev for ev in store.events("search")}
    rows, scored = [], []
    for p in store.events("problem"):
        rel, b, s = p["rel"], base.get(p["rel"], {}), searches.get(p["rel"])
        label = f"level{p['level']}" if p.get("level") is not None else "-"
        if p["status"] != "ok":
            note = f"{p['status']}: {p.get('message', '')}"
        elif s is None:
            note = "no seeds and no model: baselines only" if rel in problems else "not searched"
        elif s.get("error"):
            note = f"search failed: {s['error'][:200]}"
        else:
            note = f"{s['candidates']} candidates, best {s.get('best') or 'none correct'}"
        row = {"rel": rel, "level_label": label, "status": p["status"], "eager_ms": b.get("eager_ms"),
               "compile_ms": b.get("compile_ms"), "baseline_error": b.get("eager_error") or b.get("compile_error"),
               "note": note, "policy": (s or {}).get("policy"), "policy_asked": (s or {}).get("policy_asked"),
               "correct": bool(s and s.get("correct")),
               "ms": (s or {}).get("ms"), "speedup_eager": (s or {}).get("speedup_eager"),
               "speedup_compile": (s or {}).get("speedup_compile"), "degenerate": bool(s and s.get("degenerate"))}
        rows.append(row)
        if s is not None:
            scored.append(row)
    by_policy: dict[str, dict[str, Any]] = {}
    for policy in sorted({str(r["policy"]) for r in scored}):
        by_policy[policy] = figures_by_level([r for r in scored if str(r["policy"]) == policy])
    table = markdown_table(
        ["problem", "level", "eager ms", "compile ms", "policy", "best ms", "x eager", "x compile", "note"],
        [[r["rel"], r["level_label"], _num(r["eager_ms"]), _num(r["compile_ms"]), _policy_text(r), _num(r["ms"]),
          _num(r["speedup_eager"], "{:.3f}x"), _num(r["speedup_compile"], "{:.3f}x"),
          r["note"] + (f"; baseline: {str(r['baseline_error']).strip().splitlines()[-1][:160]}" if r["baseline_error"] else "")]
         for r in rows])
    counts = {k: sum(1 for r in rows if r["status"] == k) for k in sorted({r["status"] for r in rows})}
    asked = store.params.get("policy")
    policy_line = f"Policy: {asked}." if asked else \
        f"Policy: each file's POLICY, else strict for problems/ and {SUITE_DEFAULT_POLICY} for the rest (as KernelBench's checker)."
    md = [f"# Suite {store.run_id}", "", policy_line, "", f"{len(rows)} problems: " + ", ".join(f"{v} {k}" for k, v in counts.items())
          + f"; {len(scored)} searched, {sum(1 for r in rows if r['eager_ms'])} with an eager baseline.", "", table, ""]
    if by_policy:
        md += ["## fast_p over the searched problems (best kernel per problem)", "", fastp_table(by_policy), ""]
    else:
        md += ["No problem was searched (none has seeds and no model was given), so there is no fast_p.", ""]
    return {"markdown": "\n".join(md), "summary": {"suite": store.run_id, "problems": rows, "fast_p": by_policy,
                                                   "counts": counts}}


# -- eval --suite: matching --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Match:
    candidate: Path
    rel: str  # the candidate's path relative to the kernels directory
    reference: Entry | None
    rule: str  # which naming rule matched, or why none did


def _model_new_pair(stem: str) -> str | None:
    """KernelBench's few-shot pairs: model_new_<x> is the kernel for model_<x>."""
    return "model_" + stem[len("model_new_"):] if stem.startswith("model_new_") else None


def match_one(path: Path, rel: Path, refs: list[Entry]) -> Match:
    """The rules, first hit wins (docs/kernelbench.md lists them):
    1. runs layout  level_<L>_problem_<N>_sample_<S>_kernel.py -> the level-L reference numbered N;
    2. a file named like its reference (same stem; same level when both have one), or the
       few-shot pair model_new_<x>.py -> model_<x>.py;
    3. a directory per problem: the candidate's directory holds ref.py/reference.py, or is named
       like a reference (<n>_<Name>/ or the name of a directory whose ref.py it is).
    """
    level = level_of(rel)
    m = RUNS_NAME.match(path.stem)
    if m:
        lv, num = int(m.group(1)), int(m.group(2))
        hits = [r for r in refs if r.level == lv and r.number == num]
        if len(hits) == 1:
            return Match(path, rel.as_posix(), hits[0], "runs")
        return Match(path, rel.as_posix(), None,
                     f"unmatched: no level {lv} problem {num} among the references" if not hits
                     else f"unmatched: {len(hits)} references are level {lv} problem {num}")
    for stem, rule in ((path.stem, "same_name"), (_model_new_pair(path.stem), "few_shot_pair")):
        if stem is None:
            continue
        hits = [r for r in refs if r.stem == stem and r.stem not in REFERENCE_STEMS]
        if level is not None and len(hits) > 1:
            hits = [r for r in hits if r.level == level]
        if len(hits) == 1:
            return Match(path, rel.as_posix(), hits[0], rule)
        if len(hits) > 1:
            return Match(path, rel.as_posix(), None, f"unmatched: {len(hits)} references are named {stem}.py")
    parent = path.parent
    same_dir = [r for r in refs if r.path.parent == parent.resolve() and r.stem in REFERENCE_STEMS]
    named = [r for r in refs if (r.stem in REFERENCE_STEMS and r.path.parent.name == parent.name) or r.stem == parent.name]
    if level is not None and len(named) > 1:
        named = [r for r in named if r.level == level]
    for hits in (same_dir, named):
        if len(hits) == 1:
            return Match(path, rel.as_posix(), hits[0], "problem_dir")
    return Match(path, rel.as_posix(), None, "unmatched: no reference by any accepted naming")


def match_kernels(refs: list[Entry], kernels_dir: str | Path, only: list[str] | None = None) -> list[Match]:
    root = Path(kernels_dir)
    if not root.is_dir():
        raise FileNotFoundError(f"no kernels directory {str(root)!r}")
    out = []
    for path in python_files(root):
        rel = path.relative_to(root)
        if is_candidate_source(_read(path)) and selected(rel.as_posix(), only):
            out.append(match_one(path, rel, refs))
    return out


# -- eval --suite: judging ---------------------------------------------------------------------------------
def build_all(log: Log, paths: list[Path], target: str) -> dict[Path, dict[str, Any]]:
    """Compile every candidate's extensions at once, before anything is timed. KernelBench kernels
    include torch/extension.h and take 30-60 s each to build; judged one reference at a time they
    built one at a time (session 6 on the H200: 14 kernels, about 60 s apart)."""
    from workbench.build import target_arch
    from workbench.pool import prebuild_all

    if not paths:
        return {}
    if target.startswith("cuda"):
        target_arch()  # the architecture the judge's pool builds for, so that its cache finds these
    log.say(f"build      {len(paths)} candidate(s) at once, before judging")
    t0 = time.perf_counter()
    results = prebuild_all(paths)
    failed = sum(bool(r.get("error")) or any(not b["ok"] for b in r.get("builds", [])) for r in results)
    log.say(f"build      done in {time.perf_counter() - t0:.0f} s ({failed} did not build; their verdicts say why)")
    return dict(zip(paths, results))


def rejudge_main(a: Any) -> int:
    """`eval --suite REFS KERNELS`: judge every matched candidate under each asked policy; table, JSON, fast_p."""
    from workbench.pool import EvalPool

    refs_root, kernels_root = Path(a.problem).resolve(), Path(a.candidate).resolve()
    refs = discover(refs_root)
    matches = match_kernels(refs, kernels_root, a.only)
    if a.limit is not None:
        matches = matches[:a.limit]
    if not matches:
        print(f"error: no candidate (a file defining class ModelNew) under {kernels_root}")
        return 1
    policies = list(dict.fromkeys(a.policy or [None]))
    suites_dir = Path(a.suites_dir) if a.suites_dir else SUITES_DIR
    params = {"kind": "rejudge", "refs": str(refs_root), "kernels": str(kernels_root), "policies": policies,
              "target": a.target, "compile": a.compile, "samples": a.samples, "trials": a.trials, "only": a.only,
              "limit": a.limit, "timing": a.timing}
    store = RunStore.open(a.suite_id or _new_id("rejudge", kernels_root), params, suites_dir)
    log = Log(store)
    matched = [m for m in matches if m.reference is not None]
    print(f"rejudge    {len(matches)} candidates under {kernels_root} ({len(matched)} matched to a reference "
          f"under {refs_root}) -> {store.dir}")
    for m in matches:
        if m.reference is None:
            print(f"unmatched  {m.rel}: {m.rule.removeprefix('unmatched: ')}")
    groups: dict[str, list[Match]] = {}
    for m in matched:
        groups.setdefault(m.reference.rel, []).append(m)  # type: ignore[union-attr]
    entries = [g[0].reference for g in groups.values()]
    problems = open_problems(log, entries, a.target)  # type: ignore[arg-type]
    # (reference, policy, candidates without that verdict yet): what this run still has to judge
    work = [(ref_rel, policy, todo) for ref_rel, group in groups.items() if ref_rel in problems
            for policy in dict.fromkeys(policy_for(problems[ref_rel], asked) for asked in policies)
            if (todo := [m for m in group if not log.has(f"verdict:{policy}:{m.rel}")])]
    built = build_all(log, sorted({m.candidate for _, _, todo in work for m in todo}), a.target)
    if a.timing:  # --no-timing judges correctness only: no baselines, no speedups
        measure_baselines(log, entries, problems, a.target, a.compile, a.samples)  # type: ignore[arg-type]
    judged = [0]
    total = sum(len(g) for g in groups.values()) * len(policies)
    for ref_rel, policy, todo in work:
        problem = problems[ref_rel]
        baseline = {k: v for k, v in (log.get(f"baseline:{ref_rel}") or {}).items() if k not in ("id", "type", "time", "rel")}
        by_path = {m.candidate: m for m in todo}
        pool = EvalPool(a.target, trials=a.trials, samples=a.samples, timeout_s=a.timeout, timing=a.timing,
                        baseline=baseline or None, policy=policy, prebuilt=built)

        def record(path: Path, v: Any, policy: str = policy) -> None:
            m = by_path[path]
            row = verdict_row(v, policy)
            log.append("verdict", f"verdict:{policy}:{m.rel}", candidate=m.rel, reference=ref_rel, rule=m.rule, **row)
            with log.lock:
                judged[0] += 1
                k = judged[0]
            log.say(f"verdict    [{k}/{total}] {m.rel} ({policy}): {row['status']} {_num(row['ms'])} ms"
                    f"  {_num(row['speedup_eager'], '{:.2f}x')} eager  {row['reason'][:160]}")

        pool.evaluate_many(problem, list(by_path), on_done=record)
    report = rejudge_report(store, matches, policies)
    (store.dir / "rejudge.md").write_text(report["markdown"])
    out = Path(a.out) if a.out else store.dir / "rejudge.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report["summary"], indent=1, default=str))
    print(report["markdown"])
    print(f"\njudged     {judged[0]} this time; the rest was in the log")
    print(f"table      {store.dir / 'rejudge.md'}")
    print(f"json       {out}")
    return 0 if store.events("verdict") else 1


def rejudge_report(store: RunStore, matches: list[Match], policies: list[str | None]) -> dict[str, Any]:
    problems = {ev["rel"]: ev for ev in store.events("problem")}
    verdicts = {ev["id"]: ev for ev in store.events("verdict")}
    rows = []
    for m in matches:
        ref = m.reference
        if ref is None:
            rows.append({"candidate": m.rel, "reference": None, "rule": "-", "level_label": "-", "policy": "-",
                         "status": "unmatched", "correct": False, "reason": m.rule.removeprefix("unmatched: ")})
            continue
        prob = problems.get(ref.rel, {})
        for asked in policies:
            # The policy a verdict was recorded under: the asked one, or the file's own / the suite default.
            found = [v for k, v in verdicts.items() if k.endswith(f":{m.rel}") and v["reference"] == ref.rel
                     and (asked is None or k.startswith(f"verdict:{asked}:"))]
            base = {"candidate": m.rel, "reference": ref.rel, "rule": m.rule, "level_label": ref.label}
            if prob.get("status", "ok") != "ok":
                rows.append({**base, "policy": asked or "-", "status": prob["status"], "correct": False,
                             "reason": prob.get("message", "")})
            elif not found:
                rows.append({**base, "policy": asked or "-", "status": "not_judged", "correct": False,
                             "reason": "not judged (the run stopped first)"})
            for v in found:
                rows.append({**base, **{k: v.get(k) for k in ("policy_asked", "policy", "status", "correct", "reason",
                                                               "codes", "ms", "speedup_eager", "speedup_compile",
                                                               "device_share", "degenerate", "device_name")}})
    scored = [r for r in rows if r["status"] not in ("unmatched",)]
    by_policy = {p: figures_by_level([r for r in scored if r.get("policy_asked", r["policy"]) == p])
                 for p in sorted({str(r.get("policy_asked") or r["policy"]) for r in scored if r.get("policy_asked")})}
    table = markdown_table(
        ["candidate", "reference", "match", "policy", "verdict", "reason", "ms", "x eager", "x compile", "device time"],
        [[r["candidate"], r["reference"] or "-", r["rule"], _policy_text(r), r["status"], (r.get("reason") or "")[:140],
          _num(r.get("ms")), _num(r.get("speedup_eager"), "{:.3f}x"), _num(r.get("speedup_compile"), "{:.3f}x"),
          share_text(r.get("device_share"))] for r in rows])
    unmatched = [r for r in rows if r["status"] == "unmatched"]
    md = [f"# Re-judge {store.run_id}", "",
          f"{len(matches)} candidates, {len(matches) - len(unmatched)} matched, {len(unmatched)} unmatched.", "",
          "## fast_p (each candidate one entry; degenerate problems counted apart)", "",
          fastp_table(by_policy) if by_policy else "no candidate was judged", "", "## Candidates", "", table, ""]
    return {"markdown": "\n".join(md), "summary": {"run": store.run_id, "rows": rows, "fast_p": by_policy,
                                                   "unmatched": [r["candidate"] for r in unmatched]}}


def _policy_text(r: dict[str, Any]) -> str:
    return str(r.get("policy") or r.get("policy_asked") or "-")
