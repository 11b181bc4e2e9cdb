"""Judging on a Ray cluster: the same interface as `workbench.pool.EvalPool`, over many machines.

    pool = RayEvalPool("HEAD_IP:6379", "cuda", trials=4, samples=30)
    verdicts = pool.evaluate_many(problem, paths, on_done=record)

Placement:
- one judge actor per GPU of the cluster (`num_gpus=1`, so two timings never share a GPU; Ray
  sets CUDA_VISIBLE_DEVICES, so inside the actor its GPU is `cuda:0`); on the cpu target one
  judge per node (`num_cpus=1`, `num_gpus=0`);
- each candidate is built by a Ray task pinned to the node of the judge that will time it, while
  that judge times an earlier one. Builds stay on the judging node because the binary must match
  it (torch, CUDA, the GPU's arch, which the actor reports) and nodes share no filesystem, so the
  judge's worker finds the build in that node's own cache. A lost build costs nothing but time:
  the worker builds whatever it does not find;
- the problem's and each candidate's source travel by value, the workbench code as the job's
  `py_modules`; verdicts come back to the driver, which alone calls on_done (and so alone writes
  the run store: no cross-machine locking).

Fault tolerance is the driver's: a judge that dies (its node killed, its process gone) has every
candidate it held put back in the queue for the judges left, and a replacement actor is asked
for; each candidate's verdict is delivered exactly once. Ray is imported only in this module.
"""
from __future__ import annotations

import os
import platform
import shutil
import tempfile
import threading
import time
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from workbench.judge import Verdict
from workbench.problem import Problem

PACKAGE_DIR = Path(__file__).resolve().parent
MAX_TRIES = 3  # judge calls per candidate before a system failure becomes its verdict


class Judge:
    """A Ray actor that judges candidates on its node's device (made remote in `_remote`)."""

    def __init__(self, target: str):
        from workbench import build

        self.target = target
        self.dir = Path(tempfile.mkdtemp(prefix="workbench-ray-"))
        self.problems: dict[tuple[str, str], Problem] = {}
        self.calls = 0
        if target == "cuda":
            build.target_arch()  # this GPU's arch, inherited by the worker and reported to the builds

    def where(self) -> dict[str, Any]:
        import ray
        import torch

        gpus = ray.get_gpu_ids()
        return {"node_id": ray.get_runtime_context().get_node_id(), "node": platform.node(),
                "device_index": _int_or_str(gpus[0]) if gpus else 0,
                "device_name": torch.cuda.get_device_name(0) if self.target == "cuda" else "cpu",
                "arch": os.environ.get("TORCH_CUDA_ARCH_LIST", ""), "pid": os.getpid()}

    def _problem(self, name: str, source: str) -> Problem:
        from workbench.problem import load_problem

        key = (name, source)
        if key not in self.problems:  # <dir>/<name>/reference.py keeps the problem's name
            path = self.dir / "problems" / f"{len(self.problems)}" / name / "reference.py"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(source)
            self.problems[key] = load_problem(path, target=self.target)  # sized for the target, as the driver's
        return self.problems[key]

    def judge(self, problem_name: str, problem_source: str, filename: str, source: str,
              eval_kwargs: dict[str, Any]) -> Verdict:
        from workbench.judge import evaluate

        problem = self._problem(problem_name, problem_source)
        self.calls += 1
        path = self.dir / "candidates" / str(self.calls) / filename
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        try:
            return evaluate(problem, path, target=self.target, device_index=0, **eval_kwargs)
        except Exception as e:  # the judge itself failed: a verdict that says so, as EvalPool does
            return Verdict(problem.name, str(path), self.target, status="error",
                           reasons=[f"error: judge failed: {type(e).__name__}: {e}"])
        finally:
            shutil.rmtree(path.parent, ignore_errors=True)


def build_on_node(filename: str, source: str, arch: str, timeout_s: float) -> dict[str, Any]:
    """A Ray task: build one candidate into this node's build cache (the judge here will find it)."""
    from workbench.pool import prebuild

    if arch:
        os.environ["TORCH_CUDA_ARCH_LIST"] = arch  # the judge's GPU; this task sees none
    d = Path(tempfile.mkdtemp(prefix="workbench-ray-build-"))
    try:
        (d / filename).write_text(source)
        return prebuild(d / filename, timeout_s)
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _int_or_str(x: Any) -> int | str:
    try:
        return int(x)
    except (TypeError, ValueError):
        return str(x)


def _cancel(ref: Any) -> None:
    import ray

    try:
        ray.cancel(ref)
    except Exception:  # finished or gone meanwhile: nothing to cancel
        pass


_REMOTE: dict[str, Any] = {}


def _remote() -> dict[str, Any]:
    import ray

    if not _REMOTE:
        _REMOTE["Judge"] = ray.remote(Judge)
        _REMOTE["build"] = ray.remote(build_on_node)
    return _REMOTE


@dataclass
class _Job:
    path: Path
    future: Future
    filename: str = ""
    source: str = ""
    build: Any = None  # the build task's ref, None once it finished
    build_since: float = 0.0
    tries: int = 0


@dataclass
class _Slot:
    """One judge actor and the candidates given to it, in order; the first may be judging."""
    actor: Any
    ready: Any  # the where() ref until it answers
    info: dict[str, Any] = field(default_factory=dict)
    jobs: deque = field(default_factory=deque)
    judging: Any = None  # ref of the judge call in flight


class RayEvalPool:
    """EvalPool's interface on a Ray cluster; see the module docstring for where work runs."""

    def __init__(self, address: str | None, target: str, judges: int | None = None, build_timeout_s: float | None = None,
                 lookahead: int = 3, build_wait_s: float = 300.0, wait_for_judges_s: float = 600.0,
                 ship_code: bool = True, **eval_kwargs: Any):
        if target not in ("cuda", "cpu"):
            raise ValueError(f"unknown target {target!r}: cuda or cpu")
        import ray

        if not ray.is_initialized():
            env = {"py_modules": [str(PACKAGE_DIR)], "excludes": ["__pycache__"]} if ship_code else None
            local = {} if address else {"include_dashboard": False}  # no address: a one-machine cluster
            try:
                ray.init(address=address, runtime_env=env, log_to_driver=False, **local)
            except ConnectionError as e:
                raise RuntimeError(f"cannot reach a Ray cluster at {address}: {e} "
                                   f"(start one with `ray start --head`, see docs/distributed.md)") from e
        from workbench import build

        self.target = target
        self.build_timeout_s = build.DEFAULT_TIMEOUT_S if build_timeout_s is None else build_timeout_s
        self.lookahead = max(1, lookahead)  # candidates held per judge: one judged, the rest building
        self.build_wait_s = build_wait_s  # an idle judge waits this long for a build, then builds itself
        self.wait_for_judges_s = wait_for_judges_s
        self.eval_kwargs = eval_kwargs
        self.requeued: list[str] = []  # candidates handed back when their judge died (tests read it)
        self.start_failures = 0
        self.dead_nodes: set[str] = set()  # nodes a judge died on: no CPU judge is placed there again
        self.slots: list[_Slot] = []
        alive = [n for n in ray.nodes() if n.get("Alive")]
        if target == "cuda":
            gpus = int(sum(n["Resources"].get("GPU", 0) for n in alive))
            if gpus == 0:
                raise RuntimeError("the Ray cluster has no GPU; start GPU nodes with `ray start` or use --target cpu")
            for _ in range(judges or gpus):
                self._spawn()
        else:  # one judge pinned to each node (up to `judges`)
            for n in [n for n in alive if n["Resources"].get("CPU", 0) >= 1][:judges]:
                self._spawn(n["NodeID"])
        if not self.slots:
            raise RuntimeError("the Ray cluster has no node with a CPU to judge on")

    def _spawn(self, node_id: str | None = None) -> _Slot:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        judge_cls = _remote()["Judge"]
        if self.target == "cuda":
            actor = judge_cls.options(num_gpus=1, num_cpus=1).remote(self.target)
        else:
            where = NodeAffinitySchedulingStrategy(node_id, soft=False) if node_id else "SPREAD"
            actor = judge_cls.options(num_gpus=0, num_cpus=1, scheduling_strategy=where).remote(self.target)
        slot = _Slot(actor, actor.where.remote())
        self.slots.append(slot)
        return slot

    def replace(self) -> None:
        """Ask for a judge in place of a dead one. A GPU judge goes wherever Ray finds a free GPU; a
        CPU judge only to a node without one, so the CPU a node keeps for its builds stays free."""
        import ray

        if self.target == "cuda":
            self._spawn()
            return
        if any(not s.info for s in self.slots):
            return  # one is still starting, place unknown: do not risk two on a node
        taken = {s.info["node_id"] for s in self.slots} | self.dead_nodes  # Ray may not know of a death yet
        free = [n["NodeID"] for n in ray.nodes() if n.get("Alive") and n["Resources"].get("CPU", 0) >= 1
                and n["NodeID"] not in taken]
        if free:
            self._spawn(free[0])

    def ready(self, timeout_s: float = 300.0) -> list[dict[str, Any]]:
        """Wait until every judge asked for has started (or the time is up); where each one runs."""
        import ray

        deadline = time.monotonic() + timeout_s
        for s in list(self.slots):
            if s.ready is None:
                continue
            try:
                s.info = ray.get(s.ready, timeout=max(0.0, deadline - time.monotonic()))
                s.ready = None
            except ray.exceptions.GetTimeoutError:
                break
            except ray.exceptions.RayError:
                self.slots.remove(s)
        return [s.info for s in self.slots if s.info]

    @property
    def devices(self) -> list[str]:
        """Where each ready judge runs, as node:device (the local pool lists device indices)."""
        return [f"{s.info['node']}:{s.info['device_index']}" for s in self.slots if s.info]

    def close(self) -> None:
        import ray

        for s in self.slots:
            ray.kill(s.actor, no_restart=True)
        self.slots.clear()

    def evaluate_many(self, problem: Problem, paths: list[Path],
                      on_done: Callable[[Path, Verdict], None] | None = None,
                      should_stop: Callable[[], bool] | None = None) -> dict[Path, Verdict]:
        """Judge every path; calls on_done(path, verdict) as each finishes, from one driver thread."""
        with self.session(problem, on_done, should_stop) as s:
            futures = {Path(p): s.submit(Path(p)) for p in paths}
            s.wait()
        return {p: v for p, f in futures.items() if (v := f.result()) is not None}

    def session(self, problem: Problem, on_done: Callable[[Path, Verdict], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> "RaySession":
        """A streaming batch: submit(path) -> Future[Verdict] any time, wait() for all of them."""
        return RaySession(self, problem, on_done, should_stop)


class RaySession:
    """One driver thread dispatches to the judges and collects their verdicts."""

    def __init__(self, pool: RayEvalPool, problem: Problem, on_done: Callable[[Path, Verdict], None] | None,
                 should_stop: Callable[[], bool] | None):
        self.pool, self.problem = pool, problem
        self.on_done, self.should_stop = on_done, should_stop
        self.todo: deque[_Job] = deque()
        self.jobs: list[_Job] = []
        self.results: dict[Path, Verdict] = {}
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.closing = False
        self.abandon = False
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, name="ray-dispatch", daemon=True)
        self.thread.start()

    def __enter__(self) -> "RaySession":
        return self

    def __exit__(self, *exc: Any) -> None:
        if exc[0] is not None:  # leaving on an error: stop dispatching, do not wait for the queue
            self.abandon = True
        self.close()

    def submit(self, path: Path) -> Future:
        """The candidate's verdict to come (None if the search stops before it is judged)."""
        path = Path(path)
        job = _Job(path, Future(), path.name, path.read_text())  # read here: the source travels by value
        with self.lock:
            self.jobs.append(job)
            self.todo.append(job)
        self.wake.set()
        return job.future

    def wait(self) -> dict[Path, Verdict]:
        """Until every candidate submitted so far (and any submitted meanwhile) has its verdict."""
        while pending := [j for j in list(self.jobs) if not j.future.done()]:
            for job in pending:
                job.future.result()  # raises what the dispatcher could not survive
        return dict(self.results)

    def close(self) -> None:
        self.closing = True
        self.wake.set()
        self.thread.join()

    # -- the dispatcher ------------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            self._dispatch()
        except BaseException as e:  # noqa: BLE001 - every waiting future must hear of it
            self.error = e
            for job in self.jobs:
                if not job.future.done():
                    job.future.set_exception(e)

    def _open(self) -> list[_Job]:
        return [j for j in self.jobs if not j.future.done()]

    def _dispatch(self) -> None:
        import ray

        pool = self.pool
        no_judge_since: float | None = None
        while True:
            if self.abandon or (self.closing and not self._open()):
                return
            self._stop_if_asked()
            self._assign()
            refs = {}
            for s in pool.slots:
                if s.ready is not None:
                    refs[s.ready] = ("ready", s, None)
                if s.judging is not None:
                    refs[s.judging] = ("judge", s, s.jobs[0])
                for j in s.jobs:
                    if j.build is not None:
                        refs[j.build] = ("build", s, j)
            if self.todo and not any(s.info for s in pool.slots):
                no_judge_since = no_judge_since or time.monotonic()
                if time.monotonic() - no_judge_since > pool.wait_for_judges_s:
                    raise RuntimeError(f"no Ray judge came up within {pool.wait_for_judges_s:g} s; "
                                       f"{len(self._open())} candidate(s) left unjudged (resume the run to judge them)")
            else:
                no_judge_since = None
            if not refs:
                self.wake.wait(0.2)
                self.wake.clear()
                continue
            done, _ = ray.wait(list(refs), num_returns=1, timeout=0.2)
            for ref in done:
                kind, slot, job = refs[ref]
                if slot not in pool.slots:
                    continue  # its judge died while handling an earlier ref of this batch
                getattr(self, f"_{kind}_done")(ref, slot, job)

    def _stop_if_asked(self) -> None:
        if self.should_stop is None or not self.should_stop():
            return
        with self.lock:
            waiting, self.todo = list(self.todo), deque()
        for job in waiting:  # never handed to a judge: not judged, not recorded (a resumed search judges it)
            job.future.set_result(None)

    def _assign(self) -> None:
        """Give queued candidates to ready judges in turn (starting their builds on the judge's node),
        and each idle judge its next built candidate."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        build = _remote()["build"]
        ready = [s for s in self.pool.slots if s.info]
        for depth in range(1, self.pool.lookahead + 1):  # round robin: a small batch spreads over judges
            for s in ready:
                if len(s.jobs) >= depth:
                    continue
                with self.lock:
                    if not self.todo:
                        break
                    job = self.todo.popleft()
                job.build = build.options(
                    num_cpus=1, max_retries=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(s.info["node_id"], soft=False),
                ).remote(job.filename, job.source, s.info["arch"], self.pool.build_timeout_s)
                job.build_since = time.monotonic()
                s.jobs.append(job)
        for s in ready:
            if s.judging is not None or not s.jobs:
                continue
            job = s.jobs[0]
            if job.build is not None and time.monotonic() - job.build_since > self.pool.build_wait_s:
                _cancel(job.build)  # no CPU came free for it: the judge's worker builds it instead
                job.build = None
            if job.build is None:
                job.tries += 1
                s.judging = s.actor.judge.remote(self.problem.name, self.problem.source, job.filename, job.source,
                                                 dict(self.pool.eval_kwargs))

    def _ready_done(self, ref: Any, slot: _Slot, job: None) -> None:
        import ray

        try:
            slot.info = ray.get(ref)
            slot.ready = None
        except ray.exceptions.RayError as e:
            self.pool.start_failures += 1
            if not any(s.info for s in self.pool.slots) and self.pool.start_failures > 3:  # setup, not a lost node
                raise RuntimeError(f"Ray judges keep failing to start: {type(e).__name__}: {str(e)[:2000]}") from e
            self._lose(slot)

    def _build_done(self, ref: Any, slot: _Slot, job: _Job) -> None:
        job.build = None  # built or not: the judge's worker builds whatever is missing

    def _judge_done(self, ref: Any, slot: _Slot, job: _Job) -> None:
        import ray

        try:
            v = ray.get(ref)
        except ray.exceptions.RayActorError:  # the actor or its node is gone: hand its work back
            self._lose(slot)
            return
        except ray.exceptions.RayError as e:  # the system failed the call (not the candidate): try again
            slot.judging = None
            slot.jobs.popleft()
            if job.tries < MAX_TRIES:
                with self.lock:
                    self.todo.appendleft(job)
                self.pool.requeued.append(job.path.name)
                return
            v = Verdict(self.problem.name, str(job.path), self.pool.target, status="error",
                        reasons=[f"error: judge failed {job.tries} times, last on {slot.info.get('node')}: "
                                 f"{type(e).__name__}: {str(e)[:500]}"])
            self._deliver(job, v)
            return
        slot.judging = None
        slot.jobs.popleft()
        v.candidate = str(job.path)  # the driver's path, not the judge's temporary copy
        v.node = slot.info.get("node")
        v.node_id = slot.info.get("node_id")
        v.device_index = slot.info.get("device_index")
        v.device_name = slot.info.get("device_name")
        self._deliver(job, v)

    def _lose(self, slot: _Slot) -> None:
        """A judge died: its candidates go back to the front of the queue; ask for a replacement."""
        import ray

        self.pool.slots.remove(slot)
        if slot.info:
            self.pool.dead_nodes.add(slot.info["node_id"])
        failed = [j for j in slot.jobs if j.tries >= MAX_TRIES]  # it took its judge down every time: no loop
        with self.lock:
            for job in reversed(slot.jobs):
                job.build = None
                if job not in failed:
                    self.todo.appendleft(job)
                    self.pool.requeued.append(job.path.name)
        for job in failed:
            self._deliver(job, Verdict(self.problem.name, str(job.path), self.pool.target, status="error",
                                       reasons=[f"error: the judge died {job.tries} times judging this candidate"]))
        try:
            ray.kill(slot.actor, no_restart=True)
        except Exception:  # already gone with its node
            pass
        self.pool.replace()

    def _deliver(self, job: _Job, v: Verdict) -> None:
        if job.future.done():
            return
        self.results[job.path] = v
        try:
            if self.on_done is not None:
                self.on_done(job.path, v)
        except BaseException as e:  # noqa: BLE001 - the caller's callback failed: the caller hears it
            job.future.set_exception(e)
            return
        job.future.set_result(v)
