"""The runtime guard (workbench/guard.py) in a process of its own: a stand-in worker arms it and
loads tests/guard_scripts/attempts.py as a candidate; every forbidden thing must be refused and
recorded, and torch, the harness's own suspended I/O and a candidate's honest work must still run."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = Path(__file__).resolve().parent / "guard_scripts"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    outside = tmp_path_factory.mktemp("outside") / "outside.txt"
    outside.write_text("untouched")
    env = {**os.environ, "GUARD_TEST_OUTSIDE": str(outside)}
    p = subprocess.run([sys.executable, str(SCRIPTS / "harness.py"), str(ROOT)], capture_output=True, text=True,
                       timeout=120, env=env)
    assert p.returncode == 0, p.stderr[-4000:]
    rep = json.loads(p.stdout.strip().splitlines()[-1])
    rep["outside_after"] = outside.read_text()
    return rep


def test_every_attempt_is_refused(report):
    allowed = {k: v for k, v in report["results"].items() if v != "refused"}
    assert not allowed, allowed
    assert len(report["results"]) >= 35


def test_refusals_are_recorded_and_nothing_outside_changed(report):
    # a candidate that catches PermissionError still leaves its trace for the harness
    assert len(report["violations"]) >= len(report["results"]) - 1, report["violations"]
    assert any("tb_frame" in v for v in report["violations"])
    assert report["outside_after"] == "untouched"


def test_torch_and_honest_work_still_run(report):
    assert all(report["honest"].values()), report["honest"]


def test_overhead_is_small(report):
    before, after = report["forward_us"]
    print(f"nn.Linear forward: {before:.1f} us unarmed, {after:.1f} us armed; open(): {report['open_us']} us; "
          f"arm: {report['arm_s'] * 1e3:.0f} ms")
    assert after < before * 1.5 + 5  # a forward raises no audit events: the guard costs ~nothing there
    assert report["arm_s"] < 5
