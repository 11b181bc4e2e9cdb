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
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

import torch

from workbench import audit, build
from workbench.judge import Verdict, evaluate
from workbench.problem import Problem


def prebuild(path: Path, timeout_s: float) -> dict[str, Any]:
    """Build one candidate's extensions: found in a confined process, compiled here; never raises."""
    from workbench.worker_process import end_confined, new_scratch, spawn_confined

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
    builds = [build.build(build.spec_from_json(s), timeout_s=timeout_s).summary() for s in found.get("specs", [])[:8]]
    return {**found, "builds": builds}


def prebuild_all(paths: list[Path], timeout_s: float | None = None, workers: int | None = None) -> list[dict[str, Any]]:
    """Build every candidate at once (benchmarks do this before anything is timed)."""
    t = build.DEFAULT_TIMEOUT_S if timeout_s is None else timeout_s
    with ThreadPoolExecutor(workers or max(1, (os.cpu_count() or 2) - 2)) as ex:
        return list(ex.map(lambda p: prebuild(p, t), paths))


class EvalPool:
    def __init__(self, target: str, devices: list[int] | None = None, build_workers: int | None = None,
                 build_timeout_s: float | None = None, **eval_kwargs: Any):
        self.target = target
        if target == "cuda":
            build.target_arch()  # set TORCH_CUDA_ARCH_LIST once, before builders start
            devices = devices if devices is not None else list(range(torch.cuda.device_count()))
        self.devices = devices or [0]
        cores = os.cpu_count() or 2
        self.build_workers = build_workers or max(1, cores - len(self.devices) - 1)
        self.build_timeout_s = build.DEFAULT_TIMEOUT_S if build_timeout_s is None else build_timeout_s
        self.eval_kwargs = eval_kwargs

    def evaluate_many(self, problem: Problem, paths: list[Path],
                      on_done: Callable[[Path, Verdict], None] | None = None,
                      should_stop: Callable[[], bool] | None = None) -> dict[Path, Verdict]:
        """Judge every path; calls on_done(path, verdict) as each finishes (from pool threads)."""
        ready: queue.Queue[Path | None] = queue.Queue()
        results: dict[Path, Verdict] = {}
        lock = threading.Lock()

        def built(f: Future[dict[str, Any]], path: Path) -> None:
            ready.put(path)

        with ThreadPoolExecutor(self.build_workers) as builders:
            for path in paths:
                builders.submit(prebuild, path, self.build_timeout_s).add_done_callback(lambda f, p=path: built(f, p))

            def device_loop(index: int) -> None:
                while True:
                    with lock:
                        if len(results) + pending[0] + skipped[0] >= len(paths):
                            return
                        pending[0] += 1
                    path = ready.get()
                    if should_stop is not None and should_stop():
                        with lock:  # not judged, not recorded: a resumed search judges it
                            pending[0] -= 1
                            skipped[0] += 1
                        continue
                    try:
                        v = evaluate(problem, path, target=self.target, device_index=index,
                                     build_timeout_s=self.build_timeout_s, **self.eval_kwargs)
                    except Exception as e:  # the judge itself failed: record it, keep going
                        v = Verdict(problem.name, str(path), self.target, status="error",
                                    reasons=[f"error: judge failed: {type(e).__name__}: {e}"])
                    with lock:
                        results[path] = v
                        pending[0] -= 1
                    if on_done is not None:
                        on_done(path, v)

            pending, skipped = [0], [0]
            threads = [threading.Thread(target=device_loop, args=(i,), daemon=True) for i in self.devices]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        return results
