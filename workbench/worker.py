"""One isolated evaluation process: load a candidate, run its trials, time it.

The judge (workbench.judge) starts `python -m workbench.worker --device D` for every
evaluation and talks to it in JSON lines: requests on stdin, replies on a private copy of
the original stdout (fd 1 itself is pointed at stderr so a candidate's prints cannot break
the protocol). The worker never sees a reference output: it sends the candidate's outputs
back through files and the judge compares them in its own process. A candidate that
crashes, hangs or corrupts its CUDA context takes only this process down.

Requests: load, trial, time, facts, exit. See the handlers below.
"""
from __future__ import annotations

import argparse
import builtins
import importlib.util
import itertools
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

SHM = Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir())
_counter = itertools.count()


def thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def harness_objects() -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    from workbench import problem, timing, verify

    return {"torch": torch, "torch.Tensor": torch.Tensor, "torch.cuda": torch.cuda, "torch.nn.functional": F,
            "torch.nn.Module": torch.nn.Module, "torch.testing": torch.testing, "torch.random": torch.random,
            "time": time, "json": json, "os": os, "builtins": builtins, "workbench.timing": timing,
            "workbench.timing.Timer": timing.Timer, "workbench.verify": verify, "workbench.problem": problem,
            "workbench.worker": sys.modules[__name__]}


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


def write_tensor(t: Any) -> dict[str, Any]:
    """Describe an output and, if it is a plain tensor, copy its bytes to a file for the judge."""
    import torch

    from workbench.verify import describe

    meta = describe(t)
    if meta.get("kind") == "tensor" and meta["type"] == "torch.Tensor" and meta["layout"] == "torch.strided":
        flat = t.detach().contiguous().reshape(-1).cpu()
        path = SHM / f"workbench-{os.getpid()}-{next(_counter)}.bin"
        flat.view(torch.uint8).numpy().tofile(path)
        meta["path"] = str(path)
    return meta


def as_list(out: Any) -> list[Any]:
    return list(out) if isinstance(out, (tuple, list)) else [out]


def overlaps(a: Any, b: Any) -> bool:
    import torch

    if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor)) or a.device != b.device:
        return False
    try:
        sa, sb = a.untyped_storage(), b.untyped_storage()
    except Exception:
        return False
    a0, b0 = sa.data_ptr(), sb.data_ptr()
    return a0 < b0 + sb.nbytes() and b0 < a0 + sa.nbytes() and sa.nbytes() > 0 and sb.nbytes() > 0


class Worker:
    def __init__(self, device: str):
        import torch

        from workbench.timing import Timer

        self.torch = torch
        self.device = torch.device(device)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.ones(1024, device=self.device).sum().item()  # context, allocator, first launch
        else:
            torch.randn(1 << 20).sum().item()  # starts the intra-op thread pool now, not during a trial
        import torch._dynamo  # noqa: F401  (importing it rewraps torch.manual_seed: do it before the snapshot)
        import torch.profiler  # noqa: F401

        self.timer = Timer(self.device)  # binds the C-level timer functions before any candidate runs
        self.sync: Callable[[], None] = self.timer._sync
        self.snapshot = harness_snapshot()
        self.problem: Any = None
        self.fn: Any = None
        self.template: list[Any] = []
        self.own_kernels: list[str] = []
        self.is_candidate = False

    # -- requests ---------------------------------------------------------------------------------
    def load(self, req: dict[str, Any]) -> dict[str, Any]:
        from workbench import audit, build
        from workbench.problem import construct, given_inputs, load_problem

        self.problem = load_problem(req["problem"], target=self.device.type)
        if req.get("reference"):
            cls = self.problem.module.Model
        else:
            self.is_candidate = True
            path = Path(req["candidate"])
            spec = importlib.util.spec_from_file_location(f"candidate_{os.getpid()}", path)
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            with build.patched_load_inline():
                spec.loader.exec_module(module)
            cls = getattr(module, "ModelNew", None)
            if cls is None:
                return {"error": "no_modelnew", "detail": f"{path.name} defines no ModelNew class"}
        model = construct(cls, self.problem.init_inputs(), int(req["init_seed"]), self.device)
        self.fn = self.torch.compile(model) if req.get("compile") else model
        self.template = given_inputs(self.problem, int(req["template_seed"]), self.device)
        self.own_kernels = sorted({k for b in build.BUILDS if b.ok
                                   for k in audit.kernel_names(Path(b.directory, "cuda.cu").read_text()
                                                               if Path(b.directory, "cuda.cu").is_file() else "")})
        return {"builds": [b.summary() for b in build.BUILDS], "own_kernels": self.own_kernels}

    def _poison(self, sizes: list[int]) -> None:
        """Fill memory the allocator will hand out next with NaN, so unwritten outputs show."""
        torch = self.torch
        blocks = [torch.full((max(1, n // 4),), float("nan"), device=self.device) for n in sizes for _ in range(2)]
        del blocks

    def _call(self, inputs: list[Any]) -> Any:
        with self.torch.no_grad():
            out = self.fn(*inputs)
        self.sync()
        return out

    def trial(self, req: dict[str, Any]) -> dict[str, Any]:
        from workbench.problem import make_inputs

        torch = self.torch
        inputs = make_inputs(self.problem, int(req["seed"]), req["distribution"], self.device, self.template)
        if req.get("perturb"):  # call once, change part of the same tensors in place; the second call is judged
            from workbench.problem import perturb

            self._call(inputs)
            perturb(inputs, int(req["seed"]), *req["perturb"])
        kept = [x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]
        self._poison(list(req.get("poison_bytes", [])))
        facts: dict[str, Any] = {}
        threads_before = thread_count()
        if req.get("audit"):
            out, facts = self._audited_call(inputs)
        else:
            out = self._call(inputs)
        outs = as_list(out)
        metas = [write_tensor(o) for o in outs]  # copied at once: later writes by stray work don't count
        threads_added = 0 if req.get("audit") else max(0, thread_count() - threads_before)
        mutated = [i for i, (x, k) in enumerate(zip(inputs, kept))
                   if isinstance(x, torch.Tensor) and not (x.shape == k.shape and torch.equal(x, k))]
        aliases = sorted({(j, i) for j, o in enumerate(outs) for i, x in enumerate(inputs) if overlaps(o, x)})
        facts.update(threads_added=threads_added, own_kernels=self.own_kernels)
        return {"outputs": metas, "input_mutated": mutated, "aliases": [list(a) for a in aliases], "facts": facts}

    def _audited_call(self, inputs: list[Any]) -> tuple[Any, dict[str, Any]]:
        """One call under the profiler: which aten ops and GPU kernels ran, and on which stream."""
        torch = self.torch
        from torch.profiler import ProfilerActivity, profile

        acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if self.device.type == "cuda" else [])
        with profile(activities=acts) as prof:
            torch.zeros(1, device=self.device)  # a marker kernel on the harness's stream
            self.sync()
            out = self._call(inputs)
        trace = SHM / f"workbench-trace-{os.getpid()}.json"
        prof.export_chrome_trace(str(trace))
        events = json.loads(trace.read_text()).get("traceEvents", [])
        trace.unlink(missing_ok=True)
        ops = sorted({e["name"] for e in events if e.get("cat") == "cpu_op"})
        kernels = sorted((e for e in events if e.get("cat") == "kernel"), key=lambda e: e.get("ts", 0))
        marker = kernels[0].get("args", {}).get("stream") if kernels else None
        return out, {"aten_ops": ops, "marker_stream": marker,
                     "kernels": [{"name": e["name"], "stream": e.get("args", {}).get("stream")} for e in kernels[1:]]}

    def time(self, req: dict[str, Any]) -> dict[str, Any]:
        from workbench.problem import redraw

        base, dist = int(req["seed_base"]), req.get("distribution", "normal")
        check = set(req.get("check", []))
        kept: dict[int, Any] = {}

        def inputs_for(i: int) -> list[Any]:
            return redraw(self.template, base + i, dist)

        def on_sample(i: int, out: Any) -> None:
            if i in check:
                kept[i] = [o.detach().clone() if isinstance(o, self.torch.Tensor) else o for o in as_list(out)]

        def call(*inputs: Any) -> Any:
            with self.torch.no_grad():
                return self.fn(*inputs)

        result = self.timer.run(call, inputs_for, samples=int(req.get("samples", 30)), warmup=int(req.get("warmup", 3)),
                                on_sample=on_sample, max_seconds=float(req.get("max_seconds", 60)))
        checked = [{"index": i, "seed": base + i, "outputs": [write_tensor(o) for o in outs]} for i, outs in sorted(kept.items())]
        return {"timing": result, "checked": checked}

    def facts(self, req: dict[str, Any]) -> dict[str, Any]:
        from workbench.timing import measure_device

        return {"facts": measure_device(self.device)}


def classify(e: BaseException) -> tuple[str, bool]:
    """(error kind, whether the process must exit) for an exception raised by candidate code."""
    from workbench.build import BuildError

    text = f"{type(e).__name__}: {e}"
    if isinstance(e, BuildError):
        return "build_error", False
    if "OutOfMemoryError" in type(e).__name__ or "out of memory" in text or "can't allocate memory" in text:
        return "oom", True
    if "CUDA error" in text or "illegal memory access" in text or "unspecified launch failure" in text \
            or "cudaError" in text or "device-side assert" in text or "AcceleratorError" in type(e).__name__:
        return "crash", True  # the CUDA context is gone; nothing after this in-process is trustworthy
    return "error", False


def serve(device: str, requests: Any, reply: Callable[[dict[str, Any]], None]) -> None:
    worker = Worker(device)
    reply({"ready": True, "pid": os.getpid()})
    for line in requests:
        req = json.loads(line)
        op = req.get("op")
        if op == "exit":
            return
        fatal = False
        try:
            resp = getattr(worker, op)(req) if op in ("load", "trial", "time", "facts") else {"error": "error", "detail": f"unknown op {op!r}"}
        except BaseException as e:  # noqa: BLE001 - candidate code can raise anything, SystemExit included
            kind, fatal = classify(e)
            resp = {"error": kind, "detail": "".join(traceback.format_exception(e))[-8000:]}
            if kind == "build_error":
                resp["log"] = e.result.log  # type: ignore[attr-defined]
        if worker.is_candidate:
            resp["tamper"] = tampered(worker.snapshot)
        resp["nonce"] = req.get("nonce")  # the judge ignores reply lines without its request's nonce
        reply(resp)
        if fatal:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--memory-limit-gb", type=float, default=0.0, help="cap the address space (CPU target)")
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

    serve(args.device, sys.stdin, reply)
    proto.close()
    os._exit(0)  # skip interpreter teardown: a broken candidate may hang or crash in destructors


if __name__ == "__main__":
    main()
