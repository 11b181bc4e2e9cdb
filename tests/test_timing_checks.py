"""The judge's clock check on hand-made numbers: honest overheads pass, hidden time is caught."""
from __future__ import annotations

from workbench.timing import judge_clock_check


def result(ms: float, overhead: float, method: str = "cuda events") -> dict:
    return {"events": {"median": ms}, "overhead_ms": overhead, "method": method}


def test_an_honest_sample_passes():
    cal = {"overhead_ms": 1.20}
    assert judge_clock_check(result(0.60, 1.25), cal) is None
    assert judge_clock_check(result(0.02, 1.35), cal) is None  # the profiler's own work after a tiny kernel


def test_time_hidden_from_the_worker_is_caught():
    cal = {"overhead_ms": 1.20}
    # a 1 ms call reported as 0.01 ms: the judge saw ~1 ms more per sample than the worker reported
    why = judge_clock_check(result(0.01, 2.20), cal)
    assert why and why.startswith("timing_mismatch")
    # work on another stream: 2 ms the events did not see on a 1 ms call
    assert judge_clock_check(result(1.0, 3.2), cal)


def test_the_cpu_target_has_more_slack():
    cal = {"overhead_ms": 1.0}
    assert judge_clock_check(result(1.0, 3.0, "wall clock"), cal) is None
    assert judge_clock_check(result(1.0, 6.0, "wall clock"), cal)


def test_the_interleaved_calibration_follows_the_machine():
    """A loaded machine: the calibration taken between the timed samples wins over the early one."""
    early = {"overhead_ms": 1.0}
    loaded = {**result(0.5, 14.0, "wall clock"), "noop_overhead_ms": 13.8}
    assert judge_clock_check(loaded, early) is None
    assert judge_clock_check({**loaded, "noop_overhead_ms": 8.0}, early)
    assert judge_clock_check({**result(0.5, 14.0), "noop_overhead_ms": 13.8}, early) is None  # GPU


def test_a_noisy_machine_widens_the_limit():
    early = {"overhead_ms": 1.0}
    noisy = {**result(0.3, 9.0, "wall clock"), "noop_overhead_ms": 1.0, "noop_spread_ms": 4.0}
    assert judge_clock_check(noisy, early) is None
    assert judge_clock_check({**noisy, "noop_spread_ms": 0.5}, early)
