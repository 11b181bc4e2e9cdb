"""The round loop: ideas -> implementations -> evaluation -> the best seed the next round.

Round 0 judges the problem's own seed kernels. Each later round asks every model for its share
of K ideas at once (conditioned on every earlier implementation's outcome, on the best kernels
and on profiler counters of them); each idea's M implementation calls start as soon as the idea
exists, each is built and judged as soon as its source exists (`EvalPool.session`), and each
failure's repair call starts as soon as its verdict asks for one. `concurrency` caps the calls
in flight per model. The best B correct kernels seed the next round.

The run's typed state (`RunStore.state`) is what every step plans from: a killed run resumes
where it stopped (calls, ideas, sources and verdicts already recorded are reused, never redone
or recorded twice), and a replay gets each call's reply from another run by its place.
"""
from __future__ import annotations

import math
import os
import platform
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable

from workbench import prompts
from workbench.params import RESUME_FREE, SearchParams
from workbench.judge import Verdict, measure_facts, time_reference
from workbench.pool import EvalPool
from workbench.problem import Problem, load_problem
from workbench.proposers.proposal import Context, Idea, Implementation, Proposer
from workbench.proposers.tuner import Tuner, source_hash
from workbench.store import CallRecord, CandidateRecord, RunError, RunStore, VerdictRecord, problem_path, problem_ref

REPAIRABLE = {"build_error", "incorrect", "error"}
# Candidates of a round left to judge when the next round starts, before any build and judge times are known.
LOOKAHEAD = 4
class ModelsUnreachable(RuntimeError):
    """A model could not be reached or authenticated before the search started."""


def make_proposer(spec: str, p: SearchParams, book: Any) -> Proposer:
    if spec == "tuner":
        return Tuner(p.tuner_seed)
    from workbench.models import make_client
    from workbench.proposers.llm import ModelProposer

    client = make_client(spec, base_url=p.base_url, timeout_s=p.call_timeout_s, max_attempts=p.call_attempts)
    return ModelProposer(client, max_output_tokens=p.max_output_tokens, concurrency=p.concurrency, book=book,
                         name=spec)


def make_pool(params: SearchParams, address: str | None = None) -> Any:
    """The judging pool: every local device, or a Ray cluster when an address is given (or set in
    WORKBENCH_RAY_ADDRESS, which is how the batch passes it to its notebooks)."""
    kwargs = dict(trials=params.trials, samples=params.samples, timeout_s=params.timeout_s, policy=params.policy)
    address = address or os.environ.get("WORKBENCH_RAY_ADDRESS")
    if address:
        from workbench.ray_backend import RayEvalPool

        return RayEvalPool(address, params.target, **kwargs)
    return EvalPool(params.target, **kwargs)


def verdict_record(v: Verdict) -> dict[str, Any]:
    sp = v.speedups()
    timing = v.timing or {}
    resources = [r for b in v.builds for r in b.get("resources", [])]
    prebuilt = getattr(v, "prebuilt", None) or []  # set by the pool (its prebuild step), not a Verdict field
    return {"candidate_path": v.candidate, "status": v.status, "codes": sorted(v.codes), "reasons": v.reasons[:12],
            "ms": v.ms, "speedup_eager": sp["eager"], "speedup_compile": sp["compile"],
            "roofline_fraction": timing.get("roofline_fraction"),
            "timing": {k: timing.get(k) for k in ("events", "wall", "samples", "device", "method")} if timing else None,
            # Builds happen in the pool's prebuild process, so the judge's own are cache hits: count those first.
            "build_seconds": max(sum(b.get("seconds") or 0 for b in prebuilt), sum(b.get("seconds") or 0 for b in v.builds)),
            "build_cached": all(b.get("cached") for b in (prebuilt or v.builds)) if (prebuilt or v.builds) else None,
            "build_resources": [{k: r.get(k) for k in ("kernel", "registers", "spill_stores", "spill_loads")}
                                for r in resources][:16],
            "build_log": v.build_log[-6000:] if v.status == "build_error" else "",
            "tolerance": v.tolerance, "seconds": v.seconds,
            "stage": v.stage, "policy": v.policy, "device_index": v.device_index, "device_name": v.device_name,
            "phases": v.phases, "degenerate": v.degenerate,
            "node": getattr(v, "node", None) or platform.node()}  # the Ray backend names the judging node


class Tasks:
    """Threads that may start more threads; `join` waits for all of them and re-raises the first error."""

    def __init__(self) -> None:
        self.threads: list[threading.Thread] = []
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()

    def spawn(self, fn: Callable[..., None], *args: Any) -> None:
        def run() -> None:
            try:
                fn(*args)
            except BaseException as e:  # noqa: BLE001 (handed to join)
                with self.lock:
                    self.errors.append(e)

        t = threading.Thread(target=run, daemon=True)
        with self.lock:
            self.threads.append(t)
        t.start()

    def join(self) -> None:
        while True:
            with self.lock:
                alive = [t for t in self.threads if t.is_alive()]
            if not alive:
                break
            for t in alive:
                t.join()
        if self.errors:
            raise self.errors[0]

    def done(self) -> bool:
        with self.lock:
            return not any(t.is_alive() for t in self.threads)


class BatchSession:
    """A session over a pool that only has `evaluate_many` (a backend without streaming): each
    submit judges one candidate, one at a time."""

    def __init__(self, pool: Any, problem: Problem, should_stop: Callable[[], bool]):
        self.pool, self.problem, self.should_stop = pool, problem, should_stop
        self.lock = threading.Lock()

    def submit(self, path: Path) -> Future[Verdict | None]:
        fut: Future[Verdict | None] = Future()
        done: dict[Path, Verdict] = {}
        with self.lock:
            try:
                got = self.pool.evaluate_many(self.problem, [path], on_done=done.__setitem__,
                                              should_stop=self.should_stop)
            except BaseException as e:
                fut.set_exception(e)
                return fut
        fut.set_result(done.get(path) or (got or {}).get(path))  # None: stopped before it was judged
        return fut

    def __enter__(self) -> "BatchSession":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class Search:
    def __init__(self, params: SearchParams, run_id: str | None = None, runs_dir: str | Path | None = None,
                 on_event: Callable[[dict[str, Any]], None] | None = None,
                 should_stop: Callable[[], bool] | None = None, replay: str | Path | None = None,
                 new_run_on_change: bool = False, address: str | None = None):
        """`replay`: a run id (under runs_dir) or run directory whose recorded replies this run reuses
        by place, with no network. `new_run_on_change`: a changed problem starts a new run instead
        of refusing the resume."""
        from workbench.proposers.llm import CallBook

        self.p = params
        self.address = address  # a Ray cluster to judge on (None: this machine's devices)
        self.problem: Problem = load_problem(problem_path(params.problem), target=params.target)
        record = {**asdict(params), "problem": problem_ref(params.problem)}
        for k in RESUME_FREE:
            record.pop(k, None)
        self.replay = None
        if replay is not None:
            rdir = Path(replay) if Path(replay).is_dir() else Path(runs_dir or _runs_dir()) / str(replay)
            if not (rdir / "params.json").is_file():
                raise RunError(f"--replay {replay}: no recorded run at {rdir}")
            self.replay = RunStore(rdir)
            record["replay_of"] = self.replay.run_id
        self.store = RunStore.open(run_id, record, runs_dir, problem_digest=self.problem.digest,
                                   new_run_on_change=new_run_on_change, free=RESUME_FREE)
        self.state = self.store.state
        self.on_event = on_event or (lambda ev: None)
        self.should_stop = should_stop or (lambda: False)
        self.book = CallBook(self.store, self.replay, on_failure=self._model_failed)
        try:
            self.proposers = {spec: make_proposer(spec, params, self.book) for spec in params.models}
        except BaseException:  # a bad spec: give the run back before saying so
            self.store.close()
            raise
        for ev in self.store.events("verdict"):  # a resumed run: what was judged, first
            self.tell_proposers(ev)
        self.session: Any = None
        self.lock = threading.RLock()
        self.verdict_waiters: dict[str, Future[VerdictRecord]] = {}
        self.failures_reported: set[str] = set()
        self.t0 = time.time()

    # -- the log ---------------------------------------------------------------------------------------
    def emit(self, event_type: str, event_id: str, **data: Any) -> dict[str, Any]:
        fresh = not self.store.has(event_id)
        ev = self.store.append(event_type, event_id, **data)
        if fresh:
            self.on_event(ev)
        return ev

    def notice(self, message: str) -> None:
        self.emit("notice", f"notice-{len(self.state.notices)}-{int(time.time() * 1e6)}", message=message)

    def _model_failed(self, rec: CallRecord) -> None:
        with self.lock:
            first = rec.model not in self.failures_reported
            self.failures_reported.add(rec.model)
        if first:
            self.notice(f"model {rec.model or '?'} failed at {rec.place}: {rec.error}")

    # -- what the search plans from ------------------------------------------------------------------
    def verdicts(self) -> dict[str, dict[str, Any]]:
        """Every recorded verdict event by candidate (the log's shape; `state` has the typed one)."""
        return {e["candidate"]: e for e in self.store.events("verdict")}

    def screen_threshold(self) -> float | None:
        """The time a candidate's short timing must beat to be judged fully: the B-th best so far, with
        a quarter's margin for the short timing's noise; None until B kernels are correct."""
        kept = [c.verdict.ms for c in self.state.correct()[: self.p.seeds] if c.verdict and c.verdict.ms]
        return 1.25 * kept[-1] if len(kept) >= self.p.seeds else None

    def best(self, n: int) -> list[dict[str, Any]]:
        return [{"id": c.id, "source": self.store.candidate_path(c.id).read_text(), "ms": c.verdict.ms,
                 "speedup_eager": c.verdict.speedup_eager, "speedup_compile": c.verdict.speedup_compile,
                 "roofline_fraction": c.verdict.roofline_fraction}
                for c in self.state.correct()[:n] if c.verdict]

    def history(self) -> list[dict[str, Any]]:
        """Every idea with the outcome of each of its implementations, repairs included."""
        out = []
        for idea in list(self.state.ideas.values()):
            if not idea.text:
                continue
            cands = sorted((c for c in list(self.state.candidates.values()) if c.idea == idea.id), key=lambda c: c.id)
            results = []
            for c in cands:
                v = c.verdict
                text = prompts.outcome_text(v.status if v else None, v.ms if v else None,
                                            v.speedup_eager if v else None, v.reasons if v else None,
                                            v.build_log if v else "", c.error if c.failed else "")
                results.append({"candidate": c.id, "outcome": text})
            if not results:
                results = [{"candidate": "-", "outcome": "no implementation was made"}]
            ok = [c.verdict.speedup_eager for c in cands if c.verdict and c.verdict.status == "correct"
                  and c.verdict.speedup_eager]
            out.append({"round": idea.round, "idea": idea.text, "model": idea.model, "results": results,
                        "speedup": max(ok) if ok else None})
        return out

    def context(self, round_: int) -> Context:
        tried = {c.hash for c in list(self.state.candidates.values()) if c.hash}
        prof = self.store.get(f"profile-r{round_ - 1}")
        return Context(self.problem, self.state.facts, round_, self.best(self.p.seeds), self.history(), tried,
                       target=self.p.target, profile=(prof or {}).get("text", ""))

    def over_budget(self) -> str | None:
        total = self.state.totals()["overall"]
        tokens = total["input_tokens"] + total["output_tokens"]
        judged = sum(1 for c in self.state.candidates.values() if c.verdict)
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

    # -- candidates and verdicts ------------------------------------------------------------------------
    def add_candidate(self, cid: str, impl: Implementation | str | None, **data: Any) -> CandidateRecord:
        """Record a candidate once (its source first); a repeated source is marked a duplicate."""
        with self.lock:
            if cid in self.state.candidates and self.store.has(f"cand-{cid}"):
                return self.state.candidates[cid]
            source = impl.source if isinstance(impl, Implementation) else impl
            error = impl.error if isinstance(impl, Implementation) else ""
            if source is None:
                self.emit("candidate", f"cand-{cid}", candidate=cid, failed=True, error=error, **data)
            else:
                h = source_hash(source)
                dup = next((c.id for c in list(self.state.candidates.values()) if c.hash == h and c.id != cid), None)
                self.store.save_source(cid, source)
                self.emit("candidate", f"cand-{cid}", candidate=cid, hash=h, duplicate_of=dup, **data)
            return self.state.candidates[cid]

    def _waiter(self, cid: str) -> Future[VerdictRecord]:
        with self.lock:
            fut = self.verdict_waiters.setdefault(cid, Future())
            c = self.state.candidates.get(cid)
            if c is not None and c.verdict is not None and not fut.done():
                fut.set_result(c.verdict)
            return fut

    def _record_verdict(self, cid: str, data: dict[str, Any]) -> VerdictRecord:
        ev = self.emit("verdict", f"verdict-{cid}", candidate=cid, **data)
        self.tell_proposers(ev)
        v = self.state.candidates[cid].verdict
        assert v is not None
        fut = self._waiter(cid)
        if not fut.done():
            fut.set_result(v)
        return v

    def judge(self, c: CandidateRecord) -> VerdictRecord:
        """The candidate's verdict: recorded, copied from the source it duplicates, or judged now."""
        if c.verdict is not None:
            return c.verdict
        if c.duplicate_of:  # same source: same verdict, no rerun
            waiter = self._waiter(c.duplicate_of)
            while True:
                try:
                    orig = waiter.result(timeout=1.0)
                    break
                except FutureTimeout:
                    if self.should_stop():  # its original may never be judged now
                        return VerdictRecord("stopped")
            return self._record_verdict(c.id, {**asdict(orig), "copied_from": c.duplicate_of})
        if self.should_stop():  # stopped: leave it unjudged, so a resume judges it
            return VerdictRecord("stopped")
        try:
            v = self.session.submit(self.store.candidate_path(c.id)).result()
        except BaseException as e:  # its duplicates, waiting on it, hear of it too
            waiter = self._waiter(c.id)
            if not waiter.done():
                waiter.set_exception(e)
            raise
        if v is None:  # the pool stopped before judging it: unrecorded, a resume judges it
            return VerdictRecord("stopped")
        return self._record_verdict(c.id, verdict_record(v))

    def tell_proposers(self, verdict_event: dict[str, Any]) -> None:
        """Proposers that learn from verdicts (the tuner's `observe`) hear of each one."""
        cid = verdict_event["candidate"]
        path = self.store.candidate_path(cid)
        for proposer in self.proposers.values():
            if path.is_file():
                proposer.observe(cid, path.read_text(), verdict_event)

    # -- steps ------------------------------------------------------------------------------------------
    def check_models(self) -> None:
        """Reach every model once before minutes go to the baseline and the seeds."""
        if self.replay is not None:
            return
        for spec, proposer in self.proposers.items():
            if proposer.offline:
                continue
            from workbench.models.base import ModelError

            try:
                warning = proposer.client.check()
            except ModelError as e:
                self.notice(f"model {spec} cannot be used: {e}")
                raise ModelsUnreachable(f"model {spec} cannot be used: {e}") from e
            if warning:
                self.notice(warning)

    def setup(self) -> None:
        self.emit("start", f"start-{len(self.store.events('start'))}", pid=os.getpid())
        for line in self.store.damage:
            self.notice(f"the log {self.store.events_path} is damaged: {line}; that work will be redone")
        self.check_models()
        if not self.store.has("facts"):
            self.emit("facts", "facts", facts=measure_facts(self.p.target))
        if not self.store.has("baseline"):
            self.emit("baseline", "baseline", **time_reference(self.problem, target=self.p.target,
                                                                  compile=self.p.compile_baseline))

    def run_seeds(self) -> None:
        tasks = Tasks()
        for path in self.problem.seeds():
            c = self.add_candidate(f"r0-{path.stem}", path.read_text(), round=0, idea=None, model="seed", parent=None)
            tasks.spawn(self.judge, c)
        tasks.join()

    def run_round(self, r: int, tasks: Tasks | None = None) -> None:
        """Plan round r and judge it in `tasks` (joined here when none is given). An offline proposer
        plans at once, so its whole round exists when this returns; a model's calls run in `tasks`."""
        ctx = self.context(r)
        specs = list(self.proposers)
        own = tasks is None
        tasks = tasks or Tasks()
        offset = 0
        for n, spec in enumerate(specs):  # the round's K ideas, shared among the models, all asked at once
            k = self.p.ideas // len(specs) + (1 if n < self.p.ideas % len(specs) else 0)
            if k and self.proposers[spec].offline:
                self.ideas_then_implementations(r, n, spec, k, offset, ctx, tasks)
            elif k:
                tasks.spawn(self.ideas_then_implementations, r, n, spec, k, offset, ctx, tasks)
            offset += k
        if own:
            tasks.join()

    def overlapping(self) -> bool:
        """Whether the next round may start while this one's last candidates are judged: only when every
        proposer is offline (a model's ideas are conditioned on the whole round) and no candidate budget
        must be kept exactly."""
        return self.p.overlap_rounds and self.p.max_candidates is None and \
            all(pr.offline for pr in self.proposers.values())

    def lookahead(self) -> int:
        """How many of a round's candidates may still await the judge when the next round starts: about
        as many as the judge gets through while the next round builds (median build over median judge
        seconds, from the verdicts so far, plus one for the build's finder process)."""
        vs = [c.verdict for c in list(self.state.candidates.values()) if c.round > 0 and c.verdict]
        builds = sorted(v.build_seconds for v in vs if v.build_seconds and not v.build_cached)
        judged = sorted(v.seconds for v in vs if v.seconds)
        if not builds or not judged:
            return LOOKAHEAD
        ratio = builds[len(builds) // 2] / max(judged[len(judged) // 2], 1e-3)
        return max(1, min(self.p.ideas * self.p.impls, math.ceil(ratio) + 1))

    def wait_nearly_judged(self, r: int, tasks: Tasks) -> None:
        """Until round r is judged, or has no more than `lookahead()` candidates left to judge."""
        while not tasks.done() and not self.should_stop():
            left = sum(1 for c in self.state.in_round(r) if not c.failed and c.verdict is None)
            if left <= self.lookahead():
                return
            time.sleep(0.05)

    def finish_rounds(self, open_rounds: list[tuple[int, Tasks]], keep: int) -> bool:
        """Join and close every open round but the last `keep`, oldest first; False when stopped (the
        unfinished rounds stay open in the log: a resume completes them)."""
        while len(open_rounds) > keep:
            r, tasks = open_rounds.pop(0)
            tasks.join()
            if self.should_stop():
                for _, rest in open_rounds:
                    rest.join()
                open_rounds.clear()
                self.emit("stopped", f"stopped-{r}", reason="stopped by the user")
                return False
            self.close_round(r)
        return True

    def ideas_then_implementations(self, r: int, n: int, spec: str, k: int, offset: int, ctx: Context,
                                   tasks: Tasks) -> None:
        proposer = self.proposers[spec]
        marker = f"ideas-r{r}-n{n}"
        if not self.store.has(marker):
            got = proposer.ideas(ctx, k) if proposer.offline else proposer.ideas(ctx, k, place=f"r{r}-ideas-{n}")
            for i, idea in enumerate(got[:k]):
                if idea.text:
                    self.emit("idea", f"r{r}-i{offset + i}", round=r, slot=n, text=idea.text, model=spec,
                              data=idea.data)
            failed = next((i.data.get("failed") for i in got if not i.text), None)
            self.emit("ideas", marker, round=r, slot=n, model=spec, count=sum(1 for i in got if i.text), failed=failed)
        ideas = [(int(i.id.rsplit("-i", 1)[1]), i) for i in list(self.state.ideas.values())
                 if i.round == r and i.model == spec and offset <= int(i.id.rsplit("-i", 1)[1]) < offset + k]
        for j, rec in sorted(ideas, key=lambda t: t[0]):
            idea = Idea(rec.text, rec.model, rec.data)
            parent = next((b for b in ctx.best if b["id"] == idea.data.get("seed")), None) or \
                (ctx.best[j % len(ctx.best)] if ctx.best else None)
            if not proposer.offline:
                for m in range(self.p.impls):
                    tasks.spawn(self.implementation_chain, r, j, m, rec.id, idea, parent, ctx)
            else:  # an offline proposer: instant, and each implementation must see the ones before it
                for m in range(self.p.impls):
                    cid = f"r{r}-i{j}-m{m}"
                    if cid not in self.state.candidates:
                        impl = proposer.implement(ctx, idea, parent, m)
                        self.add_candidate(cid, impl, round=r, idea=rec.id, model=spec,
                                           parent=parent["id"] if parent else None)
                        if impl.source:
                            ctx.tried.add(source_hash(impl.source))
                    c = self.state.candidates[cid]
                    if not c.failed:
                        tasks.spawn(self.judge, c)

    def implementation_chain(self, r: int, j: int, m: int, idea_id: str, idea: Idea, parent: dict[str, Any] | None,
                             ctx: Context) -> None:
        """One implementation of an idea: the call, its verdict, then repairs while the verdict asks."""
        proposer: Any = self.proposers[idea.model]
        cid = f"r{r}-i{j}-m{m}"
        c = self.state.candidates.get(cid)
        if c is None:
            if self.should_stop():
                return
            impl = proposer.implement(ctx, idea, parent, m, place=cid)
            c = self.add_candidate(cid, impl, round=r, idea=idea_id, model=idea.model,
                                   parent=parent["id"] if parent else None)
        for attempt in range(1, self.p.repairs + 1):
            if c.failed:
                return
            v = self.judge(c)
            if v.status not in REPAIRABLE or self.should_stop():
                return
            fix = f"{cid}-fix{attempt}"
            nxt = self.state.candidates.get(fix)
            if nxt is None:
                report = v.build_log or "\n".join(v.reasons)
                impl = proposer.repair(ctx, self.store.candidate_path(c.id).read_text(), v.status, report, place=fix)
                nxt = self.add_candidate(fix, impl, round=r, idea=idea_id, model=idea.model, parent=c.parent,
                                         repair_of=c.id)
            c = nxt
        if not c.failed:
            self.judge(c)

    def profile_round(self, r: int) -> None:
        """Counters of the kernels that seed round r+1, each profiled once, for its idea prompt."""
        if self.p.profile_kernels <= 0 or self.store.has(f"profile-r{r}"):
            return
        if all(pr.offline for pr in self.proposers.values()):  # no prompt to put it in: 5-10 s a round on the H200 for nothing
            return
        from workbench import profile_feedback as pf

        profiles = []
        for c in self.state.correct()[: self.p.profile_kernels]:
            ev = self.store.get(f"profile-{c.id}")
            if ev is None:
                verdict_ev = self.store.get(f"verdict-{c.id}") or {}
                prof = pf.profile_candidate(str(self.problem.path), c.id, self.store.candidate_path(c.id),
                                            self.p.target, verdict_ev)
                ev = self.emit("profile", f"profile-{c.id}", candidate=c.id, profile=asdict(prof))
            d = ev["profile"]
            profiles.append(pf.Profile(d["candidate"], d["tool"], [pf.KernelCounters(**k) for k in d["kernels"]],
                                       d.get("ms"), d.get("roofline_fraction"), d.get("error", ""), d.get("note", "")))
        if profiles:
            self.emit("profile", f"profile-r{r}", round=r, text=pf.feedback_text(profiles))

    def close_round(self, r: int) -> None:
        self.save_best()
        # The best of rounds 0..r: when rounds overlap, the next one's first verdicts are already in.
        best = next((c for c in self.state.correct() if c.round <= r), None)
        v = best.verdict if best else None
        self.emit("round", f"round-{r}", round=r, best=best.id if best else None, best_ms=v.ms if v else None,
                  best_speedup_eager=v.speedup_eager if v else None,
                  best_speedup_compile=v.speedup_compile if v else None,
                  candidates=len(self.state.in_round(r)))

    def save_best(self) -> list[dict[str, Any]]:
        """Write best.json; returns the best (as `best(1)`) for the caller's event."""
        best = self.best(1)
        record = {k: v for k, v in best[0].items() if k not in ("source", "id")} if best else {}
        self.store.save_best(best[0]["id"] if best else None, {**record, "totals": self.state.totals()})
        return best

    def run(self) -> RunStore:
        try:
            self.setup()
            pool = make_pool(self.p, self.address)
            pool.eval_kwargs.update(baseline=self.state.baseline, facts=self.state.facts)
            pool.screen = self.screen_threshold if self.p.screen else None
            streaming = hasattr(pool, "session")
            with (pool.session(self.problem, should_stop=self.should_stop) if streaming
                  else BatchSession(pool, self.problem, self.should_stop)) as session:
                self.session = session
                self.run_seeds()
                if self.should_stop():  # seeds left unjudged stay pending: a resume judges them
                    self.emit("stopped", "stopped-0", reason="stopped by the user")
                else:
                    self.close_round(0)
                open_rounds: list[tuple[int, Tasks]] = []  # rounds planned, not yet closed (two when overlapping)
                for r in range(1, self.p.rounds + 1) if not self.should_stop() else ():
                    if self.store.has(f"round-{r}"):
                        continue
                    if why := self.over_budget():
                        if self.finish_rounds(open_rounds, 0):
                            self.emit("stopped", f"stopped-{r}", reason=why)
                        break
                    self.profile_round(r - 1)
                    tasks = Tasks()
                    self.run_round(r, tasks)
                    open_rounds.append((r, tasks))
                    overlap = self.overlapping()
                    if overlap:  # the next round builds while this one's last candidates are judged
                        self.wait_nearly_judged(r, tasks)
                    if not self.finish_rounds(open_rounds, 1 if overlap else 0):
                        break
                self.finish_rounds(open_rounds, 0)
            getattr(pool, "close", lambda: None)()  # a Ray pool gives its judges back
            best = self.save_best()
            self.emit("end", f"end-{len(self.store.events('start'))}", best=best[0]["id"] if best else None,
                      totals=self.state.totals())
            return self.store
        finally:
            self.store.close()

    def model_outcome(self) -> str | None:
        """Why the models produced nothing, or None when they produced a candidate (or none was asked)."""
        specs = [s for s, pr in self.proposers.items() if not pr.offline]
        if not specs:
            return None
        made = [c for c in self.state.candidates.values() if c.model in specs and not c.failed]
        if made:
            return None
        calls = [c for c in self.state.calls.values() if c.model in specs or not c.model]
        failed = [c for c in calls if c.text is None]
        if failed:
            return f"{len(failed)} of {len(calls)} model calls failed; the first: {failed[0].error}"
        if calls:
            return f"the models answered {len(calls)} calls but no reply held usable ideas or code"
        return "no model call was made"


def _runs_dir() -> Path:
    from workbench.store import RUNS_DIR

    return RUNS_DIR


def run_search(params: SearchParams, run_id: str | None = None, runs_dir: str | Path | None = None,
               on_event: Callable[[dict[str, Any]], None] | None = None,
               should_stop: Callable[[], bool] | None = None, replay: str | Path | None = None,
               address: str | None = None) -> RunStore:
    return Search(params, run_id, runs_dir, on_event, should_stop, replay=replay, address=address).run()
