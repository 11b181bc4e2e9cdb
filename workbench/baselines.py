"""What a candidate is measured against: eager and torch.compile times of the reference, by the
candidates' own protocol and clock, and the device's ceilings (copy bandwidth, matmul rates).

The reference is trusted code, so its workers need no calibration of the judge's clock; they
are still separate processes, so a reference's allocations and compiled code never share a
process with the judge.
"""
from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

import torch

from workbench.problem import Problem, load_problem, make_inputs, tensor_bytes
from workbench.timing import Stats, time_remote
from workbench.trace import timed_spans
from workbench.worker_process import WorkerDied, WorkerProcess, device_for, take_worker

WARMUP = 3


def time_reference(problem: Problem | str | Path, *, target: str = "cuda", compile: bool = True,
                   samples: int = 30, device_index: int = 0, timeout_s: float = 900.0) -> dict[str, Any]:
    """Eager (and torch.compile) timings of the reference, by the candidates' protocol, in one worker each."""
    problem = (problem if isinstance(problem, Problem) else load_problem(problem)).for_target(target)
    device = device_for(target, device_index)
    out: dict[str, Any] = {"device": None}
    for kind in ("eager", "compile") if compile else ("eager",):
        worker = take_worker(device, profile=False, confine=False)  # trusted code; a warm spare
        try:
            resp = worker.request({"op": "problem", "problem": str(problem.path), "reference": True,
                                   "compile": kind == "compile", "init_seed": 0, "template_seed": 0}, timeout_s=timeout_s)
            if "error" not in resp:  # warm up (torch.compile compiles here) before the profiler watches
                resp = time_remote(worker, 1, secrets.randbits(40), warmup=WARMUP, timeout_s=timeout_s)
            if "error" not in resp:
                worker.request({"op": "start_profiler"}, timeout_s=timeout_s)
                resp = time_remote(worker, samples, secrets.randbits(40), warmup=1, timeout_s=timeout_s)
            if "error" in resp:
                out[f"{kind}_error"] = resp.get("detail", resp["error"])[-2000:]
                continue
            calls = worker.request({"op": "finish"}, timeout_s=timeout_s).get("facts", {}).get("calls", [])
            spans = timed_spans(calls, resp.pop("sample_labels", []))
            if spans:
                resp["cupti"] = vars(Stats.of(spans))
                resp["ms"] = resp["cupti"]["median"]
                resp["method"] = "CUPTI span (first kernel start to last kernel end)"
            out[f"{kind}_ms"] = resp["ms"]
            out[kind] = resp
            out["device"] = resp["device"]
        except (TimeoutError, WorkerDied) as e:
            out[f"{kind}_error"] = f"{type(e).__name__}: {e}"
        finally:
            worker.kill()
    return out


def measure_facts(target: str = "cuda", device_index: int = 0, cache_dir: Path | None = None) -> dict[str, Any]:
    """Copy bandwidth and matmul rates of the device, measured in a worker once per machine and device."""
    from workbench.problem import REPO_ROOT
    from workbench.timing import LEAD_US, Timer

    device = device_for(target, device_index)
    name = torch.cuda.get_device_name(device_index) if target == "cuda" else "cpu"
    # The key names everything that decides the value: machine, device, flush style, spin lead.
    key = f"{os.uname().nodename}-{name.replace(' ', '_')}-{device_index}-flush_{Timer.FLUSH}-lead_{LEAD_US:g}"
    cache = (cache_dir or REPO_ROOT / "outputs" / "cache") / f"facts-{key}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    worker = WorkerProcess(device, profile=False, confine=False)
    try:
        facts = worker.request({"op": "facts"}, timeout_s=300).get("facts", {})
    finally:
        worker.kill()
    if facts:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(facts))
    return facts


def problem_bytes(problem: Problem) -> int:
    """Bytes a kernel must move at least: every input read once, every output written once.

    The output's size comes from running the reference on meta tensors (shapes only, no work).
    """
    ins = _cached_given(problem)
    try:
        with torch.device("meta"):
            model = problem.module.Model(*problem.init_inputs())
            out = model(*[x.to("meta") if isinstance(x, torch.Tensor) else x for x in ins])
    except Exception:  # an op without a meta kernel: count the inputs only
        return tensor_bytes(ins)
    return tensor_bytes(ins) + tensor_bytes(out)


_given_cache: dict[str, list[Any]] = {}


def _cached_given(problem: Problem) -> list[Any]:
    """The problem's inputs as meta tensors (shapes and dtypes only: no memory, no time)."""
    if problem.digest not in _given_cache:
        _given_cache[problem.digest] = make_inputs(problem, 0, "given", "meta")
    return _given_cache[problem.digest]


def main_dtype(problem: Problem) -> str:
    ts = [x for x in _cached_given(problem) if isinstance(x, torch.Tensor) and x.is_floating_point()]
    return str(ts[0].dtype) if ts else "torch.float32"
