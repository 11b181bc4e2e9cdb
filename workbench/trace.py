"""What ran in each candidate call, read from the profiler's trace (chrome trace JSON events).

The worker labels every call with a profiler range (`wb:call:<label>`). A CPU op belongs to a
call when it starts inside the call's range; a GPU kernel belongs to a call when the runtime
call that launched it (matched by correlation id) did. Kernels run after their launch, so the
GPU span of a call (first kernel start to last kernel end) can end after the range does.
"""
from __future__ import annotations

import bisect
from typing import Any

_LAUNCH_CATS = {"cuda_runtime", "cuda_driver"}
_GPU_CATS = {"kernel", "gpu_memcpy", "gpu_memset"}


def _corr(e: dict[str, Any]) -> Any:
    return (e.get("args") or {}).get("correlation")


def call_facts(events: list[dict[str, Any]], call_prefix: str, harness_prefix: str) -> list[dict[str, Any]]:
    """One record per labelled call: its aten ops, kernels (name, stream, duration), spans."""
    ranges = sorted((e for e in events if e.get("ph") == "X" and e.get("cat") == "user_annotation"
                     and str(e.get("name", "")).startswith(call_prefix)), key=lambda e: e["ts"])
    if not ranges:
        return []
    starts = [r["ts"] for r in ranges]

    def owner(ts: float) -> int | None:
        i = bisect.bisect_right(starts, ts) - 1
        if i >= 0 and ts <= ranges[i]["ts"] + ranges[i].get("dur", 0):
            return i
        return None

    calls = [{"label": r["name"][len(call_prefix):], "host_us": float(r.get("dur", 0)), "aten_ops": set(),
              "top_ops": [], "kernels": [], "gpu_start": None, "gpu_end": None} for r in ranges]
    launch_of: dict[Any, int] = {}
    ops_by_call: dict[int, list[dict[str, Any]]] = {}
    for e in events:
        if e.get("ph") != "X":
            continue
        cat = e.get("cat")
        if cat == "cpu_op":
            i = owner(e["ts"])
            if i is not None and not str(e.get("name", "")).startswith(harness_prefix):
                calls[i]["aten_ops"].add(e["name"])
                ops_by_call.setdefault(i, []).append(e)
        elif cat in _LAUNCH_CATS and _corr(e) is not None:
            i = owner(e["ts"])
            if i is not None:
                launch_of[_corr(e)] = i
    for e in events:
        if e.get("ph") == "X" and e.get("cat") in _GPU_CATS and _corr(e) in launch_of:
            c = calls[launch_of[_corr(e)]]
            start, end = float(e["ts"]), float(e["ts"]) + float(e.get("dur", 0))
            c["gpu_start"] = start if c["gpu_start"] is None else min(c["gpu_start"], start)
            c["gpu_end"] = end if c["gpu_end"] is None else max(c["gpu_end"], end)
            if e.get("cat") == "kernel":
                c["kernels"].append({"name": e.get("name", ""), "stream": (e.get("args") or {}).get("stream"),
                                     "dur_us": float(e.get("dur", 0))})
    for i, c in enumerate(calls):
        c["top_ops"] = _top_level(ops_by_call.get(i, []))
        c["aten_ops"] = sorted(c["aten_ops"])
        c["span_us"] = (c["gpu_end"] - c["gpu_start"]) if c["gpu_start"] is not None else None
        del c["gpu_start"], c["gpu_end"]
    return calls


def _top_level(ops: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Ops not nested in another op of the same thread: (name, microseconds)."""
    out, open_until = [], {}
    for e in sorted(ops, key=lambda e: (e["ts"], -e.get("dur", 0))):
        tid, end = e.get("tid"), e["ts"] + e.get("dur", 0)
        if e["ts"] < open_until.get(tid, -1):
            continue
        open_until[tid] = end
        out.append({"name": e["name"], "us": float(e.get("dur", 0))})
    return out


def timed_spans(calls: list[dict[str, Any]], labels: list[str], enough: float = 0.8) -> list[float] | None:
    """CUPTI spans (ms) of the calls named in `labels` (the timed samples), or None when the
    profiler saw kernels in fewer than `enough` of them (the events then stand as the time)."""
    spans = {c["label"]: c["span_us"] / 1e3 for c in calls if c.get("span_us")}
    values = [spans[s] for s in labels if s in spans]  # time_remote lists the timed samples only
    return values if labels and len(values) >= enough * len(labels) else None
