"""Tables and matplotlib figures of runs, built from their event logs only.

Every function takes RunStore(s) and reads `store.events(...)`; nothing is re-measured.
matplotlib is imported inside the plotting functions (and forced to a non-interactive
backend when no display backend was chosen), so importing this module is cheap.
"""
from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Iterable, Sequence

from workbench.store import RunStore

STATUS_COLOURS = {"correct": "tab:green", "incorrect": "tab:red", "build_error": "tab:orange",
                  "error": "tab:purple", "timeout": "tab:brown", "cheat": "black", "failed": "tab:gray",
                  "pending": "lightgray", "seed": "tab:blue"}
UNITS = "speedup vs torch eager (x)"


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


def candidates(store: RunStore) -> list[dict[str, Any]]:
    """One row per candidate event (judged or not), joined with its idea and verdict."""
    verdicts = {e["candidate"]: e for e in store.events("verdict")}
    ideas = {e["id"]: e for e in store.events("idea")}
    rows = []
    for c in store.events("candidate"):
        v = verdicts.get(c["candidate"])
        status = v["status"] if v else ("failed" if c.get("failed") else "pending")
        rows.append({"candidate": c["candidate"], "round": c.get("round", 0), "parent": c.get("parent"),
                     "model": c.get("model"), "idea": (ideas.get(c.get("idea") or "") or {}).get("text", ""),
                     "status": status, "correct": _ok(v), "ms": _num((v or {}).get("ms")),
                     "speedup_eager": _num((v or {}).get("speedup_eager")),
                     "speedup_compile": _num((v or {}).get("speedup_compile")),
                     "roofline_fraction": _num((v or {}).get("roofline_fraction")),
                     "reasons": (v or {}).get("reasons") or ([c["error"]] if c.get("error") else []),
                     "repair_of": c.get("repair_of")})
    return rows


def run_state(store: RunStore) -> dict[str, Any]:
    """How the run ended: finished, stopped (with the reason), or incomplete (no end event: crashed or running)."""
    stopped = store.events("stopped")
    if stopped:
        return {"state": "stopped", "detail": stopped[-1].get("reason", "")}
    if store.events("end"):
        return {"state": "finished", "detail": ""}
    if not store.events():
        return {"state": "empty", "detail": "no events recorded"}
    return {"state": "incomplete", "detail": f"no end event after {len(store.events())} events"}


def failures(store: RunStore) -> list[dict[str, Any]]:
    """Candidates that did not pass, with their first reasons (what went wrong, per candidate)."""
    return [{"candidate": r["candidate"], "round": r["round"], "status": r["status"],
             "reason": short("; ".join(map(str, r["reasons"][:2])), 200)}
            for r in candidates(store) if not r["correct"]]


# -- trajectory -------------------------------------------------------------------------------------------
def trajectory(store: RunStore) -> list[dict[str, Any]]:
    """Best speedup vs eager after each round: one row per round seen in the log (round events or candidates)."""
    rows = candidates(store)
    rounds = sorted({r["round"] for r in rows} | {e["round"] for e in store.events("round")})
    out, best = [], None
    for r in rounds:
        mine = [c for c in rows if c["round"] == r]
        ok = [c for c in mine if c["correct"] and c["speedup_eager"] is not None]
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
        fig, ax = _pyplot().subplots(figsize=figsize)
        return fig, ax
    return ax.figure, ax


def plot_trajectory(store: RunStore, ax: Any = None, title: str | None = None) -> Any:
    """Every candidate a point (correct coloured by round best, failures at the bottom), best-so-far line, ideas."""
    fig, ax = _axes(ax)
    rows = candidates(store)
    traj = trajectory(store)
    ok = [r for r in rows if r["correct"] and r["speedup_eager"] is not None]
    bad = [r for r in rows if not (r["correct"] and r["speedup_eager"] is not None)]
    floor = min([r["speedup_eager"] for r in ok] + [1.0]) * 0.8
    if ok:
        ax.scatter([r["round"] for r in ok], [r["speedup_eager"] for r in ok], c="tab:green", s=28, alpha=0.8,
                   label="correct", zorder=3)
    for status in sorted({r["status"] for r in bad}):
        pts = [r for r in bad if r["status"] == status]
        ax.scatter([r["round"] for r in pts], [floor] * len(pts), marker="x", s=36,
                   c=STATUS_COLOURS.get(status, "tab:red"), label=f"{status} ({len(pts)})", zorder=3)
    line = [(t["round"], t["best_speedup_eager"]) for t in traj if t["best_speedup_eager"] is not None]
    if line:
        ax.step([x for x, _ in line], [y for _, y in line], where="post", color="tab:blue", lw=2,
                label="best so far", zorder=2)
    for t in traj:
        if t["round_best_speedup"] is not None:
            label = short(t["round_best_idea"], 28) or t["round_best"]
            ax.annotate(label, (t["round"], t["round_best_speedup"]), textcoords="offset points", xytext=(4, 6),
                        fontsize=7, rotation=15)
    ax.axhline(1.0, color="gray", ls="--", lw=1)
    state = run_state(store)
    extra = "" if state["state"] == "finished" else f" [{state['state']}: {short(state['detail'], 40)}]"
    if not ok:
        extra += " - no correct kernel"
    ax.set_title(title or f"{problem_name(store)} ({store.run_id}){extra}", fontsize=9)
    ax.set_xlabel("round")
    ax.set_ylabel(UNITS)
    if rows:
        ax.set_xticks(sorted({r["round"] for r in rows}))
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no candidates", ha="center", va="center", transform=ax.transAxes)
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
        ax.scatter([x], [y], c=colour, s=60, zorder=3, label=label, edgecolors="k", linewidths=0.4)
        text = r["candidate"] + (f"\n{r['speedup_eager']:.2f}x" if r["correct"] and r["speedup_eager"] else "")
        ax.annotate(text, (x, y), textcoords="offset points", xytext=(5, 3), fontsize=6)
    ax.set_title(f"idea tree: {problem_name(store)} ({store.run_id})", fontsize=9)
    ax.set_xlabel("round")
    ax.set_ylabel("candidate (order within round)")
    if rows:
        ax.set_xticks(sorted(by_round))
        ax.legend(fontsize=7, loc="best")
    else:
        ax.text(0.5, 0.5, "no candidates", ha="center", va="center", transform=ax.transAxes)
    return fig


# -- the best kernel -----------------------------------------------------------------------------------------
def best_kernel(store: RunStore) -> dict[str, Any]:
    """The fastest correct kernel: its source and a timing table (kernel, eager, torch.compile)."""
    ok = [r for r in candidates(store) if r["correct"]]
    baseline = store.get("baseline") or {}
    eager_ms, compile_ms = _num(baseline.get("eager_ms")), _num(baseline.get("compile_ms"))
    facts = (store.get("facts") or {}).get("facts", {})
    device = baseline.get("device") or facts.get("device")
    if not ok:
        state = run_state(store)
        return {"candidate": None, "source": None, "rows": [], "device": device, "state": state,
                "failures": failures(store)[:20], "compile_error": baseline.get("compile_error"),
                "message": "no correct kernel" + (f" ({state['state']}: {state['detail']})" if state["detail"] else "")}
    best = min(ok, key=lambda r: r["ms"])
    path = store.candidate_path(best["candidate"])
    source = path.read_text() if path.is_file() else None
    rows = [{"kernel": f"best candidate {best['candidate']}", "ms": best["ms"], "speedup_eager": best["speedup_eager"],
             "speedup_compile": best["speedup_compile"], "roofline_fraction": best["roofline_fraction"]}]
    if eager_ms is not None:
        rows.append({"kernel": "torch eager", "ms": eager_ms, "speedup_eager": 1.0,
                     "speedup_compile": (compile_ms / eager_ms) if compile_ms else None, "roofline_fraction": None})
    if compile_ms is not None:
        rows.append({"kernel": "torch.compile", "ms": compile_ms,
                     "speedup_eager": (eager_ms / compile_ms) if eager_ms else None, "speedup_compile": 1.0,
                     "roofline_fraction": None})
    return {"candidate": best["candidate"], "idea": best["idea"], "round": best["round"], "source": source,
            "rows": rows, "device": device, "roofline_fraction": best["roofline_fraction"],
            "compile_error": baseline.get("compile_error"), "state": run_state(store)}


def _fmt(x: Any, unit: str = "") -> str:
    if x is None:
        return "-"
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
    if b["candidate"] is None:
        text = f"{head}\n\n**{b['message']}**\n\n" + markdown_table(b["failures"])
        return text
    text = (f"{head}\n\nbest: `{b['candidate']}` (round {b['round']}): {short(b.get('idea'), 120) or 'seed'}\n\n"
            + markdown_table(b["rows"], ["kernel", "ms", "speedup_eager", "speedup_compile", "roofline_fraction"]))
    if b.get("compile_error"):
        text += f"\n\ntorch.compile failed: `{short(b['compile_error'], 200)}`"
    if b["source"]:
        text += f"\n\n```python\n{b['source']}\n```"
    return text


# -- many runs -------------------------------------------------------------------------------------------------
def tokens(store: RunStore) -> int:
    return sum((e.get("usage") or {}).get("input_tokens", 0) + (e.get("usage") or {}).get("output_tokens", 0)
               for e in store.events() if e["type"] in ("idea", "candidate"))


def summary(stores: Iterable[RunStore]) -> list[dict[str, Any]]:
    """One row per operator (problem): its best run's figures. Later runs of a problem lose to better earlier ones."""
    best_rows: dict[str, dict[str, Any]] = {}
    for store in stores:
        rows = candidates(store)
        ok = [r for r in rows if r["correct"]]
        best = min(ok, key=lambda r: r["ms"]) if ok else None
        baseline = store.get("baseline") or {}
        facts = (store.get("facts") or {}).get("facts", {})
        state = run_state(store)
        row = {"problem": problem_name(store), "run": store.run_id,
               "best": best["candidate"] if best else None,
               "speedup_eager": best["speedup_eager"] if best else None,
               "speedup_compile": best["speedup_compile"] if best else None,
               "roofline_fraction": best["roofline_fraction"] if best else None,
               "best_ms": best["ms"] if best else None, "eager_ms": _num(baseline.get("eager_ms")),
               "compile_ms": _num(baseline.get("compile_ms")), "tokens": tokens(store),
               "candidates": len(rows), "correct": len(ok),
               "share_correct": (len(ok) / len(rows)) if rows else 0.0,
               "device": baseline.get("device") or facts.get("device"), "state": state["state"],
               "error": state["detail"] if not ok or state["state"] != "finished" else ""}
        if not ok and rows:
            statuses = sorted({r["status"] for r in rows})
            row["error"] = (row["error"] + "; " if row["error"] else "") + "no correct kernel: " + ", ".join(statuses)
        prev = best_rows.get(row["problem"])
        if prev is None or (row["speedup_eager"] or 0) > (prev["speedup_eager"] or 0) or \
                (prev["speedup_eager"] is None and row["speedup_eager"] is None and row["run"] > prev["run"]):
            best_rows[row["problem"]] = row
    return sorted(best_rows.values(), key=lambda r: r["problem"])


def fast_p(rows: Sequence[dict[str, Any]], p: float) -> float:
    """Share of problems solved correctly and faster than p times torch eager (KernelBench fast_p)."""
    if not rows:
        return 0.0
    return sum(1 for r in rows if r.get("speedup_eager") is not None and r["speedup_eager"] > p) / len(rows)


def plot_summary(rows: Sequence[dict[str, Any]], axes: Any = None) -> Any:
    """Bar charts: best speedup vs eager and vs torch.compile per operator; a line at 1.0; failures marked."""
    if axes is None:
        _, axes = _pyplot().subplots(1, 2, figsize=(max(8, 1.2 * len(rows) + 4), 4))
    fig = axes[0].figure
    names = [r["problem"] for r in rows]
    for ax, key, label in ((axes[0], "speedup_eager", "speedup vs torch eager (x)"),
                           (axes[1], "speedup_compile", "speedup vs torch.compile (x)")):
        vals = [r.get(key) or 0.0 for r in rows]
        colours = ["tab:green" if (r.get(key) or 0) > 1 else ("tab:orange" if r.get(key) else "lightgray")
                   for r in rows]
        xs = list(range(len(rows)))
        ax.bar(xs, vals, color=colours)
        for x, r, v in zip(xs, rows, vals):
            ax.text(x, v, "failed" if r.get("speedup_eager") is None else (f"{r[key]:.2f}" if r.get(key) else "n/a"),
                    ha="center", va="bottom", fontsize=7)
        ax.axhline(1.0, color="k", ls="--", lw=1)
        ax.set_xticks(xs)
        ax.set_xticklabels(names, rotation=30, ha="right", fontsize=8)
        ax.set_xlabel("operator")
        ax.set_ylabel(label)
        ax.set_title(f"best {label.split(' (')[0]}", fontsize=9)
    devices = sorted({str(r.get("device")) for r in rows if r.get("device")})
    fig.suptitle(f"best kernels per operator ({', '.join(devices) or 'no device'}); "
                 f"fast_1.0 = {fast_p(rows, 1.0):.0%}, fast_1.5 = {fast_p(rows, 1.5):.0%}", fontsize=9)
    fig.tight_layout()
    return fig


def plot_trajectories(stores: Sequence[RunStore], cols: int = 2) -> Any:
    """A grid with one trajectory per run."""
    plt = _pyplot()
    n = max(1, len(stores))
    rows = math.ceil(n / cols)
    fig, axs = plt.subplots(rows, cols, figsize=(6 * cols, 3.6 * rows), squeeze=False)
    for i, ax in enumerate(axs.flat):
        if i < len(stores):
            plot_trajectory(stores[i], ax=ax)
        else:
            ax.axis("off")
    fig.suptitle("search trajectories")
    fig.tight_layout()
    return fig


def load_failures(path: str | Path | None) -> list[dict[str, Any]]:
    """The failures a batch recorded (problems whose search notebook did not finish)."""
    if not path or not Path(path).is_file():
        return []
    import json

    return json.loads(Path(path).read_text())


def failures_markdown(rows: Sequence[dict[str, Any]], batch_failures: Sequence[dict[str, Any]] = ()) -> str:
    """Operators that failed: batch notebooks that raised, and runs that stopped or found no correct kernel."""
    items = [f"- **{f.get('problem')}** (run `{f.get('run')}`): notebook failed: `{short(f.get('error'), 300)}`"
             for f in batch_failures]
    items += [f"- **{r['problem']}** (run `{r['run']}`, {r['state']}): {short(r['error'], 300)}"
              for r in rows if r.get("error")]
    return "\n".join(items) if items else "No failures."
