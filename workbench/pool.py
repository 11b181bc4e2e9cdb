"""Runs many evaluations: builds in parallel on the CPU cores, judging on every local device.

Each candidate is first built by `workbench.prebuild` in its own process (many at once), then
judged on the first free device. Judging is one candidate per device at a time, so timings
never share a GPU. (More than one machine would add a Ray backend here; one machine is what
the project has today.)
"""
from __future__ import annotations

import json
import os
import queue
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
    """Build one candidate's extensions in a throwaway process; never raises."""
    if audit.scan_source(path.read_text()):
        return {"skipped": "rejected by the static scan; the judge will say why"}
    try:
        p = subprocess.run([sys.executable, "-m", "workbench.prebuild", str(path)], capture_output=True,
                           timeout=timeout_s, start_new_session=True)
        line = p.stdout.decode(errors="replace").strip().splitlines()
        return json.loads(line[-1]) if line else {"error": "error", "detail": p.stderr.decode()[-2000:]}
    except subprocess.TimeoutExpired:
        return {"error": "timeout"}
    except (json.JSONDecodeError, OSError) as e:
        return {"error": "error", "detail": str(e)}


def prebuild_all(paths: list[Path], timeout_s: float = 600.0, workers: int | None = None) -> list[dict[str, Any]]:
    """Build every candidate at once (benchmarks do this before anything is timed)."""
    with ThreadPoolExecutor(workers or max(1, (os.cpu_count() or 2) - 2)) as ex:
        return list(ex.map(lambda p: prebuild(p, timeout_s), paths))


class EvalPool:
    def __init__(self, target: str, devices: list[int] | None = None, build_workers: int | None = None,
                 build_timeout_s: float = 600.0, **eval_kwargs: Any):
        self.target = target
        if target == "cuda":
            build.target_arch()  # set TORCH_CUDA_ARCH_LIST once, before builders start
            devices = devices if devices is not None else list(range(torch.cuda.device_count()))
        self.devices = devices or [0]
        cores = os.cpu_count() or 2
        self.build_workers = build_workers or max(1, cores - len(self.devices) - 1)
        self.build_timeout_s = build_timeout_s
        self.eval_kwargs = eval_kwargs

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
        return {path: f.result() for path, f in futures.items()}

    def judge_one(self, problem: Problem, path: Path, index: int,
                  should_stop: Callable[[], bool] | None) -> Verdict:
        try:
            if should_stop is not None and should_stop():
                return Verdict(problem.name, str(path), self.target, status="error",
                               reasons=["error: search stopped before this candidate was judged"])
            return evaluate(problem, path, target=self.target, device_index=index,
                            build_timeout_s=self.build_timeout_s, **self.eval_kwargs)
        except Exception as e:  # the judge itself failed: record it, keep going
            return Verdict(problem.name, str(path), self.target, status="error",
                           reasons=[f"error: judge failed: {type(e).__name__}: {e}"])


class EvalSession:
    """Builds on the CPU cores and judging on every device, fed one candidate at a time."""

    def __init__(self, pool: EvalPool, problem: Problem, on_done: Callable[[Path, Verdict], None] | None,
                 should_stop: Callable[[], bool] | None):
        self.pool, self.problem, self.on_done, self.should_stop = pool, problem, on_done, should_stop
        self.builders = ThreadPoolExecutor(pool.build_workers)
        self.ready: queue.Queue[tuple[Path, Future[Verdict], Future[dict[str, Any]]] | None] = queue.Queue()
        self.futures: list[Future[Verdict]] = []
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self._device_loop, args=(i,), daemon=True) for i in pool.devices]
        for t in self.threads:
            t.start()

    def submit(self, path: Path) -> Future[Verdict]:
        fut: Future[Verdict] = Future()
        with self.lock:
            self.futures.append(fut)
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
            # The build ran in the prebuild process (the judge then hits the cache): keep its record.
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
