"""Runs many evaluations: builds in parallel on the CPU cores, judging on every local device.

Each candidate's extensions are found by `workbench.prebuild` in a confined process (its
module code is the candidate's) and compiled here, in the judge's process, many at once; the
candidate is then judged on the first free device while others still build. Judging is one
candidate per device at a time, so timings never share a GPU. A stop leaves candidates not yet
judged unrecorded, so a resumed search judges them. (workbench.ray_backend spreads the same
work over the machines of a Ray cluster.)
"""
from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable

import torch

from workbench import audit, build
from workbench.judge import Verdict, evaluate
from workbench.problem import Problem


def prebuild(path: Path, timeout_s: float) -> dict[str, Any]:
    """Build one candidate's extensions: found in a confined process, compiled here; never raises."""
    from workbench.worker_process import MAX_BUILDS_PER_LOAD, end_confined, new_scratch, spawn_confined

    try:
        if audit.scan_source(path.read_text()):
            return {"skipped": "rejected by the static scan; the judge will say why"}
    except OSError as e:
        return {"error": "error", "detail": str(e)}
    scratch = new_scratch("prebuild")
    try:
        proc, _ = spawn_confined([sys.executable, "-m", "workbench.prebuild", str(path.resolve())], scratch,
                                 subprocess.DEVNULL, subprocess.PIPE, subprocess.DEVNULL)
        try:
            out, _ = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"error": "timeout"}
        finally:
            end_confined(proc)
        lines = out.decode(errors="replace").strip().splitlines()
        found = json.loads(lines[-1]) if lines else {"error": "error", "detail": "prebuild printed nothing"}
    except (json.JSONDecodeError, OSError) as e:
        return {"error": "error", "detail": str(e)}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    builds = [build.build(build.spec_from_json(s), timeout_s=timeout_s).summary() for s in found.get("specs", [])[:MAX_BUILDS_PER_LOAD]]
    return {**found, "builds": builds}


def prebuild_all(paths: list[Path], timeout_s: float | None = None, workers: int | None = None) -> list[dict[str, Any]]:
    """Build every candidate at once (benchmarks do this before anything is timed)."""
    t = build.DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
    with ThreadPoolExecutor(workers or max(1, (os.cpu_count() or 2) - 2)) as ex:
        return list(ex.map(lambda p: prebuild(p, t), paths))


class EvalPool:
    def __init__(self, target: str, devices: list[int] | None = None, build_workers: int | None = None,
                 build_timeout_s: float | None = None, prebuilt: dict[Path, dict[str, Any]] | None = None,
                 **eval_kwargs: Any):
        self.target = target
        # prebuild() results of candidates already built (prebuild_all): not found and built again,
        # which costs a confined process's import of torch and the candidate (1-3 s) per candidate.
        self.prebuilt = prebuilt or {}
        if target == "cuda":
            build.target_arch()  # set TORCH_CUDA_ARCH_LIST once, before builders start
            devices = devices if devices is not None else list(range(torch.cuda.device_count()))
        self.devices = devices or [0]
        cores = os.cpu_count() or 2
        self.build_workers = build_workers or max(1, cores - len(self.devices) - 1)
        self.build_timeout_s = build.DEFAULT_TIMEOUT_S if build_timeout_s is None else build_timeout_s
        self.eval_kwargs = eval_kwargs
        # Called at judging time for the screening threshold (the search's B-th best); None: judge fully.
        self.screen: Callable[[], float | None] | None = None

    def session(self, problem: Problem, on_done: Callable[[Path, Verdict], None] | None = None,
                should_stop: Callable[[], bool] | None = None) -> "EvalSession":
        """A streaming judge: `with pool.session(problem) as s: fut = s.submit(path)`; each
        candidate is built as soon as it is submitted and judged on the first free device."""
        return EvalSession(self, problem, on_done, should_stop)

    def evaluate_many(self, problem: Problem, paths: list[Path],
                      on_done: Callable[[Path, Verdict], None] | None = None,
                      should_stop: Callable[[], bool] | None = None) -> dict[Path, Verdict]:
        """Judge every path; calls on_done(path, verdict) as each finishes (from pool threads)."""
        with self.session(problem, on_done, should_stop) as s:
            futures = {path: s.submit(path) for path in paths}
            s.wait()
        return {path: v for path, f in futures.items() if (v := f.result()) is not None}

    def judge_one(self, problem: Problem, path: Path, index: int,
                  should_stop: Callable[[], bool] | None) -> Verdict | None:
        """One verdict; None when the search stopped first (not judged, not recorded: a resumed
        search judges it)."""
        if should_stop is not None and should_stop():
            return None
        try:
            return evaluate(problem, path, target=self.target, device_index=index,
                            build_timeout_s=self.build_timeout_s, screen_ms=self.screen() if self.screen else None,
                            **self.eval_kwargs)
        except Exception as e:  # the judge itself failed: record it, keep going
            return Verdict(problem.name, str(path), self.target, status="error",
                           reasons=[f"error: judge failed: {type(e).__name__}: {e}"])


class EvalSession:
    """Builds on the CPU cores and judging on every device, fed one candidate at a time."""

    def __init__(self, pool: EvalPool, problem: Problem, on_done: Callable[[Path, Verdict], None] | None,
                 should_stop: Callable[[], bool] | None):
        self.pool, self.problem, self.on_done, self.should_stop = pool, problem, on_done, should_stop
        self.builders = ThreadPoolExecutor(pool.build_workers)
        self.ready: queue.Queue[tuple[Path, Future[Verdict | None], Future[dict[str, Any]]] | None] = queue.Queue()
        self.futures: list[Future[Verdict | None]] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._device_loop, args=(i,), daemon=True) for i in pool.devices]
        for t in self.threads:
            t.start()

    def submit(self, path: Path) -> Future[Verdict | None]:
        """The candidate's verdict to come (None if the search stops before it is judged)."""
        fut: Future[Verdict | None] = Future()
        with self.lock:
            self.futures.append(fut)
        known = self.pool.prebuilt.get(Path(path))
        if known is not None:
            built: Future[dict[str, Any]] = Future()
            built.set_result(known)
        else:
            built = self.builders.submit(prebuild, Path(path), self.pool.build_timeout_s)
        built.add_done_callback(lambda b: self.ready.put((Path(path), fut, b)))
        return fut

    def wait(self) -> None:
        """Until every candidate submitted so far (and any submitted meanwhile) has its verdict."""
        while True:
            with self.lock:
                pending = [f for f in self.futures if not f.done()]
            if not pending:
                return
            wait(pending)

    def _device_loop(self, index: int) -> None:
        while (item := self.ready.get()) is not None:
            path, fut, built = item
            v = self.pool.judge_one(self.problem, path, index, self.should_stop)
            if v is None:  # stopped before judging
                fut.set_result(None)
                continue
            # The build ran in the prebuild step (the judge then hits the cache): keep its record.
            v.prebuilt = built.result().get("builds", []) if built.exception() is None else []
            try:
                if self.on_done is not None:
                    self.on_done(path, v)
            except BaseException as e:  # the caller's hook failed: its waiter hears of it
                fut.set_exception(e)
            else:
                fut.set_result(v)

    def close(self) -> None:
        self.wait()
        for _ in self.threads:
            self.ready.put(None)
        for t in self.threads:
            t.join()
        self.builders.shutdown()

    def __enter__(self) -> "EvalSession":
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is not None:  # leaving on an error: stop feeding devices, do not wait for the queue
            for _ in self.threads:
                self.ready.put(None)
            self.builders.shutdown(wait=False, cancel_futures=True)
            return
        self.close()
