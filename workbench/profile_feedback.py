"""Profiler feedback for the next round's idea prompt: a few counters per kernel of the round's
best candidates, measured on one call.

With Nsight Compute on PATH (the GPU machine), each candidate runs once in a confined process
(workbench.sandbox, as in the judge: no secrets, no writes outside its scratch) under
`ncu --clock-control none --profile-from-start off --csv --metrics ...`; the runner below
warms the kernel up outside the profiled range and opens it (cudaProfilerStart) around one
call, so only that call's kernels are read. Without ncu, or on the cpu target, the torch
profiler gives each kernel's time and no counters. Registers and spills come from ptxas (the
build record), the roofline fraction from the judge's verdict. Failures never raise: the
prompt then says the profile is missing and why.

    python -m workbench.profile_feedback call <problem> <candidate.py> [--target cuda|cpu] [--torch]
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Nsight Compute metric -> what the prompt calls it.
NCU_METRICS = {
    "dram__throughput.avg.pct_of_peak_sustained_elapsed": "dram_pct",
    "sm__throughput.avg.pct_of_peak_sustained_elapsed": "sm_pct",
    "sm__warps_active.avg.pct_of_peak_sustained_active": "occupancy_pct",
    "launch__registers_per_thread": "registers",
    "gpu__time_duration.sum": "duration_us",
}
TIME_UNITS_US = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3,
                 "s": 1e6, "second": 1e6}
PROFILE_TIMEOUT_S = 300.0


@dataclass
class KernelCounters:
    name: str
    duration_us: float | None = None
    dram_pct: float | None = None
    sm_pct: float | None = None
    occupancy_pct: float | None = None
    registers: int | None = None
    spill_bytes: int | None = None  # ptxas spill stores + loads


@dataclass
class Profile:
    candidate: str
    tool: str  # "ncu", "torch" or "none"
    kernels: list[KernelCounters] = field(default_factory=list)
    ms: float | None = None
    roofline_fraction: float | None = None
    error: str = ""
    note: str = ""  # said beside the counters (a fallback from Nsight Compute to the torch profiler)


def _number(text: str) -> float | None:
    text = text.strip().replace(",", "")  # ncu prints thousands separators
    try:
        return float(text)
    except ValueError:
        return None


def parse_ncu_csv(text: str) -> list[KernelCounters]:
    """Kernels in launch order from `ncu --csv --metrics ...` output (its "details" page: one
    row per kernel and metric). Lines before the header (==PROF== notes, the program's own
    output) are skipped; unknown metrics are ignored."""
    lines = text.splitlines()
    start = next((i for i, ln in enumerate(lines) if ln.startswith('"ID"')), None)
    if start is None:
        return []
    kernels: dict[str, KernelCounters] = {}
    for row in csv.DictReader(io.StringIO("\n".join(lines[start:]))):
        metric, kid = row.get("Metric Name"), row.get("ID")
        if metric not in NCU_METRICS or kid is None:
            continue
        k = kernels.setdefault(kid, KernelCounters(row.get("Kernel Name") or "?"))
        value = _number(row.get("Metric Value") or "")
        if value is None:
            continue
        key = NCU_METRICS[metric]
        if key == "duration_us":
            value *= TIME_UNITS_US.get((row.get("Metric Unit") or "ns").strip().lower(), 1e-3)
        setattr(k, key, int(value) if key == "registers" else value)
    return list(kernels.values())


def _short(name: str) -> str:
    """A kernel's bare name: no return type, namespace, template or argument list."""
    head = name.split("(")[0].split("<")[0].strip()
    return (head.split()[-1].split("::")[-1] if head else name)[:60]


def add_build_resources(kernels: list[KernelCounters], resources: list[dict[str, Any]]) -> None:
    """Registers and spills from ptxas, matched by kernel name (mangled or not)."""
    for k in kernels:
        for r in resources:
            if r.get("kernel") and (_short(k.name) in r["kernel"] or r["kernel"] in k.name):
                k.spill_bytes = int(r.get("spill_stores") or 0) + int(r.get("spill_loads") or 0)
                if k.registers is None and r.get("registers") is not None:
                    k.registers = int(r["registers"])
                break


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.1f}%"


def feedback_text(profiles: list[Profile]) -> str:
    """The lines the idea prompt shows: per candidate, per kernel, the counters that were read."""
    lines = []
    for p in profiles:
        head = f"- {p.candidate}" + (f" ({p.ms:.4f} ms" if p.ms else " (") + \
            (f", {100 * p.roofline_fraction:.0f}% of the roofline)" if p.roofline_fraction else ")")
        if p.error or not p.kernels:
            lines.append(f"{head}: no profile ({p.error or 'no kernel launches recorded'})")
            continue
        tool = "Nsight Compute" if p.tool == "ncu" else "torch profiler (times only" + (f"; {p.note}" if p.note else "") + ")"
        lines.append(f"{head}, {tool}:")
        for k in p.kernels[:4]:
            parts = []
            if p.tool == "ncu":
                parts += [f"DRAM throughput {_pct(k.dram_pct)} of peak", f"SM throughput {_pct(k.sm_pct)} of peak",
                          f"achieved occupancy {_pct(k.occupancy_pct)}"]
            if k.registers is not None:
                parts.append(f"{k.registers} registers/thread")
            if k.spill_bytes is not None:
                parts.append(f"{k.spill_bytes} B spilled")
            if k.duration_us is not None:
                parts.append(f"{k.duration_us:.1f} us")
            lines.append(f"    {_short(k.name)}: " + ", ".join(parts))
        if len(p.kernels) > 4:
            lines.append(f"    ... and {len(p.kernels) - 4} more kernels")
    return "\n".join(lines)


# -- measuring ------------------------------------------------------------------------------------------
def _runner(problem: str, candidate: Path, target: str, torch_profiler: bool) -> list[str]:
    # absolute paths: the confined process starts in its own scratch directory
    cmd = [sys.executable, "-m", "workbench.profile_feedback", "call", str(Path(problem).resolve()),
           str(candidate.resolve()), "--target", target]
    return cmd + (["--torch"] if torch_profiler else [])


def _run_confined(cmd: list[str], timeout_s: float) -> tuple[int, str, str]:
    """Run the profiled call as the judge runs a candidate: confined, no secrets, its own scratch
    directory (the candidate was judged correct, but that says nothing about what else it does)."""
    from workbench.worker_process import end_confined, new_scratch, spawn_confined

    scratch = new_scratch("profile")
    try:
        proc, _ = spawn_confined(cmd, scratch, subprocess.DEVNULL, subprocess.PIPE, subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=timeout_s)
        finally:
            end_confined(proc)
        return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def profile_candidate(problem: str, candidate: str, path: Path, target: str, verdict: dict[str, Any] | None = None,
                      timeout_s: float = PROFILE_TIMEOUT_S, use_ncu: bool | None = None) -> Profile:
    """One candidate's profile; `use_ncu` None means: when the target is cuda and ncu is on PATH.
    When Nsight Compute reads nothing (it may not be allowed its counters inside the confinement),
    the torch profiler's times stand in, and the profile says why."""
    verdict = verdict or {}
    ncu = shutil.which("ncu")
    use_ncu = (target == "cuda" and ncu is not None) if use_ncu is None else use_ncu
    profile = Profile(candidate, "ncu" if use_ncu else "torch", ms=verdict.get("ms"),
                      roofline_fraction=verdict.get("roofline_fraction"))
    if use_ncu:
        cmd = [ncu or "ncu", "--clock-control", "none", "--profile-from-start", "off", "--csv",
               "--metrics", ",".join(NCU_METRICS), *_runner(problem, path, target, torch_profiler=False)]
        kernels, why = _measure(cmd, timeout_s, parse_ncu_csv)
        if kernels:
            profile.kernels = kernels
            add_build_resources(profile.kernels, verdict.get("build_resources") or [])
            return profile
        profile.tool = "torch"
        note = f"Nsight Compute read nothing ({why or 'no kernel in its report'}); torch profiler times instead"
    else:
        note = ""
    kernels, why = _measure(_runner(problem, path, target, torch_profiler=True), timeout_s, _torch_kernels)
    profile.kernels = kernels
    if kernels:
        profile.note = note
    else:
        profile.error = "; ".join(x for x in (note, why) if x)
    add_build_resources(profile.kernels, verdict.get("build_resources") or [])
    return profile


def _torch_kernels(stdout: str) -> list[KernelCounters]:
    line = next((ln for ln in reversed(stdout.splitlines()) if ln.startswith("{")), "{}")
    return [KernelCounters(k["name"], duration_us=k["us"]) for k in json.loads(line).get("kernels", [])]


def _measure(cmd: list[str], timeout_s: float, parse: Any) -> tuple[list[KernelCounters], str]:
    """(kernels, why there are none): one confined run of `cmd`, its stdout parsed; never raises."""
    try:
        code, stdout, stderr = _run_confined(cmd, timeout_s)
    except (OSError, subprocess.TimeoutExpired) as e:
        return [], f"{type(e).__name__}: {e}"
    if code != 0:
        tail = (stderr or stdout).strip().splitlines()
        return [], f"exit {code}: {tail[-1][:200] if tail else 'no output'}"
    try:
        return parse(stdout), ""
    except (ValueError, KeyError, TypeError) as e:
        return [], f"unreadable profiler output: {e}"


def call_once(problem_ref: str, candidate: Path, target: str, torch_profiler: bool) -> dict[str, Any]:
    """Build the candidate, warm it up, then one call inside the profiled range."""
    import importlib.util

    import torch

    from workbench import build
    from workbench.problem import load_problem, make_inputs

    if target == "cuda":
        build.target_arch()
    problem = load_problem(problem_ref)

    def built(spec: build.BuildSpec) -> build.BuildResult:  # confined: the cache is read-only here
        found = build.cached(spec)
        if found is None:
            raise RuntimeError(f"extension {spec.name} is not in the build cache (the judge builds it first)")
        return found

    build.BUILDER = built
    spec = importlib.util.spec_from_file_location(f"profiled_{candidate.stem}", candidate)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    with build.patched_load_inline():
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    torch.manual_seed(0)
    model = module.ModelNew(*problem.init_inputs()).to(target)
    inputs = make_inputs(problem, seed=0, distribution="given", device=target)
    sync = torch.cuda.synchronize if target == "cuda" else (lambda: None)
    model(*inputs)  # warm-up: lazy initialisation stays out of the profile
    sync()
    if not torch_profiler:
        torch.cuda.profiler.start()
        model(*inputs)
        sync()
        torch.cuda.profiler.stop()
        return {"kernels": []}
    activities = [torch.profiler.ProfilerActivity.CPU]
    if target == "cuda":
        activities.append(torch.profiler.ProfilerActivity.CUDA)
    import time

    with torch.profiler.profile(activities=activities) as prof:
        started = time.perf_counter()
        model(*inputs)
        sync()
        wall_us = (time.perf_counter() - started) * 1e6
    kernels = []
    for e in prof.key_averages():
        us = (getattr(e, "device_time_total", 0) or 0) if target == "cuda" else e.self_cpu_time_total
        if us > 0 and (target == "cuda" or not e.key.startswith(("aten::empty", "aten::to", "aten::contiguous"))):
            kernels.append({"name": e.key, "us": float(us)})
    kernels.sort(key=lambda k: -k["us"])
    if not kernels:  # an extension's own C++ function is no profiler event: its wall time stands in
        kernels = [{"name": "forward (wall time)", "us": wall_us}]
    return {"kernels": kernels}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m workbench.profile_feedback")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("call", help="one profiled call of a candidate (the profiler's target)")
    c.add_argument("problem")
    c.add_argument("candidate")
    c.add_argument("--target", choices=["cuda", "cpu"], default="cuda")
    c.add_argument("--torch", action="store_true", help="profile with the torch profiler and print JSON")
    a = ap.parse_args(argv)
    print(json.dumps(call_once(a.problem, Path(a.candidate), a.target, a.torch)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
