"""The round loop: ideas -> implementations -> evaluation -> the best seed the next round.

Round 0 judges the problem's own seed kernels. Each later round asks the proposers for K
ideas conditioned on every earlier idea and its measured outcome and on the best kernels;
each idea becomes M implementations; failed ones get up to R repairs with the compiler error
or mismatch fed back; the best B correct kernels seed the next round.

Every step asks the run's log first, so a killed run resumes where it stopped: ideas,
sources and verdicts already recorded are reused, never redone or recorded twice.
"""
from __future__ import annotations

import os
import platform
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from workbench.judge import Verdict, measure_facts, time_reference
from workbench.pool import EvalPool
from workbench.problem import REPO_ROOT, Problem, load_problem
from workbench.proposers.proposal import Context, Idea, Proposer
from workbench.proposers.tuner import Tuner, source_hash
from workbench.store import RunStore

MODEL_CACHE = REPO_ROOT / "outputs" / "cache" / "models"
REPAIRABLE = {"build_error", "incorrect", "error"}


@dataclass
class SearchParams:
    problem: str
    models: list[str] = field(default_factory=lambda: ["tuner"])
    rounds: int = 5
    ideas: int = 4  # K per round
    impls: int = 2  # M per idea
    seeds: int = 2  # B kept to seed the next round
    repairs: int = 1  # R attempts per failed candidate (model proposers only)
    target: str = field(default_factory=lambda: "cuda" if torch.cuda.is_available() else "cpu")
    base_url: str | None = None
    max_candidates: int | None = None
    max_tokens: int | None = None
    max_wall_s: float | None = None
    compile_baseline: bool = True
    trials: int = 4
    samples: int = 30
    timeout_s: float = 120.0
    tuner_seed: int = 0


def make_proposer(spec: str, base_url: str | None, tuner_seed: int) -> Proposer:
    if spec == "tuner":
        return Tuner(tuner_seed)
    from workbench.proposers.base import make_client
    from workbench.proposers.llm import ModelProposer

    return ModelProposer(make_client(spec, base_url=base_url, cache_dir=MODEL_CACHE))


def make_pool(params: SearchParams, address: str | None = None) -> Any:
    """The judging pool: every local device, or a Ray cluster when an address is given (or set in
    WORKBENCH_RAY_ADDRESS, which is how the batch passes it to its notebooks)."""
    kwargs = dict(trials=params.trials, samples=params.samples, timeout_s=params.timeout_s)
    address = address or os.environ.get("WORKBENCH_RAY_ADDRESS")
    if address:
        from workbench.ray_backend import RayEvalPool

        return RayEvalPool(address, params.target, **kwargs)
    return EvalPool(params.target, **kwargs)


def verdict_record(v: Verdict) -> dict[str, Any]:
    sp = v.speedups()
    timing = v.timing or {}
    return {"candidate_path": v.candidate, "status": v.status, "codes": sorted(v.codes), "reasons": v.reasons[:12],
            "ms": v.ms, "speedup_eager": sp["eager"], "speedup_compile": sp["compile"],
            "roofline_fraction": timing.get("roofline_fraction"),
            "timing": {k: timing.get(k) for k in ("events", "wall", "samples", "device", "method")} if timing else None,
            "build_seconds": sum(b.get("seconds") or 0 for b in v.builds),
            "build_cached": all(b.get("cached") for b in v.builds) if v.builds else None,
            "build_log": v.build_log[-6000:] if v.status == "build_error" else "",
            "tolerance": v.tolerance, "seconds": v.seconds,
            # where it was judged: the Ray backend sets these; a local verdict was judged here
            "node": getattr(v, "node", None) or platform.node(), "device_index": getattr(v, "device_index", None),
            "device_name": getattr(v, "device_name", None)}


class Search:
    def __init__(self, params: SearchParams, run_id: str | None = None, runs_dir: str | Path | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, address: str | None = None):
        self.p = params
        self.address = address  # a Ray cluster to judge on (None: this machine's devices)
        self.record_lock = threading.Lock()  # verdicts arrive from one thread per device
        self.problem: Problem = load_problem(params.problem)
        self.store = RunStore.open(run_id, asdict(params), runs_dir)
        self.on_event = on_event or (lambda ev: None)
        self.should_stop = should_stop or (lambda: False)
        self.proposers = {spec: make_proposer(spec, params.base_url, params.tuner_seed) for spec in params.models}
        self.t0 = time.time()

    # -- log helpers -----------------------------------------------------------------------------------
    def emit(self, event_type: str, event_id: str, **data: Any) -> dict[str, Any]:
        fresh = not self.store.has(event_id)
        ev = self.store.append(event_type, event_id, **data)
        if fresh:
            self.on_event(ev)
        return ev

    def candidates(self, round_: int | None = None) -> list[dict[str, Any]]:
        return [e for e in self.store.events("candidate") if round_ is None or e["round"] == round_]

    def verdicts(self) -> dict[str, dict[str, Any]]:
        return {e["candidate"]: e for e in self.store.events("verdict")}

    def best(self, n: int) -> list[dict[str, Any]]:
        ok = sorted((v for v in self.verdicts().values() if v["status"] == "correct" and v.get("ms")),
                    key=lambda v: v["ms"])
        return [{"id": v["candidate"], "source": self.store.candidate_path(v["candidate"]).read_text(), "ms": v["ms"],
                 "speedup_eager": v.get("speedup_eager"), "speedup_compile": v.get("speedup_compile")} for v in ok[:n]]

    def history(self) -> list[dict[str, Any]]:
        verdicts, out = self.verdicts(), []
        for idea in self.store.events("idea"):
            results = [verdicts[c["candidate"]] for c in self.candidates() if c.get("idea") == idea["id"] and c["candidate"] in verdicts]
            correct = [v for v in results if v["status"] == "correct" and v.get("ms")]
            if correct:
                v = min(correct, key=lambda v: v["ms"])
                outcome = f"correct, {v['ms']:.4f} ms" + (f" ({v['speedup_eager']:.2f}x eager)" if v.get("speedup_eager") else "")
                sp = v.get("speedup_eager")
            else:
                outcome = "failed: " + (", ".join(sorted({v["status"] for v in results})) or "no implementation")
                sp = None
            out.append({"round": idea["round"], "idea": idea["text"], "outcome": outcome, "speedup": sp})
        return out

    def context(self, round_: int) -> Context:
        facts = (self.store.get("facts") or {}).get("facts", {})
        tried = {c["hash"] for c in self.candidates() if c.get("hash")}
        return Context(self.problem, facts, round_, self.best(self.p.seeds), self.history(), tried)

    def spent(self) -> tuple[int, int]:
        tokens = sum((e.get("usage") or {}).get("input_tokens", 0) + (e.get("usage") or {}).get("output_tokens", 0)
                     for e in self.store.events() if e["type"] in ("idea", "candidate"))
        return tokens, len(self.store.events("verdict"))

    def over_budget(self) -> str | None:
        tokens, judged = self.spent()
        first = self.store.events("start")
        wall = time.time() - (first[0]["time"] if first else self.t0)
        if self.should_stop():
            return "stopped by the user"
        if self.p.max_tokens is not None and tokens >= self.p.max_tokens:
            return f"token budget spent ({tokens} >= {self.p.max_tokens})"
        if self.p.max_candidates is not None and judged >= self.p.max_candidates:
            return f"candidate budget spent ({judged} >= {self.p.max_candidates})"
        if self.p.max_wall_s is not None and wall >= self.p.max_wall_s:
            return f"wall-time budget spent ({wall:.0f} s >= {self.p.max_wall_s:g} s)"
        return None

    # -- steps ------------------------------------------------------------------------------------------
    def setup(self) -> None:
        self.emit("start", f"start-{len(self.store.events('start'))}", pid=__import__("os").getpid())
        if not self.store.has("facts"):
            self.emit("facts", "facts", facts=measure_facts(self.p.target))
        if not self.store.has("baseline"):
            self.emit("baseline", "baseline", **time_reference(self.problem, target=self.p.target,
                                                                  compile=self.p.compile_baseline))

    def add_candidate(self, cid: str, source: str | None, **data: Any) -> None:
        if self.store.has(f"cand-{cid}"):
            return
        if source is None:
            self.emit("candidate", f"cand-{cid}", candidate=cid, failed=True, **data)
            return
        h = source_hash(source)
        dup = next((c["candidate"] for c in self.candidates() if c.get("hash") == h), None)
        self.store.save_source(cid, source)
        self.emit("candidate", f"cand-{cid}", candidate=cid, hash=h, duplicate_of=dup, **data)

    def copy_duplicate_verdicts(self) -> None:
        done = self.verdicts()
        for c in self.candidates():  # same source: same verdict, no rerun
            if not c.get("failed") and c["candidate"] not in done and c.get("duplicate_of") in done:
                self.emit("verdict", f"verdict-{c['candidate']}", candidate=c["candidate"],
                          **{k: v for k, v in done[c["duplicate_of"]].items() if k not in ("id", "type", "time", "candidate")})

    def judge_pending(self, pool: EvalPool, baseline: dict[str, Any], facts: dict[str, Any]) -> None:
        self.copy_duplicate_verdicts()
        done = self.verdicts()
        # A duplicate waits for its original's verdict, even when both are new in this batch.
        pending = [c for c in self.candidates() if not c.get("failed") and c["candidate"] not in done
                   and not c.get("duplicate_of")]
        paths = {self.store.candidate_path(c["candidate"]): c["candidate"] for c in pending}
        if not paths:
            return
        pool.eval_kwargs.update(baseline=baseline, facts=facts)

        def record(path: Path, v: Verdict) -> None:
            with self.record_lock:  # one append at a time to the run's log
                self.emit("verdict", f"verdict-{paths[path]}", candidate=paths[path], **verdict_record(v))

        pool.evaluate_many(self.problem, list(paths), on_done=record, should_stop=self.should_stop)
        self.copy_duplicate_verdicts()

    def run_round(self, r: int, pool: EvalPool, baseline: dict[str, Any], facts: dict[str, Any]) -> None:
        ctx = self.context(r)
        ideas = [e for e in self.store.events("idea") if e["round"] == r]
        if not ideas:
            specs = list(self.proposers)
            for n, spec in enumerate(specs):  # the round's K ideas, shared among the models
                k = self.p.ideas // len(specs) + (1 if n < self.p.ideas % len(specs) else 0)
                if k == 0:
                    continue
                for idea in self.proposers[spec].ideas(ctx, k):
                    j = len([e for e in self.store.events("idea") if e["round"] == r])
                    self.emit("idea", f"r{r}-i{j}", round=r, text=idea.text, model=spec, data=idea.data,
                              usage=idea.usage, failed=bool(idea.data.get("failed")))
            ideas = [e for e in self.store.events("idea") if e["round"] == r]
        for j, ev in enumerate(ideas):
            if ev.get("failed"):
                continue
            idea = Idea(ev["text"], ev["model"], ev.get("data") or {})
            parent = next((b for b in ctx.best if b["id"] == idea.data.get("seed")), None) or \
                (ctx.best[j % len(ctx.best)] if ctx.best else None)
            for m in range(self.p.impls):
                cid = f"r{r}-i{j}-m{m}"
                if self.store.has(f"cand-{cid}"):
                    continue
                impl = self.proposers[ev["model"]].implement(ctx, idea, parent, m)
                self.add_candidate(cid, impl.source, round=r, idea=ev["id"], model=ev["model"],
                                   parent=parent["id"] if parent else None, usage=impl.usage, error=impl.error)
                if impl.source:
                    ctx.tried.add(source_hash(impl.source))
        self.judge_pending(pool, baseline, facts)
        for attempt in range(self.p.repairs):
            self.repair_round(r, attempt, ctx)
            self.judge_pending(pool, baseline, facts)

    def repair_round(self, r: int, attempt: int, ctx: Context) -> None:
        verdicts = self.verdicts()
        for c in self.candidates(r):
            v = verdicts.get(c["candidate"])
            proposer = self.proposers.get(c.get("model", ""))
            if v is None or v["status"] not in REPAIRABLE or isinstance(proposer, Tuner) or proposer is None:
                continue
            if c["candidate"].count("-fix") != attempt:
                continue
            cid = f"{c['candidate'].split('-fix')[0]}-fix{attempt + 1}"
            if self.store.has(f"cand-{cid}"):
                continue
            report = v.get("build_log") or "\n".join(v.get("reasons", []))
            impl = proposer.repair(ctx, self.store.candidate_path(c["candidate"]).read_text(), v["status"], report)
            self.add_candidate(cid, impl.source, round=r, idea=c.get("idea"), model=c["model"], parent=c.get("parent"),
                               repair_of=c["candidate"], usage=impl.usage, error=impl.error)

    def run(self) -> RunStore:
        self.setup()
        baseline = self.store.get("baseline") or {}
        facts = (self.store.get("facts") or {}).get("facts", {})
        pool = make_pool(self.p, self.address)
        for path in self.problem.seeds():
            self.add_candidate(f"r0-{path.stem}", path.read_text(), round=0, idea=None, model="seed", parent=None)
        self.judge_pending(pool, baseline, facts)
        self.close_round(0)
        for r in range(1, self.p.rounds + 1):
            if self.store.has(f"round-{r}"):
                continue
            if why := self.over_budget():
                self.emit("stopped", f"stopped-{r}", reason=why)
                break
            self.run_round(r, pool, baseline, facts)
            self.close_round(r)
        getattr(pool, "close", lambda: None)()  # a Ray pool gives its judges back (they also die with this process)
        self.emit("end", f"end-{len(self.store.events('start'))}", best=(self.best(1) or [{}])[0].get("id"))
        return self.store

    def close_round(self, r: int) -> None:
        best = self.best(1)
        if best:
            self.store.save_best(best[0]["id"], {k: v for k, v in best[0].items() if k != "source"})
        self.emit("round", f"round-{r}", round=r, best=best[0]["id"] if best else None,
                  best_ms=best[0]["ms"] if best else None,
                  best_speedup_eager=best[0].get("speedup_eager") if best else None,
                  best_speedup_compile=best[0].get("speedup_compile") if best else None,
                  candidates=len(self.candidates(r)))


def run_search(params: SearchParams, run_id: str | None = None, runs_dir: str | Path | None = None,
               on_event: Callable[[dict[str, Any]], None] | None = None,
               should_stop: Callable[[], bool] | None = None, address: str | None = None) -> RunStore:
    return Search(params, run_id, runs_dir, on_event, should_stop, address).run()
