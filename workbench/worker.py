"""One confined evaluation process: the problem's inputs, the candidate's calls, their timing.

The judge (workbench.judge through workbench.worker_process) starts `python -m workbench.worker`
in a sandbox for every evaluation and talks to it in JSON lines: requests on stdin, replies on
a private copy of the original stdout (fd 1 itself points at stderr, so a candidate's prints
cannot break the protocol). This process is the candidate's: everything in it can be read or
forged by the candidate's code, so the judge decides nothing on a reply alone. Outputs come
back as bytes in files of the worker's scratch directory and are compared in the judge's own
process; times are bracketed by the judge's clock; the profiler runs from before the candidate
is imported until the evaluation ends, over every call, so there is no unwatched call.

Requests, in the order the judge sends them:
  problem   load the problem (trusted code), draw the input template on the device
  sample    one timed sample (`noop` before the candidate is loaded: the judge's calibration)
  load      import the candidate (its builds are requested from the judge: `need_build`)
  trial     one correctness call (a probe calls, changes part of the inputs in place, calls again)
  fetch     the outputs of the last sample, written for the judge
  finish    stop the profiler; the facts of every call (ops, kernels, streams, spans)
  facts     device ceilings (a worker of its own)
  exit
"""
from __future__ import annotations

import argparse
import builtins
import importlib.util
import itertools
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Callable


def _import_torch_without_numpy_bridge() -> Any:
    """Import torch with its NumPy bridge off for the life of this process: strict judging means
    the candidate's own kernels compute, and NumPy's would run unseen by the profiler. torch sets up
    the bridge (Tensor.numpy, torch.from_numpy, numpy.asarray(tensor)) in C, once; with numpy
    unimportable at that moment it stays off, while numpy itself stays importable (a reference may
    use it for constants). Only a slow way round is left: Python objects (tolist), O(n) per call."""
    import warnings

    held = sys.modules.get("numpy", ...)
    sys.modules["numpy"] = None  # type: ignore[assignment]  # makes `import numpy` fail
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Failed to initialize NumPy": the point
            import torch
            try:
                torch.zeros(1).numpy()  # a bridge set up on first use fails here, now
            except (RuntimeError, ImportError):
                pass
    finally:
        if held is ...:
            del sys.modules["numpy"]
        else:
            sys.modules["numpy"] = held
    return torch


torch = _import_torch_without_numpy_bridge()
from torch.autograd.profiler import record_function  # noqa: E402
from torch.profiler import ProfilerActivity  # noqa: E402
from torch.profiler import profile as make_profile  # noqa: E402

# Everything the harness needs is bound here, before the candidate exists: once the guard is
# armed, the harness's modules leave sys.modules and an import of them is refused.
from workbench import audit, build, exchange, syscall_filter, timing, verify
from workbench import problem as problems
from workbench.trace import call_facts

_THIS = sys.modules[__name__]
try:  # the runtime guard (PEP 578 audit hook); the worker runs without it only while it is being written
    from workbench import guard as _guard
except ImportError:
    _guard = None
# Output elements read inside each timed call's region on the cpu target (Worker._probe).
PROBES = 16
# Device types whose candidate workers start no process and run no program once the candidate is
# imported (workbench.syscall_filter). Not yet "cuda": the filter has not run under the GPU tests.
SYSCALL_FILTER = ("cpu",)
WORKER_CONTEXT = "wb:"  # every harness range starts with this
CALL = WORKER_CONTEXT + "call:"  # the range of a candidate call; the suffix names it


def thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def harness_objects() -> dict[str, Any]:
    import torch.nn.functional as F

    return {"torch": torch, "torch.Tensor": torch.Tensor, "torch.cuda": torch.cuda, "torch.nn.functional": F,
            "torch.nn.Module": torch.nn.Module, "torch.testing": torch.testing, "torch.random": torch.random,
            "time": time, "json": json, "os": os, "builtins": builtins, "workbench.timing": timing,
            "workbench.timing.Timer": timing.Timer, "workbench.verify": verify, "workbench.problem": problems,
            "workbench.build": build, "workbench.worker": _THIS}


def harness_snapshot() -> dict[tuple[str, str], int]:
    """Identity of every public callable the harness relies on, to detect patching."""
    snap = {}
    for label, obj in harness_objects().items():
        for k, v in list(vars(obj).items()):
            if callable(v) and not k.startswith("__"):
                snap[(label, k)] = id(v)
    return snap


def tampered(snapshot: dict[tuple[str, str], int]) -> list[str]:
    objs = harness_objects()
    return [f"{label}.{k}" for (label, k), ident in snapshot.items()
            if id(vars(objs[label]).get(k)) != ident]


def _suspended() -> Any:
    """The harness's own work that the guard refuses a candidate (the guard honours it from harness code only)."""
    import contextlib

    return _guard.suspended() if _guard is not None else contextlib.nullcontext()


def overlaps(a: Any, b: Any) -> bool:
    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.device != b.device:
        return False
    try:
        sa, sb = a.untyped_storage(), b.untyped_storage()
    except Exception:
        return False
    a0, b0 = sa.data_ptr(), sb.data_ptr()
    return a0 < b0 + sb.nbytes() and b0 < a0 + sa.nbytes() and sa.nbytes() > 0 and sb.nbytes() > 0


class Worker:
    def __init__(self, device: str, scratch: Path, profile: bool, requests: Any, reply: Callable[[dict], None]):
        if _guard is not None:
            _guard.install()

        self.torch = torch
        self.device = torch.device(device)
        self.scratch = scratch
        self.slots = exchange.Slots(scratch, pin=self.device.type == "cuda")
        self.requests, self.reply = requests, reply
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.ones(1024, device=self.device).sum().item()  # context, allocator, first launch
        else:
            torch.randn(1 << 20).sum().item()  # starts the intra-op thread pool now, not during a trial
        self.timer = timing.Timer(self.device)  # binds the C-level timer functions before any candidate runs
        self.sync: Callable[[], None] = self.timer._sync
        self.problem: Any = None
        self.fn: Any = None
        self.template: list[Any] = []
        self.own_kernels: list[str] = []
        self.is_candidate = False
        self.last_out: Any = None
        self.last_probe: Any = None
        self._probe_rng = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little"))
        self.nonce: str | None = None
        self.threads: dict[str, int] = {}
        self.prof: Any = None
        if profile:  # on from before the candidate exists until `finish`: every call is watched alike
            self._start_profiler()
        self.snapshot = harness_snapshot()
        self.identity = self._identity()

    def _identity(self) -> dict[str, int]:
        """Identity of the objects this worker answers with (a candidate reaching this object could swap them)."""
        t = self.timer
        return {name: id(obj) for name, obj in (("reply", self.reply), ("requests", self.requests), ("timer", t),
                                                ("sync", self.sync), ("record", getattr(t, "_record", None)),
                                                ("elapsed", getattr(t, "_elapsed", None)), ("perf", t._perf),
                                                ("sample", type(t).sample), ("write", type(self)._write))}

    def swapped(self) -> list[str]:
        return [f"worker.{k}" for k, v in self._identity().items() if self.identity.get(k) != v]

    # -- helpers ------------------------------------------------------------------------------------------
    def _range(self, label: str) -> Any:
        return record_function(WORKER_CONTEXT + label)

    def _call(self, inputs: list[Any], label: str, sync: bool = True, fn: Any = None) -> Any:
        """One candidate (or reference) call inside a labelled profiler range.

        In a timed sample the timer syncs after its end event, so the call must not (sync=False).
        """
        with self.torch.no_grad(), self._range("call:" + label):
            out = (fn or self.fn)(*inputs)
        if sync:
            self.sync()
        return out

    def _count_threads(self, label: str, before: int) -> None:
        added = thread_count() - before
        if added > 0:
            self.threads[label] = added

    def _write(self, out: Any, probes: list[Any] | None = None) -> dict[str, Any]:
        """The output tree, every plain tensor's bytes in its slot file of the scratch (workbench.exchange),
        and with `probes` (a timed call's, from _probe: one per tensor leaf, in the same order) each
        leaf's probe beside it."""
        torch = self.torch
        position = itertools.count()
        leaf_probes = iter(probes or [])

        def leaf(t: Any) -> dict[str, Any]:
            extra: dict[str, Any] = {}
            if probes is not None:
                p = next(leaf_probes, None)
                extra["probe"] = None if p is None else {"flat": p[0].tolist(), "values": p[1].tolist()}
            if type(t) is not torch.Tensor or t.layout != torch.strided:
                return extra
            flat = t.detach().contiguous().reshape(-1)
            flat = flat.view(torch.uint8) if flat.dtype != torch.bool else flat.to(torch.uint8)
            return {"path": self.slots.put(next(position), flat), **extra}

        return verify.describe_tree(out, leaf)

    # -- requests -----------------------------------------------------------------------------------------
    def problem_op(self, req: dict[str, Any]) -> dict[str, Any]:
        self.problem = problems.load_problem(req["problem"], target=self.device.type)
        self.template = problems.given_inputs(self.problem, int(req["template_seed"]), self.device)
        if self.prof is not None:  # the harness's own stream, for the audit: one kernel in a labelled call
            with self._range("call:marker"):
                self.torch.zeros(1, device=self.device)
            self.sync()
        if req.get("reference"):
            model = problems.construct(self.problem.module.Model, self.problem.init_inputs(), int(req["init_seed"]), self.device)
            self.fn = self.torch.compile(model) if req.get("compile") else model
        return {"template_bytes": problems.tensor_bytes(self.template)}

    def load(self, req: dict[str, Any]) -> dict[str, Any]:
        self.is_candidate = True
        path = Path(req["candidate"])
        build.BUILDER = self._request_build
        sys.dont_write_bytecode = True  # importing the candidate must not write next to its file
        filtered = "not filtered on this device type"
        if self.device.type in SYSCALL_FILTER:  # before any candidate code: a process it forks is unseen
            filtered = syscall_filter.install() or "process creation and exec refused (seccomp)"
        if _guard is not None:  # from here on the process is the candidate's: refuse what it may not do
            _guard.arm(writable=[str(self.scratch)])
            for name in [m for m in sys.modules if m == "workbench" or m.startswith("workbench.")]:
                del sys.modules[name]
        spec = importlib.util.spec_from_file_location(f"candidate_{os.getpid()}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        with build.patched_load_inline(), self._range("load"):
            spec.loader.exec_module(module)
            cls = getattr(module, "ModelNew", None)
            if cls is None:
                return {"error": "no_modelnew", "detail": f"{path.name} defines no ModelNew class"}
            self.fn = problems.construct(cls, self.problem.init_inputs(), int(req["init_seed"]), self.device)
        self.own_kernels = sorted({k for b in build.BUILDS if b.ok
                                   for k in audit.kernel_names(Path(b.directory, "cuda.cu").read_text()
                                                               if Path(b.directory, "cuda.cu").is_file() else "")})
        return {"builds": [b.summary() for b in build.BUILDS], "own_kernels": self.own_kernels,
                "syscall_filter": filtered}

    def _request_build(self, spec: Any) -> Any:
        """The cache is read-only here: ask the judge to build what it does not hold yet."""
        found = build.cached(spec)
        if found is not None:
            return found
        self.reply({"need_build": build.spec_to_json(spec), "nonce": self.nonce})
        line = self.requests.readline()
        if not line:
            raise EOFError("the judge closed the request channel during a build")
        return build.result_from_json(json.loads(line)["built"])

    def _poison(self, sizes: list[int]) -> None:
        """Fill memory the allocator will hand out next with NaN, so unwritten outputs show."""
        torch = self.torch
        blocks = [torch.full((max(1, n // 4),), float("nan"), device=self.device) for n in sizes for _ in range(2)]
        del blocks

    def trial(self, req: dict[str, Any]) -> dict[str, Any]:
        torch = self.torch
        self.last_out = self.last_probe = None
        label = str(req.get("label", "trial"))
        inputs = problems.make_inputs(self.problem, int(req["seed"]), req["distribution"], self.device, self.template)
        if req.get("perturb"):  # call once, change part of the same tensors in place; the second call is judged
            self._call(inputs, label + ".before-change")
            problems.perturb(inputs, int(req["seed"]), *req["perturb"])
        kept = [x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]
        self._poison(list(req.get("poison_bytes", [])))
        before = thread_count()
        out = self._call(inputs, label)
        self._count_threads(label, before)
        tree = self._write(out)  # copied at once: later writes by stray work don't count
        outs = verify.tensor_leaves(out)
        mutated = [i for i, (x, k) in enumerate(zip(inputs, kept))
                   if isinstance(x, torch.Tensor) and not (x.shape == k.shape and torch.equal(x, k))]
        aliases = sorted({(j, i) for j, o in enumerate(outs) for i, x in enumerate(inputs) if overlaps(o, x)})
        return {"output": tree, "input_mutated": mutated, "aliases": [list(a) for a in aliases]}

    def sample(self, req: dict[str, Any]) -> dict[str, Any]:
        """One timed sample on fresh inputs; its output is kept until the next request (`fetch`)."""
        inputs = problems.redraw(self.template, int(req["seed"]), req.get("distribution", "normal"))
        label = str(req.get("label", "sample"))
        # Calibration: the same path, with one tiny harness kernel in place of the candidate's call, so the
        # profiler's work for a watched launch is in the calibration too.
        target = self._tiny if req.get("noop") else None

        probed: list[Any] = []

        def fn(*xs: Any) -> Any:
            out = self._call(list(xs), label, sync=False, fn=target)
            if self.device.type == "cpu":  # inside the timed region: see _probe
                probed.append(self._probe(out))
            return out
        before = thread_count()
        ev, wall, out = self.timer.sample(fn, inputs)
        self._count_threads(label, before)
        self.last_out = out
        self.last_probe = probed[0] if probed else None
        return {"ms": ev, "wall_ms": wall}

    def _probe(self, out: Any) -> list[Any]:
        """PROBES elements of every tensor leaf, read as the call returns, inside its timed region, at
        offsets drawn then (os.urandom). On the cpu target a candidate can hand its work to a thread
        that already exists and let it finish the output between the calls, unseen by the thread count
        and the call's time: these reads then either wait for it inside the timed call (a fault handler
        holding reads) or return values the fetched output contradicts (the judge compares them)."""
        torch = self.torch
        probes: list[Any] = []
        for t in verify.tensor_leaves(out):
            if type(t) is not torch.Tensor or t.layout != torch.strided or t.numel() == 0:
                probes.append(None)
                continue
            flat = torch.randint(t.numel(), (PROBES,), generator=self._probe_rng)
            t = t.detach()
            probes.append((flat, t.reshape(-1)[flat] if t.is_contiguous() else t[torch.unravel_index(flat, t.shape)]))
        return probes  # ~7 us for a contiguous output on the 2-core box: inside every cpu timing, eager's too

    def _tiny(self, *_: Any) -> Any:
        return self.torch.zeros(1, device=self.device)

    def fetch(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"output": self._write(self.last_out, self.last_probe)}

    def finish(self, req: dict[str, Any]) -> dict[str, Any]:
        self.last_out = None
        facts: dict[str, Any] = {"calls": [], "threads": self.threads}
        if self.prof is not None:
            self.prof.stop()
            trace = self.scratch / "trace.json"
            self.prof.export_chrome_trace(str(trace))
            events = json.loads(trace.read_text()).get("traceEvents", [])
            trace.unlink(missing_ok=True)
            facts["calls"] = call_facts(events, CALL, WORKER_CONTEXT)
            self.prof = None
        facts["own_kernels"] = self.own_kernels
        return {"facts": facts}

    def facts(self, req: dict[str, Any]) -> dict[str, Any]:
        return {"facts": timing.measure_device(self.device)}

    def start_profiler(self, req: dict[str, Any]) -> dict[str, Any]:
        """Reference workers: watch from here on (after torch.compile's warm-up), for the same clock."""
        self._start_profiler()
        return {}

    def _start_profiler(self) -> None:
        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device.type == "cuda" else [])
        self.prof = make_profile(activities=acts)
        self.prof.start()


def classify(e: BaseException) -> tuple[str, bool]:
    """(error kind, whether the process must exit) for an exception raised by candidate code."""
    text = f"{type(e).__name__}: {e}"
    if isinstance(e, build.BuildError):
        return "build_error", False
    if "OutOfMemoryError" in type(e).__name__ or "out of memory" in text or "can't allocate memory" in text:
        return "oom", True
    if "CUDA error" in text or "illegal memory access" in text or "unspecified launch failure" in text \
            or "cudaError" in text or "device-side assert" in text or "AcceleratorError" in type(e).__name__:
        return "crash", True  # the CUDA context is gone; nothing after this in-process is trustworthy
    return "error", False


OPS = {"problem": "problem_op", "load": "load", "trial": "trial", "sample": "sample", "fetch": "fetch",
       "finish": "finish", "facts": "facts", "start_profiler": "start_profiler"}


def serve(worker: Worker) -> None:
    worker.reply({"ready": True, "pid": os.getpid()})
    for line in worker.requests:
        req = json.loads(line)
        op = req.get("op")
        if op == "exit":
            return
        worker.nonce = req.get("nonce")
        fatal = False
        try:
            if op not in OPS:
                raise ValueError(f"unknown op {op!r}")
            resp = getattr(worker, OPS[op])(req)
        except BaseException as e:  # noqa: BLE001 - candidate code can raise anything, SystemExit included
            kind, fatal = classify(e)
            with _suspended():  # formatting walks the traceback's frames, which the guard refuses the candidate
                resp = {"error": kind, "detail": "".join(traceback.format_exception(e))[-8000:]}
            if kind == "build_error":
                resp["log"] = e.result.log  # type: ignore[attr-defined]
        if worker.is_candidate and op != "sample":  # not on the timed path; patches persist until `finish`
            resp["tamper"] = tampered(worker.snapshot) + worker.swapped()
            if _guard is not None:
                resp["tamper"] += [f"guard: {v}" for v in _guard.violations()]
        resp["nonce"] = worker.nonce  # the judge ignores reply lines without its request's nonce
        worker.reply(resp)
        if fatal:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--scratch", required=True, help="the one directory this worker writes")
    parser.add_argument("--memory-limit-gb", type=float, default=0.0, help="cap the address space (CPU target)")
    parser.add_argument("--no-profile", dest="profile", action="store_false", help="reference workers: no profiler")
    args = parser.parse_args()
    if args.memory_limit_gb > 0:
        import resource

        limit = int(args.memory_limit_gb * (1 << 30))
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    proto = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # whatever the candidate prints lands in the worker's log, not in the protocol

    def reply(obj: dict[str, Any]) -> None:
        proto.write(json.dumps(obj) + "\n")
        proto.flush()

    serve(Worker(args.device, Path(args.scratch), args.profile, sys.stdin, reply))
    proto.close()
    os._exit(0)  # skip interpreter teardown: a broken candidate may hang or crash in destructors


if __name__ == "__main__":
    main()
