"""KernelBench's figures: fast_p and the geometric-mean speedup, as pure functions of plain numbers.

fast_p (KernelBench, score.py) is the fraction of ALL problems whose kernel is correct AND has
speedup > p; the denominator counts the incorrect ones too, so fast_0 is the correctness rate
of kernels that ran at all. The geometric mean is taken over correct kernels only, as KernelBench does.
"""
from __future__ import annotations

import math
from typing import Iterable, Sequence

P_VALUES = (0.0, 1.0, 1.5, 2.0)


def fast_p(correct: Sequence[bool], speedups: Sequence[float | None], p: float) -> float | None:
    """Fraction of entries that are correct and faster than p times the baseline; None for no entries.

    A correct entry without a speedup (the baseline failed to run) counts as not faster.
    """
    if len(correct) != len(speedups):
        raise ValueError(f"fast_p: {len(correct)} correctness flags but {len(speedups)} speedups")
    if not correct:
        return None
    hits = sum(1 for c, s in zip(correct, speedups) if c and s is not None and s > p)
    return hits / len(correct)


def geomean_speedup(correct: Sequence[bool], speedups: Sequence[float | None]) -> float | None:
    """Geometric mean of the speedups of correct entries that have one; None when there are none."""
    xs = [s for c, s in zip(correct, speedups) if c and s is not None and s > 0]
    return math.exp(sum(math.log(s) for s in xs) / len(xs)) if xs else None


def figures(rows: Iterable[dict], baselines: Sequence[str] = ("eager", "compile")) -> dict:
    """n, correct rate, fast_p for every p in P_VALUES and the geomean, over each baseline.

    Each row needs "correct" (bool) and "speedup_<baseline>" (float or None).
    """
    rows = list(rows)
    correct = [bool(r["correct"]) for r in rows]
    out: dict = {"n": len(rows), "correct": sum(correct),
                 "correct_rate": (sum(correct) / len(rows)) if rows else None}
    for b in baselines:
        sp = [r.get(f"speedup_{b}") for r in rows]
        correct_sp = [s for c, s in zip(correct, sp) if c]
        if correct_sp and all(s is None for s in correct_sp):  # the baseline was never measured: no figure, not a 0
            out[b] = {"fast_p": {str(p): None for p in P_VALUES}, "geomean": None}
            continue
        out[b] = {"fast_p": {str(p): fast_p(correct, sp, p) for p in P_VALUES}, "geomean": geomean_speedup(correct, sp)}
    return out
