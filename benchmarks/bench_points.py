"""Time many trusted kernel files of one problem in this process: the fast path of an exhaustive sweep.

    from benchmarks.bench_points import bench
    rows = bench(problem, paths, target)        # {path: {"status", "ms", "reasons"}}

For the points of our own seeds' tuning spaces only. The judge spends ~2.5 s on a point (a fresh
confined worker, seven trials, thirty timed samples, the audits); a sweep of 420-504 points through
it takes most of a session's device time. Here each point is imported once (its extensions already
built, see `prebuild_all`), checked once on the problem's given inputs against the reference at
the judge's calibrated tolerance, and timed with the judge's own timer (L2 flushed, spin lead,
event pair): ~0.1 s a point. It is not a judge: no confinement, no audit, no hidden seeds, so a
candidate of unknown origin must never be timed here. tuner_vs_sweep.py re-judges the best points
it finds with the judge, in the same run, and reports both.
"""
from __future__ import annotations

import statistics
import traceback
from pathlib import Path
from typing import Any

import torch


def bench(problem: Any, paths: list[Path], target: str, samples: int = 20, warmup: int = 3,
          device_index: int = 0, seed: int = 1234) -> dict[Path, dict[str, Any]]:
    """Each path's row: status (correct | incorrect | build_error | error), median event ms, reasons."""
    from workbench import build, verify
    from workbench.judge import Reference
    from workbench.problem import ProblemError, construct, load_module
    from workbench.timing import Timer
    from workbench.worker_process import device_for

    problem = problem.for_target(target)
    device = device_for(target, device_index)
    timer = Timer(device)
    ref = Reference(problem, device, seed, seed)
    expected = verify.tensor_leaves(ref.outputs(ref.template))
    inputs = ref.template
    rows: dict[Path, dict[str, Any]] = {}
    for n, path in enumerate(paths):
        row: dict[str, Any] = {"status": "error", "ms": None, "reasons": []}
        fn = None
        try:
            with build.patched_load_inline():
                module = load_module(path, f"bench_point_{n}")
            fn = construct(module.ModelNew, problem.init_inputs(), seed, device)
            with torch.no_grad():
                got = verify.tensor_leaves(fn(*inputs))
                bad = [c for o, r in zip(got, expected) for c in verify.compare(o, r, ref.tol).codes]
                if len(got) != len(expected):
                    bad.append(f"wrong_output: {len(got)} tensors instead of {len(expected)}")
                if bad:
                    row.update(status="incorrect", reasons=bad[:2])
                else:
                    for _ in range(warmup):
                        fn(*inputs)
                    times = [timer.sample(fn, inputs) for _ in range(samples)]
                    ms = [t[0] if t[0] is not None else t[1] for t in times]  # events on a GPU, wall on the CPU
                    row.update(status="correct", ms=statistics.median(ms), reasons=[])
        except ProblemError as e:  # load_module's wrapping of the import's own error
            cause = e.__cause__
            if isinstance(cause, build.BuildError):
                row.update(status="build_error", reasons=[str(cause).splitlines()[0]], build_log=cause.result.log[-4000:])
            else:
                row["reasons"] = [str(e)[-400:]]
        except Exception as e:  # noqa: BLE001 - one point's failure is its row, not the sweep's end
            row["reasons"] = ["".join(traceback.format_exception_only(e)).strip()[-400:]]
        del fn
        rows[path] = row
        if target == "cuda" and not _context_alive(device):
            row["reasons"].append("the CUDA context did not survive this point: the rest is left unbenched")
            break  # a sticky fault (an illegal address): the caller judges what is left in fresh workers
    return rows


def _context_alive(device: str) -> bool:
    try:
        torch.cuda.synchronize(device)
        return True
    except Exception:  # noqa: BLE001 - any error here means the context is gone
        return False
