"""report.py on a synthetic run built by hand with RunStore: tables and figures from the event log only."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest

from workbench import report
from workbench.store import RunStore

SRC = "class ModelNew:  # {cid}\n    pass\n"


def add_cand(store, cid, rnd, parent=None, idea=None, status="correct", ms=None, eager=2.0, compile_ms=None,
             failed=False, spread=0.1, device="Fake GPU", codes=None, stage=None, **extra):
    """A candidate and its verdict; its timing samples span p10..p90 = ms * (1 -/+ spread/2)."""
    if not failed:
        store.save_source(cid, SRC.format(cid=cid))
    model = extra.pop("model", "openai:x" if failed else "tuner")  # a candidate never made: a model's failure
    store.append("candidate", f"cand-{cid}", candidate=cid, round=rnd, idea=idea, model=model, parent=parent,
                 failed=failed, usage={"input_tokens": 10, "output_tokens": 5}, **extra)
    if failed:
        return
    codes = codes if codes is not None else ([] if status == "correct" else [status])
    timing = {"events": {"median": ms, "p10": ms * (1 - spread / 2), "p90": ms * (1 + spread / 2)},
              "device": device, "samples": 30} if ms else None
    v = {"status": status, "codes": codes, "reasons": [f"{c}: {cid} went wrong" for c in codes], "ms": ms,
         "roofline_fraction": 0.5 * eager / ms if ms else None, "timing": timing,
         "speedup_eager": eager / ms if ms and status == "correct" else None,
         "speedup_compile": compile_ms / ms if ms and compile_ms and status == "correct" else None}
    if stage:
        v["stage"] = stage
    store.append("verdict", f"verdict-{cid}", candidate=cid, **v)


def make_run(tmp_path, name="r1", problem="problems/softmax", finish=True, correct=True, killed=False,
             device="Fake GPU"):
    """finish: an `end` event (finish=False: stopped by a budget, then ended; killed=True: no end at all)."""
    store = RunStore.open(name, {"problem": problem, "rounds": 2}, tmp_path)
    store.append("start", "start-0")
    store.append("facts", "facts", facts={"device": device})
    store.append("baseline", "baseline", device=device, eager_ms=2.0, compile_ms=1.0)
    if correct:
        add_cand(store, "r0-a", 0, ms=4.0, compile_ms=1.0, device=device)  # 0.5x
        add_cand(store, "r0-b", 0, status="build_error")
    else:
        add_cand(store, "r0-a", 0, status="incorrect", ms=1.0)
    store.append("round", "round-0", round=0)
    store.append("idea", "r1-i0", round=1, text="vectorise loads with float4", model="tuner",
                 usage={"input_tokens": 100, "output_tokens": 50})
    if correct:
        add_cand(store, "r1-i0-m0", 1, parent="r0-a", idea="r1-i0", ms=1.0, compile_ms=1.0, device=device)  # 2.0x
        add_cand(store, "r1-i0-m1", 1, parent="r0-a", idea="r1-i0", status="incorrect", ms=0.5)
        add_cand(store, "r1-i0-m1-fix1", 1, parent="r0-a", idea="r1-i0", repair_of="r1-i0-m1", failed=True)
    store.append("round", "round-1", round=1)
    store.append("idea", "r2-i0", round=2, text="use shared memory", model="tuner")
    if correct:
        add_cand(store, "r2-i0-m0", 2, parent="r1-i0-m0", idea="r2-i0", ms=1.25, compile_ms=1.0, device=device)  # 1.6x
    store.append("round", "round-2", round=2)
    if not finish:
        store.append("stopped", "stopped-3", reason="token budget spent")
    if not killed:
        store.append("end", "end-1", best="r1-i0-m0")
    return store


def test_trajectory_is_best_so_far_per_round(tmp_path):
    traj = report.trajectory(make_run(tmp_path))
    assert [t["round"] for t in traj] == [0, 1, 2]
    assert [t["best_speedup_eager"] for t in traj] == pytest.approx([0.5, 2.0, 2.0])
    assert [t["round_best"] for t in traj] == ["r0-a", "r1-i0-m0", "r2-i0-m0"]
    assert traj[2]["best"] == "r1-i0-m0" and traj[1]["round_best_idea"] == "vectorise loads with float4"
    assert [t["candidates"] for t in traj] == [2, 3, 1] and [t["correct"] for t in traj] == [1, 1, 1]


def test_idea_tree_edges(tmp_path):
    edges = report.idea_tree(make_run(tmp_path))
    assert ("r0-a", "r1-i0-m0") in edges and ("r1-i0-m0", "r2-i0-m0") in edges
    assert ("r1-i0-m1", "r1-i0-m1-fix1") in edges  # a repair hangs off what it repairs
    assert all(child != "r0-a" for _, child in edges)


def test_best_kernel_has_source_and_timing_table(tmp_path):
    b = report.best_kernel(make_run(tmp_path))
    assert b["candidate"] == "r1-i0-m0" and "# r1-i0-m0" in b["source"]
    rows = {r["kernel"]: r for r in b["rows"]}
    assert rows["torch eager"]["ms"] == 2.0 and rows["torch.compile"]["ms"] == 1.0
    assert rows["best candidate r1-i0-m0"]["speedup_eager"] == pytest.approx(2.0)
    assert rows["best candidate r1-i0-m0"]["speedup_compile"] == pytest.approx(1.0)
    assert rows["torch.compile"]["speedup_eager"] == pytest.approx(2.0)
    assert b["roofline_fraction"] == pytest.approx(1.0)
    md = report.best_kernel_markdown(make_run(tmp_path / "x"))
    assert "| torch.compile |" in md and "```python" in md


def test_summary_and_fast_p(tmp_path):
    good = make_run(tmp_path, "good", "problems/softmax")
    other = make_run(tmp_path, "worse", "problems/softmax/reference.py", finish=False)  # same operator, stopped
    bad = make_run(tmp_path, "bad", "tests/problems/relu_small", correct=False, finish=False)
    rows = report.summary([good, other, bad])
    assert [r["problem"] for r in rows] == ["relu_small", "softmax"]  # one row per operator
    soft, relu = rows[1], rows[0]
    assert soft["speedup_eager"] == pytest.approx(2.0) and soft["speedup_compile"] == pytest.approx(1.0)
    assert soft["roofline_fraction"] == pytest.approx(1.0) and soft["device"] == "Fake GPU"  # softmax: FLOPS 0
    assert soft["candidates"] == 6 and soft["share_correct"] == pytest.approx(3 / 6) and soft["runs"] == 2
    assert soft["tokens"] == 100 + 50 + 6 * 15 and soft["cost_usd"] == 0.0
    assert soft["p10_ms"] == pytest.approx(0.95) and soft["p90_ms"] == pytest.approx(1.05) and not soft["noisy"]
    assert relu["speedup_eager"] is None and relu["state"] == "finished" and "token budget" in relu["stop_reason"]
    assert "no correct kernel" in relu["error"] and "incorrect 1" in relu["error"]
    assert report.fast_p(rows, 1.0) == pytest.approx(0.5)
    assert report.fast_p(rows, 1.5) == pytest.approx(0.5)
    assert report.fast_p(rows, 2.0) == 0.0  # strictly faster than p
    assert report.fast_p([], 1.0) == 0.0
    md = report.failures_markdown(rows, [{"problem": "conv", "run": "b-conv", "error": "RuntimeError: boom"}])
    assert "relu_small" in md and "boom" in md and "token budget" in md
    assert "softmax (run `good`): failed candidates: build 1, model 1, incorrect 1" in md


def test_killed_runs_never_win_and_are_listed_apart(tmp_path):
    finished = make_run(tmp_path, "finished")
    killed = make_run(tmp_path, "killed", killed=True)
    add_cand(killed, "r2-fast", 2, ms=0.1)  # 20x, but the run never ended
    assert report.run_state(killed)["state"] == "killed" and report.run_state(finished)["state"] == "finished"
    rows = report.summary([killed, finished])
    assert [(r["problem"], r["run"]) for r in rows] == [("softmax", "finished")]
    assert report.summary([killed]) == []
    listed = report.killed_runs([killed, finished])
    assert [k["run"] for k in listed] == ["killed"] and listed[0]["candidates"] == 7
    md = report.failures_markdown(rows, killed=listed)
    assert "killed run `killed`" in md and "--run-id killed" in md
    assert "partial" in report.best_kernel_markdown(killed)


def test_a_noisy_run_loses_to_a_trusted_one(tmp_path):
    """The issue's case: one run's best is 'faster' by its median but its samples spread wide; it must not win."""
    steady = make_run(tmp_path, "steady")                              # best 2.0x, p10..p90 within 10%
    noisy = make_run(tmp_path, "noisy", correct=False)
    add_cand(noisy, "r1-lucky", 1, ms=0.5, spread=1.2)                 # 4.0x by its median, p90 = 0.8 ms
    noisy.append("end", "end-9")
    assert report.pick_best(report.candidates(noisy))["noisy"] is True
    [row] = report.summary([noisy, steady])
    assert row["run"] == "steady" and row["speedup_eager"] == pytest.approx(2.0)
    [alone] = report.summary([noisy])
    assert alone["noisy"] and alone["speedup_eager"] == pytest.approx(4.0)  # shown, but marked
    assert "noisy timing" in report.best_kernel_markdown(noisy)
    # Within a run, a steadier kernel beats one whose median is lower but whose slow end is slower.
    within = make_run(tmp_path, "within", correct=False)
    add_cand(within, "wobbly", 1, ms=0.9, spread=0.5)   # p90 1.125
    add_cand(within, "steady", 1, ms=1.0, spread=0.1)   # p90 1.05
    assert report.best_kernel(within)["candidate"] == "steady"


def test_screened_only_candidates_never_win(tmp_path):
    store = make_run(tmp_path, "screen")
    add_cand(store, "r2-screened", 2, ms=0.2, stage="screen")  # 10x in a short screening timing only
    add_cand(store, "r2-full", 2, ms=0.9, stage="full")
    b = report.best_kernel(store)
    assert b["candidate"] == "r2-full"
    assert report.summary([store])[0]["best"] == "r2-full"
    assert max(t["best_speedup_eager"] for t in report.trajectory(store)) == pytest.approx(2.0 / 0.9)
    only = make_run(tmp_path, "only-screen", correct=False)
    add_cand(only, "s", 1, ms=0.5, stage="screen")
    assert "screening stage only" in report.best_kernel(only)["message"]


def test_devices_are_never_mixed_in_one_ratio(tmp_path):
    h200 = make_run(tmp_path, "h200", device="NVIDIA H200")
    a100 = make_run(tmp_path, "a100", device="NVIDIA A100")
    add_cand(a100, "r2-elsewhere", 2, ms=0.1, device="NVIDIA H200")  # timed on another GPU than the baseline
    rows = report.summary([h200, a100])
    assert [(r["problem"], r["device"]) for r in rows] == [("softmax", "NVIDIA A100"), ("softmax", "NVIDIA H200")]
    a100_row = rows[0]
    assert a100_row["best"] == "r1-i0-m0" and a100_row["speedup_eager"] == pytest.approx(2.0)
    elsewhere = next(r for r in report.candidates(a100) if r["candidate"] == "r2-elsewhere")
    assert elsewhere["speedup_eager"] is None and not report.eligible(elsewhere)


def test_roofline_only_for_memory_bound_problems(tmp_path):
    mem = make_run(tmp_path, "mem", "problems/softmax")
    compute = make_run(tmp_path, "compute", "tests/problems/matmul_small")  # FLOPS > 0
    unknown = make_run(tmp_path, "unknown", str(tmp_path / "gone.py"))
    assert report.best_kernel(mem)["roofline_fraction"] == pytest.approx(1.0)
    assert report.best_kernel(compute)["roofline_fraction"] is None
    assert report.best_kernel(unknown)["roofline_fraction"] is None
    assert {r["run"]: r["roofline_fraction"] for r in report.summary([mem, compute])} == \
        {"mem": pytest.approx(1.0), "compute": None}


def test_cost_and_tokens_prefer_the_runs_totals(tmp_path):
    store = make_run(tmp_path, "paid")
    assert report.usage(store) == {"input_tokens": 100 + 60, "output_tokens": 50 + 30, "tokens": 240,
                                   "cost_usd": 0.0, "source": "events"}
    store.append("call", "call-1", model="openai:x", input_tokens=1000, output_tokens=200, cost_usd=0.012)
    assert report.usage(store)["tokens"] == 1200 and report.usage(store)["cost_usd"] == pytest.approx(0.012)
    store.append("totals", "totals", totals={"overall": {"input_tokens": 1500, "output_tokens": 300,
                                                        "cost_usd": 0.02}})
    u = report.usage(store)
    assert (u["tokens"], u["cost_usd"], u["source"]) == (1800, pytest.approx(0.02), "totals")
    assert report.summary([store])[0]["cost_usd"] == pytest.approx(0.02)


def test_every_failure_kind_is_listed(tmp_path):
    store = make_run(tmp_path, "fails", correct=False)
    add_cand(store, "b", 1, status="build_error")
    add_cand(store, "t", 1, status="timeout")
    add_cand(store, "c", 1, status="crash")
    add_cand(store, "x", 1, status="rejected", codes=["forbidden_source", "profiler_foreign_kernel"])
    add_cand(store, "m", 1, failed=True, error="model error: 429 rate limited")
    store.append("idea", "r1-i9", round=1, text="", model="openai:x", failed=True)
    counts = report.failure_counts(store)
    assert counts == {"build": 1, "timeout": 1, "crash": 1, "rejected": 1, "model": 2, "incorrect": 1}
    text = report.failures_text(store)
    assert text == ("build 1, model 2, timeout 1, crash 1, rejected 1 (forbidden_source, profiler_foreign_kernel), "
                    "incorrect 1")
    kinds = {f["candidate"]: f["kind"] for f in report.failures(store)}
    assert kinds["m"] == "model" and kinds["x"] == "rejected" and kinds["b"] == "build"
    md = report.failures_markdown(report.summary([store]))
    assert "forbidden_source" in md and "timeout 1" in md and "crash 1" in md and "model 2" in md


def test_unjudged_candidates_of_a_stop_stay_pending(tmp_path):
    store = make_run(tmp_path, "stopped", correct=False)
    store.save_source("p", SRC.format(cid="p"))
    store.append("candidate", "cand-p", candidate="p", round=1, model="tuner")
    store.append("verdict", "verdict-p", candidate="p", status="error",
                 reasons=["error: search stopped before this candidate was judged"])
    row = next(r for r in report.candidates(store) if r["candidate"] == "p")
    assert row["status"] == "pending" and row["kind"] is None
    assert "error" not in report.failure_counts(store)


def test_run_without_correct_kernel_and_empty_run(tmp_path):
    bad = make_run(tmp_path, "bad", correct=False, finish=False)
    assert all(t["best_speedup_eager"] is None for t in report.trajectory(bad))
    b = report.best_kernel(bad)
    assert b["candidate"] is None and "token budget" in b["message"] and b["failures"][0]["status"] == "incorrect"
    assert "went wrong" in report.best_kernel_markdown(bad)
    empty = RunStore.open("empty", {"problem": "x"}, tmp_path)
    assert report.trajectory(empty) == [] and report.idea_tree(empty) == []
    assert report.run_state(empty)["state"] == "empty"
    assert report.summary([empty]) == [] and report.killed_runs([empty]) == []
    report.plot_trajectory(empty), report.plot_idea_tree(empty)


def _labels(ax):
    return ax.get_title(), ax.get_xlabel(), ax.get_ylabel()


def _overlaps(fig, artists):
    """Pairs of text artists whose rendered boxes intersect."""
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    boxes = [(a.get_text(), a.get_window_extent(r)) for a in artists if a.get_text()]
    return [(n1, n2) for i, (n1, b1) in enumerate(boxes) for n2, b2 in boxes[i + 1:] if b1.overlaps(b2)]


def test_plots_have_titles_labels_and_a_failure_strip(tmp_path):
    good, bad = make_run(tmp_path, "good"), make_run(tmp_path, "bad", "relu", correct=False, killed=True)
    fig = report.plot_trajectory(good)
    main, strip = fig.axes
    assert "softmax" in main.get_title() and main.get_ylabel() == report.UNITS
    assert strip.get_xlabel() == "round" and strip.get_ylabel() == "failed"
    assert [t.get_text() for t in strip.get_yticklabels()] == ["build (1)", "model (1)", "incorrect (1)"]
    assert main.get_yscale() == "log" and min(c.get_offsets()[:, 1].min() for c in main.collections) >= 0.5
    texts = [t.get_text() for t in main.texts]
    assert any("vectorise" in t for t in texts)  # round-best points labelled with their idea
    fig.canvas.draw()
    r = fig.canvas.get_renderer()
    for t in main.texts:  # idea labels stay inside the plot, clear of the title
        assert not t.get_window_extent(r).overlaps(main.title.get_window_extent(r)), t.get_text()
    bad_title = report.plot_trajectory(bad).axes[0].get_title()
    assert "killed" in bad_title and "no correct kernel" in bad_title
    title, xl, yl = _labels(report.plot_idea_tree(good).axes[0])
    assert "idea tree" in title and xl == "round" and yl
    rows = report.summary([good, make_run(tmp_path, "bad2", "relu", correct=False)])
    fig = report.plot_summary(rows)
    assert len(fig.axes) == 2 and fig._suptitle is not None
    for ax in fig.axes:
        title, xl, yl = _labels(ax)
        assert title and xl == "operator" and "(x)" in yl
        assert any(line.get_ydata()[0] == 1.0 for line in ax.get_lines())  # the line at 1.0
        assert any(t.get_text() == "failed" for t in ax.texts)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["relu", "softmax"]
    assert not _overlaps(fig, [fig._suptitle] + [ax.title for ax in fig.axes])
    grid = report.plot_trajectories([good, bad])
    titled = [a for a in grid.axes if a.get_title()]
    assert len(titled) == 2
    assert not _overlaps(grid, [grid._suptitle] + [a.title for a in titled])
    import matplotlib.pyplot as plt

    plt.close("all")


def test_reads_a_real_run_log():
    from pathlib import Path

    run = Path(__file__).resolve().parent.parent / "outputs" / "runs" / "smoke1"
    if not run.is_dir():
        pytest.skip("no smoke run here")
    rows = report.summary([RunStore(run)])
    assert rows[0]["problem"] == "scale_rows" and rows[0]["candidates"] >= 2


def test_a_used_up_tuner_space_is_no_failure_and_screened_kernels_are_drawn(tmp_path):
    """make run on the H200: the tuner had nothing left to try for 3 candidates, and 10 of 21 were
    screened out; the report had called the first 'model' failures and drawn none of the second."""
    store = make_run(tmp_path, "tuner-done")
    before = report.failure_counts(store)
    add_cand(store, "r3-i0-m1", 3, failed=True, model="tuner", error="the space is exhausted (21 points)")
    store.append("candidate", "cand-r3-s", candidate="r3-s", round=3, idea=None, model="tuner", parent=None)
    store.append("verdict", "verdict-r3-s", candidate="r3-s", status="screened", stage="screen", codes=[],
                 reasons=["screened: slower in a short timing"], ms=0.9, speedup_eager=2.0 / 0.9)
    assert report.failure_counts(store) == before
    rows = {r["candidate"]: r for r in report.candidates(store)}
    assert rows["r3-i0-m1"]["status"] == "not_made" and rows["r3-i0-m1"]["kind"] is None
    assert report.screened_only(rows["r3-s"]) and not report.eligible(rows["r3-s"])
    fig = report.plot_trajectory(store)
    labels = [t.get_text() for a in fig.axes if a.get_legend() for t in a.get_legend().get_texts()]
    assert "screened out (short timing)" in labels
