"""The judge: decides, in this process, whether one candidate is correct and how fast it is.

The candidate runs in a confined worker (workbench.worker_process); this process holds the
reference model, draws the same secret-seeded inputs on its own device, and compares every
output leaf itself. Nothing the verdict rests on is taken from the worker unchecked: outputs
are compared here; which timed outputs are checked is decided after each sample; every timed
sample is bracketed by this process's clock, calibrated on the same worker before the
candidate was loaded; the profiler watched every call. docs/judge.md states what this
guarantees and what it cannot (native code inside the worker can forge what the worker says
about itself; the judge's clock and comparisons bound what that gains).
"""
from __future__ import annotations

import random
import secrets
import signal
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from workbench import audit, build, verify
from workbench.exchange import Reader
from workbench.baselines import main_dtype, measure_facts, problem_bytes, time_reference  # noqa: F401 (re-exported)
from workbench.problem import DISTRIBUTIONS, POLICIES, Problem, load_problem, make_inputs, perturb, redraw, tensor_bytes
from workbench.timing import MIN_SAMPLES, NOOP_LABEL, Stats, device_name, judge_clock_check, roofline_ms, speedup, time_remote
from workbench.trace import timed_spans
from workbench.worker_process import WorkerDied, WorkerProcess, cpu_memory_limit_gb, device_for, take_worker

CHEAT_CODES = {"input_mutated", "output_aliases_input", "not_plain_tensor", "torch_compute", "library_kernel",
               "other_stream", "threads", "tamper", "forbidden_source", "timing_mismatch", "stale_output",
               "no_own_kernel"}
WRONG_CODES = {"wrong_shape", "wrong_dtype", "wrong_device", "nonfinite", "mismatch", "rel_error", "wrong_output"}
PROBE_BLOCKS = ((0.25, 0.5), (0.5, 0.75))
ERROR_STATUS = {"build_error": "build_error", "crash": "crash", "timeout": "timeout", "oom": "crash",
                "error": "error", "no_modelnew": "error", "syntax_error": "error"}
CALIBRATION_SAMPLES = 16
CHECK_PROBABILITY = 0.15  # each timed sample's output is checked with this chance, decided after the sample
SCREEN_SAMPLES = 10
PARTIAL_MIN_OWN = 0.01  # under "partial", the share of the timed calls' time the candidate's own code must take


@dataclass
class Verdict:
    problem: str
    candidate: str
    target: str
    status: str = "correct"
    reasons: list[str] = field(default_factory=list)
    trials: list[dict[str, Any]] = field(default_factory=list)
    timing: dict[str, Any] | None = None
    baseline: dict[str, Any] | None = None
    builds: list[dict[str, Any]] = field(default_factory=list)
    tolerance: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0
    worker_log: str = ""
    policy: str = "strict"
    stage: str = "full"  # "screen" when it stopped after the screening stage
    device_index: int = 0
    device_name: str = ""
    phases: dict[str, float] = field(default_factory=dict)
    degenerate: list[str] = field(default_factory=list)  # trivial outputs the problem cannot tell from right
    confinement: str = ""

    @property
    def codes(self) -> set[str]:
        return {r.split(":", 1)[0] for r in self.reasons}

    @property
    def correct(self) -> bool:
        return self.status == "correct"

    @property
    def ms(self) -> float | None:
        return self.timing["ms"] if self.timing else None

    @property
    def build_log(self) -> str:
        return "\n".join(b.get("log", "") for b in self.builds)

    @property
    def build_seconds(self) -> float:
        return sum(b.get("seconds") or 0.0 for b in self.builds)

    def speedups(self) -> dict[str, float | None]:
        b = self.baseline or {}
        return {"eager": speedup(b.get("eager_ms"), self.ms), "compile": speedup(b.get("compile_ms"), self.ms)}

    def add(self, codes: list[str]) -> None:
        self.reasons.extend(c for c in codes if c not in self.reasons)
        names = self.codes
        if names & CHEAT_CODES:
            self.status = "rejected"
        elif names & WRONG_CODES and self.status in ("correct", "screened"):
            self.status = "incorrect"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(correct=self.correct, codes=sorted(self.codes), ms=self.ms, speedup=self.speedups())
        return d


class Phases:
    """Wall seconds per phase of one evaluation (benchmarks/judge_cost.py prints them)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - t0


class Reference:
    """The reference side of one evaluation: model, template inputs, tolerances."""

    def __init__(self, problem: Problem, device: str, init_seed: int, template_seed: int):
        from workbench.problem import given_inputs

        self.problem, self.device = problem, device
        self.model = problem.make_model(init_seed, device)
        self.template = given_inputs(problem, template_seed, device)
        ref = self.outputs(self.template)
        leaves = verify.tensor_leaves(ref)
        self.out_bytes = [tensor_bytes(r) for r in leaves]
        tol = verify.Tolerance(problem.atol, problem.rtol, problem.rel_l2_tol)
        for r in leaves:
            if r.is_floating_point():
                tol = verify.calibrate(r, self.template, tol)
        self.tol = tol

    def outputs(self, inputs: list[Any]) -> Any:
        with torch.no_grad():
            return self.model(*inputs)

    def inputs(self, seed: int, distribution: str, block: tuple[float, float] | None = None) -> list[Any]:
        inputs = make_inputs(self.problem, seed, distribution, self.device, self.template)
        if block:
            perturb(inputs, seed, *block)
        return inputs

    def judge(self, tree: dict[str, Any], ref: Any, reader: Reader,
              tol: verify.Tolerance | None = None) -> tuple[list[str], list[dict]]:
        return verify.compare_tree(tree, ref, tol or self.tol, lambda m: reader.load(m, self.device))


def _all_finite(obj: Any) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in verify.tensor_leaves(obj) if t.is_floating_point())


def _digests(problem: Problem) -> tuple[str, str]:
    """The judge's own package and the problem file, as they are now (a worker must not change them)."""
    from workbench import sandbox

    return sandbox.judge_digest(), sandbox.digest([problem.path])


def evaluate(problem: Problem | str | Path, candidate_path: str | Path, *, target: str = "cuda", trials: int = 4,
             timing: bool = True, compile_baseline: bool = False, baseline: dict[str, Any] | None = None,
             timeout_s: float = 120.0, build_timeout_s: float | None = None, samples: int = 30,
             device_index: int = 0, facts: dict[str, Any] | None = None, static_scan: bool = True,
             policy: str | None = None, screen_ms: float | None = None) -> Verdict:
    """Judge one candidate file. Never raises for anything the candidate does.

    policy: "strict" (all compute in the candidate's own kernels) or "partial" (torch compute
    allowed beside them; the share of device time is stated); default: the problem's own.
    screen_ms: when given, a candidate whose short timing after the first trial is slower than
    this stops there (stage "screen", status "screened"): it could not enter the top kernels.
    static_scan=False skips the source scan so tests can prove the runtime checks alone catch
    a cheat; the search always scans.
    """
    t0 = time.perf_counter()
    phases = Phases()
    problem = (problem if isinstance(problem, Problem) else load_problem(problem)).for_target(target)
    candidate_path = Path(candidate_path)
    policy = policy or problem.policy
    verdict = Verdict(problem.name, str(candidate_path), target, policy=policy, device_index=device_index)
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {POLICIES}, not {policy!r}")
    try:
        source = candidate_path.read_text()
    except OSError as e:
        verdict.status = "error"
        verdict.reasons.append(f"error: cannot read candidate: {e}")
        return verdict
    scan = audit.scan_source(source, str(candidate_path)) if static_scan else []
    syntax = [c for c in scan if c.startswith("syntax_error")]
    if syntax:
        verdict.status = "error"
        verdict.reasons.extend(syntax)
        return verdict
    if scan:
        verdict.add(scan)
        verdict.seconds = time.perf_counter() - t0
        return verdict
    device = device_for(target, device_index)
    verdict.device_name = device_name(device)  # the name the baselines' timings carry too
    before = _digests(problem)
    with phases("worker start"):
        worker = take_worker(device, cpu_memory_limit_gb() if target == "cpu" else 0.0)
    verdict.confinement = worker.confinement_summary()
    try:
        with phases("worker start"):
            worker.wait_ready()
        _run(worker, problem, candidate_path, verdict, device, trials, timing, timeout_s,
             build.DEFAULT_TIMEOUT_S if build_timeout_s is None else build_timeout_s, samples, screen_ms, phases)
    except TimeoutError:
        verdict.status = "timeout"
        verdict.reasons.append(f"timeout: no answer from the candidate within {timeout_s:g} s (worker killed)")
    except WorkerDied as e:
        if worker.proc.returncode in (-signal.SIGSYS, 128 + signal.SIGSYS):  # the system-call filter's kill
            verdict.add(["tamper: the candidate tried to start a process or run a program (the worker's "
                         "system-call filter ended it: work in a child process is unseen by the judge)"])
        else:
            verdict.status = "crash"
            verdict.reasons.append(f"crash: {e}; worker log ends: {worker.log_tail(800)!r}")
    finally:
        verdict.worker_log = worker.log_tail()
        with phases("worker end"):
            worker.kill()
    if worker.forged:
        verdict.add([f"tamper: {worker.forged} forged line(s) on the worker's reply channel"])
    after = _digests(problem)
    if after != before:
        what = [n for n, a, b in zip(("the judge's own modules", "the problem file"), before, after) if a != b]
        verdict.add([f"tamper: {' and '.join(what)} changed during the evaluation"])
    if verdict.timing and baseline:
        verdict.baseline = dict(baseline)
        if facts:
            floor = roofline_ms(problem_bytes(problem), problem.flops, facts, main_dtype(problem))
            verdict.timing["roofline_ms"] = floor
            verdict.timing["roofline_fraction"] = floor / verdict.ms if (floor and verdict.ms) else None
    verdict.phases = phases.seconds
    verdict.seconds = time.perf_counter() - t0
    return verdict


def _error(verdict: Verdict, resp: dict[str, Any]) -> bool:
    if "error" not in resp:
        return False
    kind = resp["error"]
    verdict.status = ERROR_STATUS.get(kind, "error")
    code = kind if kind in ("build_error", "crash", "oom", "no_modelnew") else "error"
    detail = resp.get("detail", "")
    if kind == "build_error" and "failed (timeout)" in detail:
        verdict.reasons.append(f"build_error: the build timed out (limit {build.DEFAULT_TIMEOUT_S:g} s by default; "
                               f"WORKBENCH_BUILD_TIMEOUT or build_timeout_s sets it)")
        return True
    if kind == "build_error" and any(m in detail for m in ("out of memory", "memory exhausted", "Cannot allocate memory")):
        verdict.reasons.append(f"build_error: the compiler ran out of memory (capped at {build.MEMORY_LIMIT_GB:g} GB "
                               f"per process; WORKBENCH_BUILD_MEMORY_GB sets it)")
        return True
    verdict.reasons.append(f"{code}: {detail.strip().splitlines()[-1] if detail.strip() else kind}")
    if kind == "build_error" and resp.get("log"):
        verdict.builds.append({"ok": False, "log": resp["log"]})
    return True


def _trusted_build(timeout_s: float):
    """Build what a worker asks for, here: the worker's process cannot write the cache."""
    def run(spec: dict[str, Any]) -> dict[str, Any]:
        return build.build(build.spec_from_json(spec), timeout_s=timeout_s).summary()
    return run


def _run(worker: WorkerProcess, problem: Problem, candidate_path: Path, verdict: Verdict, device: str, trials: int,
         timing: bool, timeout_s: float, build_timeout_s: float, samples: int, screen_ms: float | None,
         phases: Phases) -> None:
    rng = random.Random(secrets.randbits(64))
    init_seed, template_seed = secrets.randbits(62), secrets.randbits(62)
    with phases("problem and calibration (worker)"):
        resp = worker.request({"op": "problem", "problem": str(problem.path), "template_seed": template_seed},
                              timeout_s=timeout_s)
        if _error(verdict, resp):
            return
        # The judge's clock, calibrated while the worker is still trusted: nothing of the candidate's loaded yet.
        calibration = time_remote(worker, CALIBRATION_SAMPLES, secrets.randbits(40), warmup=1, noop=True,
                                  timeout_s=timeout_s, label="noop-calibration") if timing else None
    # The cpu target's checks of work finished after a timed call (None elsewhere): the signals the
    # worker catches before any candidate code, and the probes of its outputs.
    fault_base = fault_handlers(worker) if device == "cpu" else None
    with phases("load and build"):
        resp = worker.request({"op": "load", "candidate": str(candidate_path.resolve()), "init_seed": init_seed},
                              timeout_s=build_timeout_s + timeout_s, on_build=_trusted_build(build_timeout_s))
    verdict.builds = resp.get("builds", verdict.builds)
    if resp.get("syscall_filter"):
        verdict.confinement += f"; {resp['syscall_filter']}"
    verdict.add(audit.check_runtime({"tamper": resp.get("tamper", [])}))
    verdict.add(link_audit(verdict.builds, verdict.policy))
    if verdict.policy == "partial" and "error" not in resp and not any(b.get("ok") for b in verdict.builds):
        verdict.add(["no_own_kernel: the candidate builds no kernel of its own (partial allows torch beside "
                     "the candidate's kernels, not instead of them)"])
    if _error(verdict, resp) or not verdict.correct:
        _finish(worker, verdict, timeout_s, phases)
        return
    with phases("reference"):
        ref = Reference(problem, device, init_seed, template_seed)
    verdict.tolerance = {"atol": ref.tol.atol, "rtol": ref.tol.rtol, "rel_l2": ref.tol.rel_l2}
    verdict.reasons.extend(f"trivial_check_tightened: {t}" for t in ref.tol.tightened)
    if ref.tol.degenerate:
        verdict.degenerate = list(ref.tol.degenerate)
        verdict.reasons.append(f"degenerate: the problem cannot tell right from trivial: "
                               f"{', '.join(ref.tol.degenerate)} output(s) pass even the tightened check")
    # Fresh trials over every distribution (wide only where the reference stays finite), then
    # probes that change a block of the same inputs in place between two calls.
    plan = [(DISTRIBUTIONS[i % 4], None) for i in range(max(1, trials))]
    plan += [("wide", None), ("normal", PROBE_BLOCKS[0]), ("normal", PROBE_BLOCKS[1])] if trials > 1 else []
    for i, (dist, block) in enumerate(plan):
        if not _trial(worker, ref, verdict, i, dist, block, timeout_s, phases):
            _finish(worker, verdict, timeout_s, phases)
            return
        if i == 0 and screen_ms is not None and timing:
            with phases("screening"):
                short = time_remote(worker, SCREEN_SAMPLES, secrets.randbits(40), warmup=1, timeout_s=timeout_s,
                                    label="screen")
            if short["ms"] > screen_ms:
                verdict.stage, verdict.status = "screen", "screened"
                verdict.reasons.append(f"screened: {short['ms']:.4f} ms in a short timing, slower than {screen_ms:.4f} ms "
                                       f"(the slowest kernel the search keeps); the full protocol was not run")
                verdict.timing = {**short, "stage": "screen"}
                _finish(worker, verdict, timeout_s, phases)
                return
    if timing:
        with phases("timing"):
            checks: list[str] = []
            n = max(samples, MIN_SAMPLES)

            def check(i: int, seed: int) -> None:  # the last sample is always checked: at least one is
                if fault_base is not None and not checks and (added := fault_handlers(worker) - fault_base):
                    checks.append(f"tamper: after timed call {i}: the worker handles {', '.join(sorted(added))} "
                                  f"(a way to compute an output when it is read, after the call)")
                if rng.random() >= CHECK_PROBABILITY and i != n - 1:
                    return
                with phases("timed output checks"):
                    out = worker.request({"op": "fetch"}, timeout_s=timeout_s)
                    if "output" not in out:
                        checks.append(f"stale_output: timed call {i}: no output to check")
                        return
                    loaded = Loaded(worker.reader)
                    codes, _ = ref.judge(out["output"], ref.outputs(redraw(ref.template, seed, "normal")), loaded)
                    if codes:
                        checks.append(f"stale_output: timed call {i} returned a wrong answer ({codes[0]})")
                    elif fault_base is not None and (why := probes_disagree(loaded.leaves)):
                        checks.append(f"stale_output: timed call {i}: {why}")

            result = time_remote(worker, n, secrets.randbits(40), warmup=3, timeout_s=timeout_s,
                                 on_sample=check, noop_every=2)
        verdict.add(checks)
        if "error" in result:
            _error(verdict, result)
            _finish(worker, verdict, timeout_s, phases)
            return
        verdict.timing = result
    calls, facts = _finish(worker, verdict, timeout_s, phases)
    if verdict.timing is not None:
        verdict.timing["device"] = verdict.device_name or verdict.timing.get("device")
        _settle_clock(verdict, calls, calibration)
        if verdict.policy == "partial":
            share = device_share(calls, facts.get("own_kernels", []), verdict.target)
            verdict.timing["device_share"] = share
            if share is not None and share["own"] < PARTIAL_MIN_OWN:
                verdict.add([f"no_own_kernel: the candidate's own code did {100 * share['own']:.2f}% of the timed calls' "
                             f"work (partial needs at least {100 * PARTIAL_MIN_OWN:g}%: its kernels must do real work)"])


FAULT_SIGNALS = {5: "SIGTRAP", 7: "SIGBUS", 11: "SIGSEGV"}


def fault_handlers(worker: WorkerProcess) -> set[str]:
    """The memory-fault signals a process of the worker catches (read from /proc/<pid>/status, outside
    its reach). Honest kernels install no handler for them; one lets an output be computed when a page
    of it is read, after the timed call (pages protected at return, filled on demand)."""
    from workbench.cleanup import descendants

    caught = 0
    for pid in [worker.proc.pid, *descendants(worker.proc.pid)]:
        try:
            status = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            continue
        caught |= next((int(line.split()[1], 16) for line in status.splitlines() if line.startswith("SigCgt:")), 0)
    return {name for sig, name in FAULT_SIGNALS.items() if caught >> (sig - 1) & 1}


class Loaded:
    """The worker's Reader, keeping every output leaf it brings over with its description (for
    probes_disagree)."""

    def __init__(self, reader: Reader):
        self.reader = reader
        self.leaves: list[tuple[dict[str, Any], torch.Tensor]] = []

    def load(self, meta: dict[str, Any], device: Any) -> torch.Tensor:
        t = self.reader.load(meta, device)
        self.leaves.append((meta, t))
        return t


def probes_disagree(leaves: list[tuple[dict[str, Any], torch.Tensor]]) -> str | None:
    """Why the elements the worker read as a timed call returned (each leaf's probe, cpu target) are
    not the fetched output's: the output was finished after the call, outside its timed region."""
    for meta, t in leaves:
        if "probe" not in meta:
            return "no probe of its output as the call returned (the harness always sends one)"
        p = meta["probe"]
        if p is None:  # a leaf the worker could not probe (empty, or not strided)
            continue
        try:
            got = t.reshape(-1)[torch.tensor(p["flat"], dtype=torch.long)].tolist()
            sent = list(p["values"])
        except (KeyError, TypeError, ValueError, IndexError, RuntimeError) as e:
            return f"a malformed probe of its output ({type(e).__name__})"
        differ = sum(1 for a, b in zip(got, sent) if not (a == b or (a != a and b != b))) + abs(len(got) - len(sent))
        if differ:
            return (f"{differ} of {len(got)} output elements read as the call returned changed afterwards "
                    f"(work done outside the timed call)")
    return None


def link_audit(builds: list[dict[str, Any]], policy: str) -> list[str]:
    """What the candidate's built libraries import, whatever their source spelled (audit.link_audit)."""
    codes: list[str] = []
    for b in builds:
        lib = b.get("library")
        if not (b.get("ok") and lib):
            continue
        if not Path(lib).resolve().is_relative_to(Path(build.DEFAULT_CACHE).resolve()):
            codes.append(f"tamper: the worker reports a library outside the build cache ({lib})")
            continue
        codes += audit.link_audit(Path(lib), policy)
    return codes


def _trial(worker: WorkerProcess, ref: Reference, verdict: Verdict, i: int, dist: str, block: Any,
           timeout_s: float, phases: Phases) -> bool:
    seed = secrets.randbits(62)
    with phases("trials (worker)"):
        resp = worker.request({"op": "trial", "seed": seed, "distribution": dist, "perturb": block, "label": f"trial{i}",
                               "poison_bytes": ref.out_bytes}, timeout_s=timeout_s)
    tree = resp.get("output", {})
    if _error(verdict, resp):
        return False
    codes = audit.check_runtime({"tamper": resp.get("tamper", [])})
    if resp.get("input_mutated"):
        codes.append(f"input_mutated: forward changed input(s) {resp['input_mutated']}")
    if resp.get("aliases"):
        codes.append(f"output_aliases_input: (output, input) pairs sharing memory {resp['aliases']}")
    with phases("reference outputs"):
        expected = ref.outputs(ref.inputs(seed, dist, block))
    tol = ref.tol
    if dist == "wide":
        if not _all_finite(expected):
            verdict.trials.append({"distribution": dist, "skipped": "the reference is not finite on wide inputs"})
            return True
        # Heavy tails make element-wise bounds meaningless for honest low-precision arithmetic (a bf16
        # GEMM missed by 1e3 on 1 of 65536 outputs): here finiteness and the scale-aware bound decide.
        tol = verify.Tolerance(float("inf"), ref.tol.rtol, ref.tol.rel_l2)
    with phases("outputs to judge and compare"):
        cmp_codes, details = ref.judge(tree, expected, worker.reader, tol)
    if block and cmp_codes:
        cmp_codes.insert(0, "stale_output: after part of the same inputs changed in place, the output did not follow")
    verdict.trials.append({"distribution": dist, "probe": block, "codes": codes + cmp_codes, "comparisons": details})
    verdict.add(codes + cmp_codes)
    return verdict.correct


def _finish(worker: WorkerProcess, verdict: Verdict, timeout_s: float,
            phases: Phases) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Stop the worker's profiler and audit every call it watched."""
    with phases("audit"):
        resp = worker.request({"op": "finish"}, timeout_s=timeout_s)
        if "error" in resp:
            if verdict.correct:
                _error(verdict, resp)
            return [], {}
        facts = resp.get("facts", {})
        calls = facts.get("calls", [])
        verdict.add(audit.check_runtime({"tamper": resp.get("tamper", [])}))
        if verdict.status in ("correct", "screened"):
            verdict.add(audit_calls(calls, facts, verdict.policy, verdict.target))
            verdict.add(mapped_library_audit(worker, verdict.builds, verdict.policy))
        return calls, facts


def mapped_libraries(worker: WorkerProcess) -> set[str]:
    """Every file mapped executable in the worker's processes, read by the judge from /proc, where
    the candidate cannot change what is listed (what it reports of its builds, it could)."""
    from workbench.cleanup import descendants

    found: set[str] = set()
    for pid in [worker.proc.pid, *descendants(worker.proc.pid)]:
        try:
            lines = Path(f"/proc/{pid}/maps").read_text().splitlines()
        except OSError:  # gone, or not Linux
            continue
        for line in lines:
            fields = line.split(maxsplit=5)  # address perms offset dev inode path
            if len(fields) == 6 and "x" in fields[1] and fields[5].startswith("/"):
                found.add(fields[5])
    return found


def mapped_library_audit(worker: WorkerProcess, builds: list[dict[str, Any]], policy: str) -> list[str]:
    """Native code the candidate reached without load_inline: every ELF library of the build cache
    or of its scratch directory mapped in the worker but not among its reported builds is link-audited
    like a build (an extension imported by its path, or one whose bytes it wrote itself); code it ran
    from a scratch file it then deleted cannot be audited, and is tamper."""
    reported = {str(Path(b["library"]).resolve()) for b in builds if b.get("library")}
    cache, scratch = Path(build.DEFAULT_CACHE).resolve(), worker.scratch.resolve()
    codes: list[str] = []
    for name in sorted(mapped_libraries(worker)):
        deleted = name.endswith(" (deleted)")
        path = Path(name.removesuffix(" (deleted)"))
        if not (path.is_relative_to(cache) or path.is_relative_to(scratch)) or str(path) in reported:
            continue
        if deleted:
            if path.is_relative_to(scratch):
                codes.append(f"tamper: the worker runs code from a file it removed from its scratch directory ({path.name})")
            continue
        try:
            with open(path, "rb") as f:
                if f.read(4) != b"\x7fELF":
                    continue
            # A file the candidate wrote is arbitrary bytes: read by the judge's own ELF reader, not by nm.
            codes += audit.link_audit(path, policy, use_nm=False if path.is_relative_to(scratch) else None)
        except Exception as e:  # noqa: BLE001 - unreadable or malformed: it ran, and it cannot be audited
            codes.append(f"tamper: the worker runs code from {path.name}, which cannot be audited ({type(e).__name__})")
    return codes


def audit_calls(calls: list[dict[str, Any]], facts: dict[str, Any], policy: str, target: str) -> list[str]:
    """Reason codes from every watched call: each must pass the runtime audit, and all must agree
    (a candidate whose work differs between calls is caught whichever call it behaves in)."""
    own = facts.get("own_kernels", [])
    marker = next((k["stream"] for c in calls if c["label"] == "marker" for k in c["kernels"]), None)
    threads = facts.get("threads", {})
    watched = [{"aten_ops": c["aten_ops"], "kernels": c["kernels"], "marker_stream": marker, "own_kernels": own,
                "threads_added": threads.get(c["label"], 0)} for c in calls
               if c["label"] != "marker" and not c["label"].startswith(NOOP_LABEL)]  # harness-only calls
    return audit.check_runtime(watched, policy=policy) if watched else []


def device_share(calls: list[dict[str, Any]], own: list[str], target: str) -> dict[str, float] | None:
    """Shares of the timed calls' time in the candidate's own code and in torch (partial policy)."""
    from workbench.audit import ALLOWED_ATEN

    timed = [c for c in calls if c["label"].startswith("sample")]
    if not timed:
        return None
    if target == "cuda":
        share = audit.device_share({"kernels": [k for c in timed for k in c["kernels"]], "own_kernels": own})
        return share if share["own"] + share["torch"] > 0 else None  # no kernel time: nothing to share
    else:
        total = sum(c["host_us"] for c in timed)
        torch_us = sum(o["us"] for c in timed for o in c["top_ops"]
                       if o["name"].startswith("aten::") and o["name"][6:].split(".")[0] not in ALLOWED_ATEN)
        mine = max(0.0, total - torch_us)
    if total <= 0:
        return None
    return {"own": mine / total, "torch": 1.0 - mine / total}


def _settle_clock(verdict: Verdict, calls: list[dict[str, Any]], calibration: dict[str, Any] | None) -> None:
    """The judged time from the device's clock (CUPTI spans where the profiler saw kernels), and its checks."""
    t = verdict.timing
    assert t is not None
    values = timed_spans(calls, t.pop("sample_labels", []))
    t["cupti_samples"] = len(values or [])
    if values:
        t["cupti"] = vars(Stats.of(values))
        t["ms"] = t["cupti"]["median"]
        t["method"] = "CUPTI span (first kernel start to last kernel end), events and the judge's clock as checks"
        if t["events"]["median"] < 0.9 * t["ms"] - 0.005:
            verdict.add([f"timing_mismatch: the reported event time {t['events']['median']:.4f} ms is below the "
                         f"profiler's span {t['ms']:.4f} ms"])
    if calibration is not None:
        why = judge_clock_check(t, calibration)
        t["judge_clock"] = {"excess_ms": t.get("judge_excess_ms"), "calibration_ms": calibration.get("overhead_ms")}
        if why:
            verdict.add([why])


