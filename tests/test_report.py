"""report.py on a synthetic run built by hand with RunStore: tables and figures from the event log only."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest

from workbench import report
from workbench.store import RunStore

SRC = "class ModelNew:  # {cid}\n    pass\n"


def add_cand(store, cid, rnd, parent=None, idea=None, status="correct", ms=None, eager=2.0, compile_ms=None,
             failed=False, **extra):
    if not failed:
        store.save_source(cid, SRC.format(cid=cid))
    store.append("candidate", f"cand-{cid}", candidate=cid, round=rnd, idea=idea, model="tuner", parent=parent,
                 failed=failed, usage={"input_tokens": 10, "output_tokens": 5}, **extra)
    if failed:
        return
    v = {"status": status, "codes": [] if status == "correct" else [status], "reasons": [] if status == "correct"
         else [f"{cid} went wrong"], "ms": ms, "roofline_fraction": 0.5 * eager / ms if ms else None,
         "speedup_eager": eager / ms if ms and status == "correct" else None,
         "speedup_compile": compile_ms / ms if ms and compile_ms and status == "correct" else None}
    store.append("verdict", f"verdict-{cid}", candidate=cid, **v)


def make_run(tmp_path, name="r1", problem="problems/softmax", finish=True, correct=True):
    store = RunStore.open(name, {"problem": problem, "rounds": 2}, tmp_path)
    store.append("start", "start-0")
    store.append("facts", "facts", facts={"device": "Fake GPU"})
    store.append("baseline", "baseline", device="Fake GPU", eager_ms=2.0, compile_ms=1.0)
    if correct:
        add_cand(store, "r0-a", 0, ms=4.0, compile_ms=1.0)            # 0.5x
        add_cand(store, "r0-b", 0, status="build_error")
    else:
        add_cand(store, "r0-a", 0, status="incorrect", ms=1.0)
    store.append("round", "round-0", round=0)
    store.append("idea", "r1-i0", round=1, text="vectorise loads with float4", model="tuner",
                 usage={"input_tokens": 100, "output_tokens": 50})
    if correct:
        add_cand(store, "r1-i0-m0", 1, parent="r0-a", idea="r1-i0", ms=1.0, compile_ms=1.0)   # 2.0x
        add_cand(store, "r1-i0-m1", 1, parent="r0-a", idea="r1-i0", status="incorrect", ms=0.5)
        add_cand(store, "r1-i0-m1-fix1", 1, parent="r0-a", idea="r1-i0", repair_of="r1-i0-m1", failed=True)
    store.append("round", "round-1", round=1)
    store.append("idea", "r2-i0", round=2, text="use shared memory", model="tuner")
    if correct:
        add_cand(store, "r2-i0-m0", 2, parent="r1-i0-m0", idea="r2-i0", ms=1.25, compile_ms=1.0)  # 1.6x: worse
    store.append("round", "round-2", round=2)
    if finish:
        store.append("end", "end-1", best="r1-i0-m0")
    else:
        store.append("stopped", "stopped-3", reason="token budget spent")
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
    assert soft["roofline_fraction"] == pytest.approx(1.0) and soft["device"] == "Fake GPU"
    assert soft["candidates"] == 6 and soft["share_correct"] == pytest.approx(3 / 6)
    assert soft["tokens"] == 100 + 50 + 6 * 15
    assert relu["speedup_eager"] is None and relu["state"] == "stopped"
    assert "token budget" in relu["error"] and "no correct kernel" in relu["error"]
    assert report.fast_p(rows, 1.0) == pytest.approx(0.5)
    assert report.fast_p(rows, 1.5) == pytest.approx(0.5)
    assert report.fast_p(rows, 2.0) == 0.0  # strictly faster than p
    assert report.fast_p([], 1.0) == 0.0
    md = report.failures_markdown(rows, [{"problem": "conv", "run": "b-conv", "error": "RuntimeError: boom"}])
    assert "relu_small" in md and "boom" in md and "softmax" not in md


def test_run_without_correct_kernel_and_empty_run(tmp_path):
    bad = make_run(tmp_path, "bad", correct=False, finish=False)
    assert all(t["best_speedup_eager"] is None for t in report.trajectory(bad))
    b = report.best_kernel(bad)
    assert b["candidate"] is None and "stopped" in b["message"] and b["failures"][0]["status"] == "incorrect"
    assert "went wrong" in report.best_kernel_markdown(bad)
    empty = RunStore.open("empty", {"problem": "x"}, tmp_path)
    assert report.trajectory(empty) == [] and report.idea_tree(empty) == []
    assert report.run_state(empty)["state"] == "empty"
    assert report.summary([empty])[0]["candidates"] == 0
    report.plot_trajectory(empty), report.plot_idea_tree(empty)


def _labels(ax):
    return ax.get_title(), ax.get_xlabel(), ax.get_ylabel()


def test_plots_have_titles_and_labels(tmp_path):
    good, bad = make_run(tmp_path, "good"), make_run(tmp_path, "bad", "relu", correct=False, finish=False)
    fig = report.plot_trajectory(good)
    ax = fig.axes[0]
    title, xl, yl = _labels(ax)
    assert "softmax" in title and xl == "round" and yl == report.UNITS and "(x)" in yl
    texts = [t.get_text() for t in ax.texts]
    assert any("vectorise" in t for t in texts)  # round-best points labelled with their idea
    assert len(ax.collections) >= 2  # correct points and failures
    bad_title = report.plot_trajectory(bad).axes[0].get_title()
    assert "stopped" in bad_title and "no correct kernel" in bad_title
    title, xl, yl = _labels(report.plot_idea_tree(good).axes[0])
    assert "idea tree" in title and xl == "round" and yl
    rows = report.summary([good, bad])
    fig = report.plot_summary(rows)
    assert len(fig.axes) == 2 and fig._suptitle is not None
    for ax in fig.axes:
        title, xl, yl = _labels(ax)
        assert title and xl == "operator" and "(x)" in yl
        assert any(line.get_ydata()[0] == 1.0 for line in ax.get_lines())  # the line at 1.0
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["relu", "softmax"]
    grid = report.plot_trajectories([good, bad])
    assert sum(1 for a in grid.axes if a.get_title()) == 2
    import matplotlib.pyplot as plt

    plt.close("all")


def test_reads_a_real_run_log():
    from pathlib import Path

    run = Path(__file__).resolve().parent.parent / "outputs" / "runs" / "smoke1"
    if not run.is_dir():
        pytest.skip("no smoke run here")
    rows = report.summary([RunStore(run)])
    assert rows[0]["problem"] == "scale_rows" and rows[0]["candidates"] >= 2
