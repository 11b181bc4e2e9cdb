"""Tables and matplotlib figures of runs, built from their event logs only.

Every function takes RunStore(s) and reads `store.events(...)`; nothing is re-measured.
matplotlib is imported inside the plotting functions (and forced to a non-interactive
backend when no display backend was chosen), so importing this module is cheap.

What a reader may trust: the best kernel of an operator comes from FINISHED runs only (an `end`
event; killed runs are listed apart), is never a candidate judged in the screening stage only,
and is ranked by its slow end (p90 of the timing samples), so one lucky sample cannot win; a best
whose p10..p90 spread is wider than SPREAD_LIMIT of its median is marked noisy and loses to any
trusted one. Ratios never mix devices: a candidate timed on another device than the run's
baseline gets no speedup, and operators are grouped by device.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from workbench import fastp
from workbench.store import RunStore

STATUS_COLOURS = {"correct": "tab:green", "incorrect": "tab:red", "build_error": "tab:orange",
                  "error": "tab:purple", "timeout": "tab:brown", "crash": "tab:pink", "rejected": "black",
                  "model_error": "tab:gray", "pending": "lightgray", "seed": "tab:blue"}
UNITS = "speedup vs torch eager (x)"
SPREAD_LIMIT = 0.25  # (p90 - p10) / median above this: the timing is too noisy to crown a kernel
# Failure kinds as the report names them, from the verdict's status (model_error: the model gave no code).
FAILURE_KINDS = {"build_error": "build", "model_error": "model", "timeout": "timeout", "crash": "crash",
                 "rejected": "rejected", "incorrect": "incorrect", "error": "error"}
# The pool's old way of marking what a stop left unjudged: still pending, not a failure.
UNJUDGED = "search stopped before this candidate was judged"


# -- small helpers -------------------------------------------------------------------------------------
def problem_name(store: RunStore) -> str:
    """The problem a run worked on, as a short name (a path names it by its folder or stem)."""
    try:
        problem = str(store.params.get("problem", store.run_id))
    except (OSError, ValueError):
        return store.run_id
    p = Path(problem)
    name = p.parent.name if p.name == "reference.py" else (p.stem if p.suffix == ".py" else p.name)
    return re.sub(r"[^\w.-]", "_", name) or store.run_id


def short(text: str | None, n: int = 32) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= n else text[: n - 1] + "…"


def _ok(v: dict[str, Any] | None) -> bool:
    return bool(v) and v.get("status") == "correct" and bool(v.get("ms"))


def _num(x: Any) -> float | None:
    return float(x) if isinstance(x, (int, float)) and math.isfinite(x) else None


def unjudged(v: dict[str, Any]) -> bool:
    return v.get("status") == "error" and any(UNJUDGED in str(r) for r in v.get("reasons") or [])


def baseline_device(store: RunStore) -> str | None:
    """The device the run's eager/compile baseline was timed on (every ratio of the run is against it)."""
    baseline = store.get("baseline") or {}
    return baseline.get("device") or ((store.get("facts") or {}).get("facts") or {}).get("device")


def spread(v: dict[str, Any] | None) -> dict[str, float | None]:
    """p10, p90 and (p90 - p10) / median of a verdict's timing samples (None when it has no samples)."""
    events = ((v or {}).get("timing") or {}).get("events") or {}
    p10, p90, med = _num(events.get("p10")), _num(events.get("p90")), _num((v or {}).get("ms"))
    rel = (p90 - p10) / med if p10 is not None and p90 is not None and med else None
    return {"p10": p10, "p90": p90, "spread": rel}


def candidates(store: RunStore) -> list[dict[str, Any]]:
    """One row per candidate event (judged or not), joined with its idea and verdict."""
    verdicts = {e["candidate"]: e for e in store.events("verdict") if not unjudged(e)}
    ideas = {e["id"]: e for e in store.events("idea")}
    base_device = baseline_device(store)
    rows = []
    for c in store.events("candidate"):
        v = verdicts.get(c["candidate"])
        # never made: a model that gave no code failed; a tuner with nothing left to try did not
        not_made = "not_made" if c.get("model") == "tuner" else "model_error"
        status = v["status"] if v else (not_made if c.get("failed") else "pending")
        timing = (v or {}).get("timing") or {}
        device = (v or {}).get("device_name") or timing.get("device")
        # A ratio against a baseline timed on another device model means nothing: drop it.
        comparable = not (device and base_device and device != base_device)
        sp = spread(v)
        usage = c.get("usage") or {}
        rows.append({"candidate": c["candidate"], "round": c.get("round", 0), "parent": c.get("parent"),
                     "model": c.get("model"), "idea": (ideas.get(c.get("idea") or "") or {}).get("text", ""),
                     "status": status, "kind": FAILURE_KINDS.get(status), "codes": list((v or {}).get("codes") or []),
                     "correct": _ok(v), "stage": (v or {}).get("stage"), "device": device,
                     "ms": _num((v or {}).get("ms")), **sp,
                     "noisy": sp["spread"] is not None and sp["spread"] > SPREAD_LIMIT,
                     "speedup_eager": _num((v or {}).get("speedup_eager")) if comparable else None,
                     "speedup_compile": _num((v or {}).get("speedup_compile")) if comparable else None,
                     "roofline_fraction": _num((v or {}).get("roofline_fraction")),
                     "comparable": comparable,
                     "reasons": (v or {}).get("reasons") or ([c["error"]] if c.get("error") else []),
                     "tokens": int(usage.get("input_tokens") or 0) + int(usage.get("output_tokens") or 0),
                     "repair_of": c.get("repair_of")})
    return rows


def eligible(row: dict[str, Any]) -> bool:
    """May this candidate be called the best: correct, fully judged (not screening only), timed comparably."""
    return row["correct"] and row["stage"] != "screen" and row["comparable"] and row["ms"] is not None


def screened_only(row: dict[str, Any]) -> bool:
    """Passed one trial but was slower in a short timing than the kernels kept: never judged in full."""
    return row["status"] == "screened" or (row["correct"] and row["stage"] == "screen")


def pick_best(rows: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The best eligible candidate: trusted timings first, then the fastest slow end (p90; median without it)."""
    ok = [r for r in rows if eligible(r)]
    return min(ok, key=lambda r: (r["noisy"], r["p90"] if r["p90"] is not None else r["ms"]), default=None)


def run_state(store: RunStore) -> dict[str, Any]:
    """finished (an `end` event; detail: why it stopped early, if it did), killed (no end: killed or still
    running; its results are partial) or empty."""
    if store.events("end"):
        stopped = store.events("stopped")
        return {"state": "finished", "detail": stopped[-1].get("reason", "") if stopped else ""}
    if not store.events():
        return {"state": "empty", "detail": "no events recorded"}
    return {"state": "killed", "detail": f"no end event after {len(store.events())} events"}


def failures(store: RunStore) -> list[dict[str, Any]]:
    """Candidates that did not pass, with their kind, codes and first reasons (what went wrong, per candidate)."""
    return [{"candidate": r["candidate"], "round": r["round"], "kind": r["kind"], "status": r["status"],
             "codes": ", ".join(r["codes"]), "reason": short("; ".join(map(str, r["reasons"][:2])), 200)}
            for r in candidates(store) if r["kind"]]


def failure_counts(store: RunStore) -> dict[str, int]:
    """How many candidates failed in each kind (build, model, timeout, crash, rejected, incorrect, error),
    plus failed ideas (a model call that gave no usable idea) as model failures."""
    counts: dict[str, int] = {}
    for r in candidates(store):
        if r["kind"]:
            counts[r["kind"]] = counts.get(r["kind"], 0) + 1
    bad_ideas = sum(1 for e in store.events("idea") if e.get("failed"))
    if bad_ideas:
        counts["model"] = counts.get("model", 0) + bad_ideas
    return counts


def rejected_codes(store: RunStore) -> dict[str, int]:
    """Why rejected candidates were rejected: code -> count."""
    out: dict[str, int] = {}
    for r in candidates(store):
        if r["status"] == "rejected":
            for code in r["codes"] or ["(no code)"]:
                out[code] = out.get(code, 0) + 1
    return out


def failures_text(store: RunStore) -> str:
    """One line: 'build 2, timeout 1, rejected 1 (forbidden_source)'."""
    counts = failure_counts(store)
    codes = rejected_codes(store)
    parts = []
    for kind in dict.fromkeys(FAILURE_KINDS.values()):
        if counts.get(kind):
            extra = f" ({', '.join(sorted(codes))})" if kind == "rejected" and codes else ""
            parts.append(f"{kind} {counts[kind]}{extra}")
    return ", ".join(parts)


# -- trajectory -------------------------------------------------------------------------------------------
def trajectory(store: RunStore) -> list[dict[str, Any]]:
    """Best speedup vs eager after each round: one row per round seen in the log (round events or candidates)."""
    rows = candidates(store)
    rounds = sorted({r["round"] for r in rows} | {e["round"] for e in store.events("round")})
    out, best = [], None
    for r in rounds:
        mine = [c for c in rows if c["round"] == r]
        ok = [c for c in mine if eligible(c) and c["speedup_eager"] is not None]
        round_best = max(ok, key=lambda c: c["speedup_eager"]) if ok else None
        if round_best and (best is None or round_best["speedup_eager"] > best["speedup_eager"]):
            best = round_best
        out.append({"round": r, "candidates": len(mine), "correct": len(ok),
                    "round_best": round_best["candidate"] if round_best else None,
                    "round_best_speedup": round_best["speedup_eager"] if round_best else None,
                    "round_best_idea": round_best["idea"] if round_best else None,
                    "best": best["candidate"] if best else None,
                    "best_speedup_eager": best["speedup_eager"] if best else None,
                    "best_speedup_compile": best["speedup_compile"] if best else None})
    return out


def _pyplot() -> Any:
    """pyplot, on the Agg backend when no display is available and no notebook backend was chosen."""
    import os

    import matplotlib

    backend = matplotlib.get_backend().lower()
    if not os.environ.get("DISPLAY") and not any(k in backend for k in ("agg", "inline", "ipympl", "widget", "nbagg")):
        matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _axes(ax: Any, figsize: tuple[float, float] = (7, 4)) -> tuple[Any, Any]:
    if ax is None:
        fig, ax = _pyplot().subplots(figsize=figsize, layout="constrained")
        return fig, ax
    return ax.figure, ax


def _times_formatter(value: float, _pos: Any = None) -> str:
    return f"{value:g}x"


def plot_trajectory(store: RunStore, ax: Any = None, title: str | None = None, strip: Any = None) -> Any:
    """Correct candidates by round (speedup, log axis) with the best-so-far line and the round bests' ideas;
    failed candidates in a strip of their own below (`strip`, made under `ax` when not given), one row per
    failure kind, so none can be read as a slow kernel."""
    from matplotlib.ticker import FuncFormatter, LogLocator

    if ax is None:
        fig, (ax, strip) = _pyplot().subplots(2, 1, figsize=(7, 4.8), sharex=True, height_ratios=[3, 1],
                                              layout="constrained")
    elif strip is None:
        from mpl_toolkits.axes_grid1 import make_axes_locatable

        strip = make_axes_locatable(ax).append_axes("bottom", size="28%", pad=0.08, sharex=ax)
    fig = ax.figure
    rows = candidates(store)
    traj = trajectory(store)
    ok = [r for r in rows if eligible(r) and r["speedup_eager"] is not None]
    screened = [r for r in rows if screened_only(r) and r["speedup_eager"] is not None]
    bad = [r for r in rows if r["kind"]]
    if screened:  # correct on one trial, slower in a short timing than the kernels kept: not judged in full
        ax.scatter([r["round"] for r in screened], [r["speedup_eager"] for r in screened], s=28, facecolors="none",
                   edgecolors="tab:gray", label="screened out (short timing)", zorder=3)
    for noisy, colour, label in ((False, "tab:green", "correct"), (True, "tab:olive", "correct, noisy timing")):
        pts = [r for r in ok if r["noisy"] == noisy]
        if pts:
            ax.scatter([r["round"] for r in pts], [r["speedup_eager"] for r in pts], c=colour, s=28, alpha=0.85,
                       label=label, zorder=3)
    line = [(t["round"], t["best_speedup_eager"]) for t in traj if t["best_speedup_eager"] is not None]
    if line:
        ax.step([x for x, _ in line], [y for _, y in line], where="post", color="tab:blue", lw=2,
                label="best so far", zorder=2)
    for t in traj:
        if t["round_best_speedup"] is not None:
            label = short(t["round_best_idea"], 24) or t["round_best"]
            ax.annotate(label, (t["round"], t["round_best_speedup"]), textcoords="offset points", xytext=(4, 4),
                        fontsize=7, annotation_clip=True, clip_on=True)
    ax.axhline(1.0, color="gray", ls="--", lw=1)
    if ok:
        values = [r["speedup_eager"] for r in ok + screened] + [1.0]
        ax.set_yscale("log")
        ax.set_ylim(min(values) / 1.3, max(values) * 1.6)  # head room for the idea labels, inside the axes
        ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.yaxis.set_major_formatter(FuncFormatter(_times_formatter))
        ax.yaxis.set_minor_formatter(FuncFormatter(lambda v, _p: ""))
        ax.legend(fontsize=7, loc="upper left")
    state = run_state(store)
    extra = "" if state["state"] == "finished" else f" [{state['state']}]"
    if not ok:
        extra += " - no correct kernel"
    ax.set_title(title or f"{problem_name(store)} ({store.run_id}){extra}", fontsize=9)
    ax.set_ylabel(UNITS, fontsize=8)
    ax.tick_params(labelbottom=False)
    rounds = sorted({r["round"] for r in rows}) or [0]
    ax.set_xticks(rounds)
    ax.set_xlim(min(rounds) - 0.4, max(rounds) + 0.9)  # room for the last round's idea labels
    if not ok:
        ax.set_yticks([])
        ax.text(0.5, 0.5, "no candidates" if not rows else "no correct kernel", ha="center", va="center",
                transform=ax.transAxes)
    kinds = [k for k in dict.fromkeys(FAILURE_KINDS.values()) if any(r["kind"] == k for r in bad)]
    for y, kind in enumerate(kinds):
        pts = [r for r in bad if r["kind"] == kind]
        xs = []
        for rnd in sorted({r["round"] for r in pts}):  # spread a round's points around it: counts stay visible
            n = sum(1 for r in pts if r["round"] == rnd)
            xs += [rnd + 0.08 * (i - (n - 1) / 2) for i in range(n)]
        pts.sort(key=lambda r: r["round"])
        strip.scatter(xs, [y] * len(pts), marker="x", s=30, c=STATUS_COLOURS.get(pts[0]["status"], "tab:red"),
                      zorder=3)
    strip.set_yticks(range(len(kinds)), [f"{k} ({sum(r['kind'] == k for r in bad)})" for k in kinds], fontsize=7)
    strip.set_ylim(-0.7, max(0, len(kinds) - 1) + 0.7)
    if not kinds:
        strip.set_yticks([])
        strip.text(0.5, 0.5, "no failed candidates", ha="center", va="center", fontsize=7, transform=strip.transAxes)
    strip.set_ylabel("failed", fontsize=8)
    strip.set_xlabel("round")
    strip.grid(axis="y", color="0.9")
    return fig


# -- idea tree ----------------------------------------------------------------------------------------------
def idea_tree(store: RunStore) -> list[tuple[str, str]]:
    """(parent, child) edges: which kernel seeded which (repairs hang off the candidate they repair)."""
    edges = []
    for c in store.events("candidate"):
        parent = c.get("repair_of") or c.get("parent")
        if parent:
            edges.append((parent, c["candidate"]))
    return edges


def plot_idea_tree(store: RunStore, ax: Any = None) -> Any:
    """Nodes laid out by round (x) and order within the round (y), coloured by status, edges parent -> child."""
    fig, ax = _axes(ax, (8, 4.5))
    rows = candidates(store)
    pos: dict[str, tuple[float, float]] = {}
    by_round: dict[int, list[dict[str, Any]]] = {}
    for r in rows:
        by_round.setdefault(r["round"], []).append(r)
    for rnd, mine in by_round.items():
        for i, r in enumerate(mine):
            pos[r["candidate"]] = (rnd, i - (len(mine) - 1) / 2)
    for parent, child in idea_tree(store):
        if parent in pos and child in pos:
            (x0, y0), (x1, y1) = pos[parent], pos[child]
            ax.annotate("", xy=(x1, y1), xytext=(x0, y0),
                        arrowprops={"arrowstyle": "->", "color": "gray", "lw": 0.7, "alpha": 0.7})
    seen = set()
    for r in rows:
        x, y = pos[r["candidate"]]
        colour = STATUS_COLOURS.get(r["status"], "tab:red")
        label = r["status"] if r["status"] not in seen else None
        seen.add(r["status"])
        ax.scatter([x], [y], c=colour, s=60, zorder=3, label=label, edgecolors="k", linewidths=0.4,
                   marker="o" if r["correct"] else "X")
        text = r["candidate"] + (f"\n{r['speedup_eager']:.2f}x" if r["correct"] and r["speedup_eager"] else "")
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(5, 3), fontsize=6)
    ax.set_title(f"idea tree: {problem_name(store)} ({store.run_id})", fontsize=9)
    ax.set_xlabel("round")
    ax.set_ylabel("candidate (order within round)")
    if rows:
        ax.set_xticks(sorted(by_round))
        ax.set_xlim(min(by_round) - 0.3, max(by_round) + 0.8)  # room for the last round's labels
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no candidates", ha="center", va="center", transform=ax.transAxes)
    return fig


# -- the problem's kind -----------------------------------------------------------------------------------------
_FLOPS: dict[str, int | None] = {}


def problem_flops(store: RunStore) -> int | None:
    """The problem's FLOPS constant (0: memory-bound), or None when the problem cannot be loaded here."""
    try:
        problem = str(store.params.get("problem", ""))
    except (OSError, ValueError):
        return None
    if problem not in _FLOPS:
        try:
            from workbench.problem import load_problem

            _FLOPS[problem] = load_problem(problem).flops
        except Exception:  # a run of a problem this checkout does not have: the roofline is not shown
            _FLOPS[problem] = None
    return _FLOPS[problem]


def roofline_means_something(store: RunStore) -> bool:
    """The roofline here is the copy-bandwidth floor: a fair bar for memory-bound problems (FLOPS == 0) only."""
    return problem_flops(store) == 0


# -- the best kernel -----------------------------------------------------------------------------------------
def best_kernel(store: RunStore) -> dict[str, Any]:
    """The best kernel (pick_best): its source, timing spread and a table (kernel, eager, torch.compile)."""
    rows_all = candidates(store)
    best = pick_best(rows_all)
    baseline = store.get("baseline") or {}
    eager_ms, compile_ms = _num(baseline.get("eager_ms")), _num(baseline.get("compile_ms"))
    device = baseline_device(store)
    state = run_state(store)
    if best is None:
        screened = sum(1 for r in rows_all if screened_only(r))
        why = "no correct kernel" + (f" judged in full ({screened} passed the screening stage only)" if screened else "")
        return {"candidate": None, "source": None, "rows": [], "device": device, "state": state,
                "failures": failures(store)[:20], "compile_error": baseline.get("compile_error"),
                "message": why + (f" ({state['state']}: {state['detail']})" if state["detail"] else "")}
    path = store.candidate_path(best["candidate"])
    source = path.read_text() if path.is_file() else None
    roof = best["roofline_fraction"] if roofline_means_something(store) else None
    rows = [{"kernel": f"best candidate {best['candidate']}", "ms": best["ms"], "p10": best["p10"], "p90": best["p90"],
             "speedup_eager": best["speedup_eager"], "speedup_compile": best["speedup_compile"],
             "roofline_fraction": roof}]
    if eager_ms is not None:
        rows.append({"kernel": "torch eager", "ms": eager_ms, "speedup_eager": 1.0,
                     "speedup_compile": (compile_ms / eager_ms) if compile_ms else None, "roofline_fraction": None})
    if compile_ms is not None:
        rows.append({"kernel": "torch.compile", "ms": compile_ms,
                     "speedup_eager": (eager_ms / compile_ms) if eager_ms else None, "speedup_compile": 1.0,
                     "roofline_fraction": None})
    return {"candidate": best["candidate"], "idea": best["idea"], "round": best["round"], "source": source,
            "rows": rows, "device": device, "roofline_fraction": roof, "spread": best["spread"],
            "noisy": best["noisy"], "compile_error": baseline.get("compile_error"), "state": state}


def _fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "-"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return f"{x:.4g}{unit}"
    return f"{x}{unit}"


def markdown_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Rows as a Markdown table (for notebooks: display(Markdown(...)))."""
    if not rows:
        return "_(none)_"
    cols = list(columns or rows[0].keys())
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(r.get(c)).replace("|", "\\|").replace("\n", " ") for c in cols) + " |")
    return "\n".join(lines)


def best_kernel_markdown(store: RunStore) -> str:
    """The best kernel as Markdown: the timing table (or the failures) and the source."""
    b = best_kernel(store)
    head = f"**{problem_name(store)}** - run `{store.run_id}` on {b.get('device') or 'unknown device'}"
    if b["state"]["state"] != "finished":
        head += f" - **{b['state']['state']}**: results are partial"
    if b["candidate"] is None:
        return f"{head}\n\n**{b['message']}**\n\n" + markdown_table(b["failures"])
    text = (f"{head}\n\nbest: `{b['candidate']}` (round {b['round']}): {short(b.get('idea'), 120) or 'seed'}\n\n"
            + markdown_table(b["rows"], ["kernel", "ms", "p10", "p90", "speedup_eager", "speedup_compile",
                                         "roofline_fraction"]))
    if b["noisy"]:
        text += (f"\n\n**noisy timing**: p10..p90 spans {b['spread']:.0%} of the median (over {SPREAD_LIMIT:.0%}); "
                 "re-time it before trusting the speedup")
    if b.get("compile_error"):
        text += f"\n\ntorch.compile failed: `{short(b['compile_error'], 200)}`"
    if b["source"]:
        text += f"\n\n```python\n{b['source']}\n```"
    return text


# -- many runs -------------------------------------------------------------------------------------------------
def usage(store: RunStore) -> dict[str, Any]:
    """Tokens and cost of a run's model calls: the run's `totals` when the search recorded them, else the sum of
    its `call` events, else of the idea and candidate events' `usage` (the offline tuner costs nothing)."""
    totals = next((e for e in reversed(store.events()) if e["type"] == "totals" or e.get("totals")), None)
    if totals is not None:
        t = totals.get("totals", totals)
        t = t.get("overall", t)
        i, o, c = t.get("input_tokens"), t.get("output_tokens"), t.get("cost_usd")
        source = "totals"
    else:
        calls = store.events("call")
        items = calls if calls else [e.get("usage") or {} for e in store.events() if e["type"] in ("idea", "candidate")]
        i = sum(int(x.get("input_tokens") or 0) for x in items)
        o = sum(int(x.get("output_tokens") or 0) for x in items)
        c = sum(float(x.get("cost_usd") or 0.0) for x in items)
        source = "calls" if calls else "events"
    return {"input_tokens": int(i or 0), "output_tokens": int(o or 0),
            "tokens": int(i or 0) + int(o or 0), "cost_usd": float(c or 0.0), "source": source}


def tokens(store: RunStore) -> int:
    return usage(store)["tokens"]


def run_row(store: RunStore) -> dict[str, Any]:
    """One run's figures: its best kernel (pick_best), timing spread, cost, failure kinds."""
    rows = candidates(store)
    best = pick_best(rows)
    baseline = store.get("baseline") or {}
    state = run_state(store)
    u = usage(store)
    ok = [r for r in rows if r["correct"]]
    row = {"problem": problem_name(store), "device": baseline_device(store), "run": store.run_id,
           "best": best["candidate"] if best else None,
           "speedup_eager": best["speedup_eager"] if best else None,
           "speedup_compile": best["speedup_compile"] if best else None,
           "roofline_fraction": best["roofline_fraction"] if best and roofline_means_something(store) else None,
           "best_ms": best["ms"] if best else None, "p10_ms": best["p10"] if best else None,
           "p90_ms": best["p90"] if best else None, "spread": best["spread"] if best else None,
           "noisy": best["noisy"] if best else None,
           "eager_ms": _num(baseline.get("eager_ms")), "compile_ms": _num(baseline.get("compile_ms")),
           "tokens": u["tokens"], "cost_usd": u["cost_usd"], "candidates": len(rows), "correct": len(ok),
           "share_correct": (len(ok) / len(rows)) if rows else 0.0, "failures": failures_text(store),
           "state": state["state"], "stop_reason": state["detail"] if state["state"] == "finished" else "",
           "error": ""}
    if not best and rows:
        row["error"] = "no correct kernel: " + (row["failures"] or ", ".join(sorted({r["status"] for r in rows})))
    return row


def _strength(row: dict[str, Any]) -> tuple[bool, float]:
    """How a run's best ranks among runs of one operator on one device: trusted first, then the speedup its
    slow end (p90) still gives, so a noisy median cannot carry it."""
    if row["speedup_eager"] is None:
        return (False, -1.0)
    slow_end = row["eager_ms"] / row["p90_ms"] if row["eager_ms"] and row["p90_ms"] else row["speedup_eager"]
    return (not row["noisy"], slow_end)


def summary(stores: Iterable[RunStore]) -> list[dict[str, Any]]:
    """One row per operator and device: its best FINISHED run (see _strength). Killed runs never enter it
    (killed_runs lists them); `runs` says how many finished runs were compared."""
    best_rows: dict[tuple[str, str], dict[str, Any]] = {}
    counts: dict[tuple[str, str], int] = {}
    for store in stores:
        if run_state(store)["state"] != "finished":
            continue
        row = run_row(store)
        key = (row["problem"], str(row["device"]))
        counts[key] = counts.get(key, 0) + 1
        prev = best_rows.get(key)
        if prev is None or _strength(row) > _strength(prev) or \
                (prev["speedup_eager"] is None and row["speedup_eager"] is None and row["run"] > prev["run"]):
            best_rows[key] = row
    for key, row in best_rows.items():
        row["runs"] = counts[key]
    return sorted(best_rows.values(), key=lambda r: (r["problem"], str(r["device"])))


def killed_runs(stores: Iterable[RunStore]) -> list[dict[str, Any]]:
    """Runs without an `end` event (killed, or still running): listed apart, never counted as results."""
    return [{"run": s.run_id, "problem": problem_name(s), "device": baseline_device(s),
             "candidates": len(candidates(s)), "detail": run_state(s)["detail"]}
            for s in stores if run_state(s)["state"] == "killed"]


def fast_p(rows: Sequence[dict[str, Any]], p: float) -> float:
    """Share of problems solved correctly and faster than p times torch eager (KernelBench fast_p)."""
    speedups = [r.get("speedup_eager") for r in rows]
    return fastp.fast_p([s is not None for s in speedups], speedups, p) or 0.0


def plot_summary(rows: Sequence[dict[str, Any]], axes: Any = None) -> Any:
    """Bar charts: best speedup vs eager and vs torch.compile per operator (and device); a line at 1.0; a failed
    operator gets no bar but a red 'failed' label on the axis, so it cannot be read as a slow one."""
    if axes is None:
        _, axes = _pyplot().subplots(1, 2, figsize=(max(8, 1.2 * len(rows) + 4), 4.4), layout="constrained")
    fig = axes[0].figure
    devices = sorted({str(r.get("device")) for r in rows})
    names = [r["problem"] + (f"\n{short(str(r.get('device')), 18)}" if len(devices) > 1 else "") for r in rows]
    for ax, key, label in ((axes[0], "speedup_eager", "speedup vs torch eager (x)"),
                           (axes[1], "speedup_compile", "speedup vs torch.compile (x)")):
        vals = [r.get(key) or 0.0 for r in rows]
        colours = ["tab:olive" if r.get("noisy") else ("tab:green" if (r.get(key) or 0) > 1 else "tab:orange")
                   for r in rows]
        xs = list(range(len(rows)))
        ax.bar(xs, vals, color=colours)
        top = max(vals + [1.0])
        for x, r, v in zip(xs, rows, vals):
            if r.get("speedup_eager") is None:
                ax.text(x, top * 0.02, "failed", ha="center", va="bottom", fontsize=8, color="tab:red",
                        fontweight="bold", rotation=90)
            else:
                ax.text(x, v, (f"{r[key]:.2f}" if r.get(key) else "n/a") + (" noisy" if r.get("noisy") else ""),
                        ha="center", va="bottom", fontsize=7)
        ax.set_ylim(0, top * 1.15)
        ax.axhline(1.0, color="k", ls="--", lw=1)
        ax.set_xticks(xs)
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_xlabel("operator")
        ax.set_ylabel(label)
        ax.set_title(f"best {label.split(' (')[0]}", fontsize=9)
        if key == "speedup_compile" and rows and all(r.get(key) is None for r in rows):
            ax.text(0.5, 0.5, "no torch.compile baseline in these runs\n(off by default on the CPU target)",
                    transform=ax.transAxes, ha="center", va="center", fontsize=8, color="0.4")
    fig.suptitle(f"best kernels per operator ({', '.join(devices) or 'no device'}); "
                 f"fast_1.0 = {fast_p(rows, 1.0):.0%}, fast_1.5 = {fast_p(rows, 1.5):.0%}", fontsize=10)
    return fig


def plot_trajectories(stores: Sequence[RunStore], cols: int = 2) -> Any:
    """A grid with one trajectory per run."""
    plt = _pyplot()
    n = max(1, len(stores))
    cols = min(cols, n)  # one run: one column, its title centred over it
    rows = math.ceil(n / cols)
    fig = plt.figure(figsize=(6.5 * cols, 4.6 * rows), layout="constrained")
    for i, sub in enumerate(fig.subfigures(rows, cols, squeeze=False).flat):
        if i < len(stores):  # a sub-figure per run: its failure strip is laid out with it, never over the next title
            ax, strip = sub.subplots(2, 1, sharex=True, height_ratios=[3, 1])
            plot_trajectory(stores[i], ax=ax, strip=strip)
    fig.suptitle("search trajectories", fontsize=10)
    return fig


def load_failures(path: str | Path | None) -> list[dict[str, Any]]:
    """The failures a batch recorded (problems whose search notebook did not finish)."""
    if not path or not Path(path).is_file():
        return []
    import json

    return json.loads(Path(path).read_text())


def failures_markdown(rows: Sequence[dict[str, Any]], batch_failures: Sequence[dict[str, Any]] = (),
                      killed: Sequence[dict[str, Any]] = ()) -> str:
    """Every failure: batch notebooks that raised, operators without a correct kernel, each operator's failed
    candidates by kind (build, model, timeout, crash, rejected with its codes, ...), and killed runs."""
    items = [f"- **{f.get('problem')}** (run `{f.get('run')}`): notebook failed: `{short(f.get('error'), 300)}`"
             for f in batch_failures]
    for r in rows:
        if r.get("error"):
            items.append(f"- **{r['problem']}** (run `{r['run']}`): {short(r['error'], 300)}")
        elif r.get("failures"):
            items.append(f"- {r['problem']} (run `{r['run']}`): failed candidates: {r['failures']}")
        if r.get("stop_reason"):
            items.append(f"  - stopped early: {short(r['stop_reason'], 200)}")
    items += [f"- killed run `{k['run']}` ({k['problem']}, {k['candidates']} candidates): not counted; "
              f"resume it with `--run-id {k['run']}`" for k in killed]
    return "\n".join(items) if items else "No failures."
