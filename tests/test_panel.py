"""The control panel without a kernel: feed it the events of a run, check what its widgets show."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import threading

import pytest

pytest.importorskip("ipywidgets")

from test_report import make_run  # noqa: E402

from workbench.panel import SearchPanel  # noqa: E402


def test_panel_follows_events(tmp_path):
    store = make_run(tmp_path)
    panel = SearchPanel(problem="tests/problems/scale_rows", models=("tuner", "openai:gpt-x"), rounds=2, ideas=1,
                        impls=2, target="cpu", total=7)
    assert panel.problem.value == "tests/problems/scale_rows" and panel.progress.max == 7
    p = panel.params()
    assert p.models == ["tuner", "openai:gpt-x"] and (p.rounds, p.ideas, p.impls, p.target) == (2, 1, 2, "cpu")
    seen = 0
    for ev in store.events():
        panel.on_event(ev)
        if ev["type"] == "verdict":
            seen += 1
            assert panel.progress.value == seen
            assert ev["candidate"] in panel.table.value
        if ev["type"] == "round" and ev["round"] == 1:
            assert "round 1: best r1-i0-m0" in panel.status.value and "2.000x" in panel.status.value
            assert len(panel.out.outputs) == 1  # the trajectory, redrawn (replaced) each round
            assert panel.out.outputs[0]["data"].get("image/png")
    assert panel.progress.value == 5 and seen == 5
    html = panel.table.value
    assert "r2-i0-m0" in html and "vectorise loads" in html and "build_error" in html and "incorrect" in html
    assert html.count("<tr>") == 1 + 6  # header + every candidate (fewer than TABLE_ROWS)
    assert len(panel.out.outputs) == 1


def test_table_keeps_latest_rows(tmp_path):
    store = make_run(tmp_path)
    panel = SearchPanel(problem="x", target="cpu")
    for ev in store.events():
        panel.on_event(ev)
    html = panel.table_html(n=2)
    assert html.count("<tr>") == 3 and "r2-i0-m0" in html and "r0-a<" not in html


def test_stop_sets_the_event_the_search_reads():
    panel = SearchPanel(problem="x", target="cpu")
    assert not panel.stop_event.is_set()
    panel.stop_button.disabled = False
    panel.stop_button.click()
    assert panel.stop_event.is_set() and "stopping" in panel.status.value


def test_start_runs_in_background_and_reports_errors(tmp_path):
    """Start with a problem that cannot load: the thread ends, the error shows, the buttons come back."""
    panel = SearchPanel(problem="no/such/problem", target="cpu", runs_dir=tmp_path)
    panel.start()
    assert isinstance(panel.thread, threading.Thread)
    panel.thread.join(60)
    assert not panel.thread.is_alive()
    assert panel.error is not None and "error" in panel.status.value
    assert not panel.start_button.disabled and panel.stop_button.disabled
