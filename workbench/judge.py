"""The judge: runs a candidate in a worker process and decides, in this process, whether it is
correct and how fast it is (see DESIGN.md, "The evaluation protocol").

This process holds the reference model and computes reference outputs; the candidate never
shares a process, an allocator or a file of reference results with it. Seeds come from the
OS's random source at the moment they are needed, so a candidate cannot precompute answers.
"""
from __future__ import annotations

import atexit
import json
import os
import random
import secrets
import select
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from workbench import audit, verify
from workbench.problem import DISTRIBUTIONS, Problem, load_problem, make_inputs, perturb, redraw, tensor_bytes
from workbench.timing import Timer, escaped_work, roofline_ms, speedup

CHEAT_CODES = {"input_mutated", "output_aliases_input", "not_plain_tensor", "torch_compute", "library_kernel",
               "other_stream", "threads", "tamper", "forbidden_source", "timing_mismatch", "stale_output"}
WRONG_CODES = {"wrong_shape", "wrong_dtype", "wrong_device", "nonfinite", "mismatch", "rel_error"}
PROBE_BLOCKS = ((0.25, 0.5), (0.5, 0.75))
ERROR_STATUS = {"build_error": "build_error", "crash": "crash", "timeout": "timeout", "oom": "crash",
                "error": "error", "no_modelnew": "error"}


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

    def speedups(self) -> dict[str, float | None]:
        b = self.baseline or {}
        return {"eager": speedup(b.get("eager_ms"), self.ms), "compile": speedup(b.get("compile_ms"), self.ms)}

    def add(self, codes: list[str]) -> None:
        self.reasons.extend(c for c in codes if c not in self.reasons)
        names = self.codes
        if names & CHEAT_CODES:
            self.status = "rejected"
        elif names & WRONG_CODES and self.status == "correct":
            self.status = "incorrect"

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d.update(correct=self.correct, codes=sorted(self.codes), ms=self.ms, speedup=self.speedups())
        return d


class WorkerDied(RuntimeError):
    pass


class WorkerProcess:
    """A `python -m workbench.worker` child speaking JSON lines, killed as a whole process group."""

    def __init__(self, device: str, memory_limit_gb: float = 0.0):
        self.device = device
        self.log = tempfile.NamedTemporaryFile(prefix="workbench-worker-", suffix=".log", delete=False)
        cmd = [sys.executable, "-m", "workbench.worker", "--device", device]
        if memory_limit_gb:
            cmd += ["--memory-limit-gb", str(memory_limit_gb)]
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.log,
                                     start_new_session=True, env=env)
        self.ready = False
        self.forged = 0  # reply lines that did not carry the request's nonce: written by the candidate

    def _read(self, timeout_s: float, nonce: str | None = None) -> dict[str, Any]:
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            r, _, _ = select.select([self.proc.stdout], [], [], min(left, 1.0))
            if r:
                line = self.proc.stdout.readline()
                if not line:
                    self.proc.wait(timeout=10)
                    raise WorkerDied(f"worker exited with code {self.proc.returncode}")
                try:
                    reply = json.loads(line)
                except json.JSONDecodeError:
                    reply = None
                if nonce is None or (isinstance(reply, dict) and reply.get("nonce") == nonce):
                    return reply if isinstance(reply, dict) else {}
                self.forged += 1
                continue
            if self.proc.poll() is not None:
                raise WorkerDied(f"worker exited with code {self.proc.returncode}")

    def request(self, req: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        if not self.ready:
            self._read(timeout_s=180)  # import torch, start CUDA
            self.ready = True
        assert self.proc.stdin is not None
        req = {**req, "nonce": secrets.token_hex(16)}
        try:
            self.proc.stdin.write((json.dumps(req) + "\n").encode())
            self.proc.stdin.flush()
        except BrokenPipeError as e:
            raise WorkerDied("worker is gone") from e
        return self._read(timeout_s, req["nonce"])

    def log_tail(self, n: int = 6000) -> str:
        try:
            return Path(self.log.name).read_text(errors="replace")[-n:]
        except OSError:
            return ""

    def kill(self) -> None:
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(timeout=30)
        Path(self.log.name).unlink(missing_ok=True)


# One warm spare per device: a fresh process per evaluation, without paying its start-up.
_spares: dict[str, WorkerProcess] = {}


def take_worker(device: str, memory_limit_gb: float = 0.0) -> WorkerProcess:
    w = _spares.pop(device, None)
    if w is None or w.proc.poll() is not None:
        w = WorkerProcess(device, memory_limit_gb)
    _spares[device] = WorkerProcess(device, memory_limit_gb)
    return w


@atexit.register
def _kill_spares() -> None:
    for w in _spares.values():
        w.kill()
    _spares.clear()


def device_for(target: str, index: int = 0) -> str:
    if target == "cuda":
        if not torch.cuda.is_available():
            raise RuntimeError("target 'cuda' needs a CUDA device; use --target cpu to run on the CPU")
        return f"cuda:{index}"
    if target == "cpu":
        return "cpu"
    raise ValueError(f"unknown target {target!r}: cuda or cpu")


def _cpu_memory_limit_gb() -> float:
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / (1 << 30)
        return max(4.0, total * 0.6)  # a runaway CPU candidate fails to allocate instead of taking the machine
    except (ValueError, OSError):
        return 0.0


def _load_output(meta: dict[str, Any]) -> torch.Tensor:
    dtype = getattr(torch, meta["dtype"].split(".", 1)[1])
    shape = meta["shape"]
    numel = 1
    for s in shape:
        numel *= s
    nbytes = numel * torch.empty((), dtype=dtype).element_size()
    path = Path(meta["path"])
    if path.stat().st_size != nbytes:
        raise ValueError(f"output file holds {path.stat().st_size} bytes, expected {nbytes}")
    raw = torch.from_file(str(path), shared=False, size=nbytes, dtype=torch.uint8)
    return raw.view(dtype).reshape(shape)


def _cleanup(metas: list[dict[str, Any]]) -> None:
    for m in metas:
        if "path" in m:
            Path(m["path"]).unlink(missing_ok=True)


class Reference:
    """The reference side of one evaluation: model, template inputs, tolerances, output shapes."""

    def __init__(self, problem: Problem, device: str, init_seed: int, template_seed: int):
        self.problem, self.device = problem, device
        self.model = problem.make_model(init_seed, device)
        self.template = make_inputs(problem, template_seed, "given", device)
        ref = self.outputs(self.template)
        self.out_bytes = [tensor_bytes(r) for r in ref]
        base = verify.Tolerance(problem.atol, problem.rtol, problem.rel_l2_tol)
        self.tol = base
        for r in ref:
            if isinstance(r, torch.Tensor) and r.is_floating_point():
                self.tol = verify.calibrate(r, self.template, self.tol)

    def outputs(self, inputs: list[Any]) -> list[Any]:
        with torch.no_grad():
            out = self.model(*inputs)
        return list(out) if isinstance(out, (tuple, list)) else [out]

    def inputs(self, seed: int, distribution: str, block: tuple[float, float] | None = None) -> list[Any]:
        inputs = make_inputs(self.problem, seed, distribution, self.device, self.template)
        if block:
            perturb(inputs, seed, *block)
        return inputs

    def judge(self, metas: list[dict[str, Any]], inputs: list[Any]) -> tuple[list[str], list[dict[str, Any]]]:
        refs = self.outputs(inputs)
        if len(metas) != len(refs):
            return [f"wrong_shape: {len(metas)} outputs instead of {len(refs)}"], []
        codes, details = [], []
        for meta, ref in zip(metas, refs):
            if not isinstance(ref, torch.Tensor):
                continue
            bad = verify.check_meta(meta, ref)
            if bad:
                codes += bad
                continue
            if "path" not in meta:
                codes.append("not_plain_tensor: output was not readable")
                continue
            cmp = verify.compare(_load_output(meta).to(ref.device), ref, self.tol)
            codes += cmp.codes
            details.append(cmp.as_dict())
        return codes, details


def evaluate(problem: Problem | str | Path, candidate_path: str | Path, *, target: str = "cuda", trials: int = 4,
             timing: bool = True, compile_baseline: bool = False, baseline: dict[str, Any] | None = None,
             timeout_s: float = 120.0, build_timeout_s: float = 600.0, samples: int = 30,
             device_index: int = 0, facts: dict[str, Any] | None = None, static_scan: bool = True) -> Verdict:
    """Judge one candidate file. Never raises for anything the candidate does.

    static_scan=False skips the source scan so tests can prove the runtime checks alone
    catch a cheat; the search always scans.
    """
    t0 = time.perf_counter()
    problem = (problem if isinstance(problem, Problem) else load_problem(problem)).for_target(target)
    candidate_path = Path(candidate_path)
    verdict = Verdict(problem.name, str(candidate_path), target)
    try:
        source = candidate_path.read_text()
    except OSError as e:
        verdict.status = "error"
        verdict.reasons.append(f"error: cannot read candidate: {e}")
        return verdict
    scan = audit.scan_source(source) if static_scan else []
    if scan:
        verdict.add(scan)
        verdict.seconds = time.perf_counter() - t0
        return verdict
    device = device_for(target, device_index)
    rng = random.Random(secrets.randbits(64))
    init_seed, template_seed = secrets.randbits(62), secrets.randbits(62)
    worker = take_worker(device, _cpu_memory_limit_gb() if target == "cpu" else 0.0)
    try:
        _run(worker, problem, candidate_path, verdict, device, init_seed, template_seed, rng, trials, timing,
             timeout_s, build_timeout_s, samples)
    except TimeoutError:
        verdict.status = "timeout"
        verdict.reasons.append(f"timeout: no answer from the candidate within {timeout_s:g} s (worker killed)")
    except WorkerDied as e:
        verdict.status = "crash"
        verdict.reasons.append(f"crash: {e}; worker log ends: {worker.log_tail(800)!r}")
    finally:
        verdict.worker_log = worker.log_tail()
        worker.kill()
    if worker.forged:
        verdict.add([f"tamper: {worker.forged} forged line(s) on the worker's reply channel"])
    if verdict.timing and baseline:
        verdict.baseline = dict(baseline)
        if facts:
            floor = roofline_ms(problem_bytes(problem), problem.flops, facts, _main_dtype(problem))
            verdict.timing["roofline_ms"] = floor
            verdict.timing["roofline_fraction"] = floor / verdict.ms if (floor and verdict.ms) else None
    verdict.seconds = time.perf_counter() - t0
    return verdict


def _error(verdict: Verdict, resp: dict[str, Any]) -> bool:
    if "error" not in resp:
        return False
    kind = resp["error"]
    verdict.status = ERROR_STATUS.get(kind, "error")
    code = kind if kind in ("build_error", "crash", "oom", "no_modelnew") else "error"
    detail = resp.get("detail", "")
    verdict.reasons.append(f"{code}: {detail.strip().splitlines()[-1] if detail.strip() else kind}")
    if kind == "build_error" and resp.get("log"):
        verdict.builds.append({"ok": False, "log": resp["log"]})
    return True


def _run(worker: WorkerProcess, problem: Problem, candidate_path: Path, verdict: Verdict, device: str, init_seed: int,
         template_seed: int, rng: random.Random, trials: int, timing: bool, timeout_s: float,
         build_timeout_s: float, samples: int) -> None:
    resp = worker.request({"op": "load", "problem": str(problem.path), "candidate": str(candidate_path.resolve()),
                           "init_seed": init_seed, "template_seed": template_seed}, timeout_s=build_timeout_s)
    verdict.builds = resp.get("builds", verdict.builds)
    verdict.add(audit.check_runtime({"tamper": resp.get("tamper", [])}))
    if _error(verdict, resp) or not verdict.correct:
        return
    ref = Reference(problem, device, init_seed, template_seed)
    verdict.tolerance = {"atol": ref.tol.atol, "rtol": ref.tol.rtol, "rel_l2": ref.tol.rel_l2}
    if ref.tol.tightened:
        verdict.reasons.extend(f"trivial_check_tightened: {t}" for t in ref.tol.tightened)
    # Fresh trials over every distribution, then probes that change a block of the same inputs
    # in place between two calls (the edges stay): caches keyed on pointers or a few elements.
    plan = [(DISTRIBUTIONS[i % len(DISTRIBUTIONS)], None) for i in range(max(1, trials))]
    plan += [("normal", PROBE_BLOCKS[0]), ("normal", PROBE_BLOCKS[1])] if trials > 1 else []
    for i, (dist, block) in enumerate(plan):
        seed = secrets.randbits(62)
        resp = worker.request({"op": "trial", "seed": seed, "distribution": dist, "audit": i == 0,
                               "perturb": block, "poison_bytes": ref.out_bytes}, timeout_s=timeout_s)
        metas = resp.get("outputs", [])
        try:
            if _error(verdict, resp):
                return
            codes = audit.check_runtime({**resp.get("facts", {}), "tamper": resp.get("tamper", [])})
            if resp.get("input_mutated"):
                codes.append(f"input_mutated: forward changed input(s) {resp['input_mutated']}")
            if resp.get("aliases"):
                codes.append(f"output_aliases_input: (output, input) pairs sharing memory {resp['aliases']}")
            cmp_codes, details = ref.judge(metas, ref.inputs(seed, dist, block))
            if block and cmp_codes:
                cmp_codes.insert(0, "stale_output: after part of the same inputs changed in place, the output did not follow")
            verdict.trials.append({"distribution": dist, "probe": block, "codes": codes + cmp_codes, "comparisons": details})
            verdict.add(codes + cmp_codes)
        finally:
            _cleanup(metas)
        if not verdict.correct:
            return
    if not timing:
        return
    n = max(samples, 30)
    check = sorted(rng.sample(range(min(n, 30) - 1), 2) + [min(n, 30) - 1])
    resp = worker.request({"op": "time", "seed_base": secrets.randbits(40), "samples": n, "check": check,
                           "distribution": "normal"}, timeout_s=max(timeout_s, 600.0))
    if _error(verdict, resp):
        return
    verdict.add(audit.check_runtime({"tamper": resp.get("tamper", [])}))
    for c in resp.get("checked", []):
        try:
            codes, _ = ref.judge(c["outputs"], redraw(ref.template, int(c["seed"]), "normal"))
        finally:
            _cleanup(c["outputs"])
        if codes:
            verdict.add([f"stale_output: timed call {c['index']} returned a wrong answer ({codes[0]})"])
    if escaped := escaped_work(resp["timing"]):
        verdict.add([escaped])
    verdict.timing = resp["timing"]


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
    if problem.digest not in _given_cache:
        _given_cache[problem.digest] = make_inputs(problem, 0, "given", "cpu")
    return _given_cache[problem.digest]


def _main_dtype(problem: Problem) -> str:
    ts = [x for x in _cached_given(problem) if isinstance(x, torch.Tensor) and x.is_floating_point()]
    return str(ts[0].dtype) if ts else "torch.float32"


def time_reference(problem: Problem | str | Path, *, target: str = "cuda", compile: bool = True,
                   samples: int = 30, device_index: int = 0, timeout_s: float = 900.0) -> dict[str, Any]:
    """Eager (and torch.compile) timings of the reference, by the candidates' protocol, in one worker each."""
    problem = (problem if isinstance(problem, Problem) else load_problem(problem)).for_target(target)
    device = device_for(target, device_index)
    out: dict[str, Any] = {"device": None}
    for kind in ("eager", "compile") if compile else ("eager",):
        worker = WorkerProcess(device)
        try:
            resp = worker.request({"op": "load", "problem": str(problem.path), "reference": True,
                                   "compile": kind == "compile", "init_seed": 0, "template_seed": 0}, timeout_s=timeout_s)
            if "error" not in resp:
                resp = worker.request({"op": "time", "seed_base": secrets.randbits(40), "samples": samples,
                                       "check": []}, timeout_s=timeout_s)
            if "error" in resp:
                out[f"{kind}_error"] = resp.get("detail", resp["error"])[-2000:]
                continue
            out[f"{kind}_ms"] = resp["timing"]["ms"]
            out[kind] = resp["timing"]
            out["device"] = resp["timing"]["device"]
        except (TimeoutError, WorkerDied) as e:
            out[f"{kind}_error"] = f"{type(e).__name__}: {e}"
        finally:
            worker.kill()
    return out


def measure_facts(target: str = "cuda", device_index: int = 0, cache_dir: Path | None = None) -> dict[str, Any]:
    """Copy bandwidth and matmul rates of the device, measured in a worker once per machine and device."""
    from workbench.problem import REPO_ROOT

    device = device_for(target, device_index)
    name = torch.cuda.get_device_name(device_index) if target == "cuda" else "cpu"
    # The key names the timing protocol too: facts measured under another flush style are stale.
    key = f"{os.uname().nodename}-{name.replace(' ', '_')}-{device_index}-flush_{Timer.FLUSH}"
    cache = (cache_dir or REPO_ROOT / "outputs" / "cache") / f"facts-{key}.json"
    if cache.is_file():
        return json.loads(cache.read_text())
    worker = WorkerProcess(device)
    try:
        facts = worker.request({"op": "facts"}, timeout_s=300).get("facts", {})
    finally:
        worker.kill()
    if facts:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_text(json.dumps(facts))
    return facts
