"""`python -m workbench eval` end to end on the CPU, and its errors for bad paths."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PROBLEM = "tests/problems/scale_rows"
SEED = "tests/problems/scale_rows/seeds/loop.py"


def cli(*args: str, timeout: float = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_eval_prints_the_verdict_and_writes_the_record(tmp_path: Path):
    out = tmp_path / "sub" / "record.json"
    p = cli("eval", PROBLEM, SEED, "--target", "cpu", "--no-compile", "--trials", "2", "--out", str(out))
    assert p.returncode == 0, p.stdout + p.stderr
    assert "verdict    CORRECT" in p.stdout
    assert "eager" in p.stdout and "kernel" in p.stdout
    record = json.loads(out.read_text())
    assert record["status"] == "correct" and record["correct"] is True
    assert record["problem"] == "scale_rows" and record["target"] == "cpu"
    assert record["ms"] > 0 and record["baseline"]["eager_ms"] > 0 and record["speedup"]["eager"] > 0
    assert len(record["trials"]) >= 2 and record["builds"] and record["builds"][0]["ok"]
    assert str(out) in p.stdout


def test_missing_problem_is_a_clear_error(tmp_path: Path):
    p = cli("eval", "tests/problems/no_such_problem", SEED, "--target", "cpu", "--no-timing",
            "--out", str(tmp_path / "r.json"), timeout=120)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr + p.stdout
    assert p.stderr.startswith("error:") and "no_such_problem" in p.stderr
    assert not (tmp_path / "r.json").exists()


def test_problem_that_is_not_kernelbench_is_a_clear_error(tmp_path: Path):
    bad = tmp_path / "reference.py"
    bad.write_text("x = 1\n")
    p = cli("eval", str(bad), SEED, "--target", "cpu", "--no-timing", timeout=120)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr + p.stdout
    assert p.stderr.startswith("error:") and "KernelBench" in p.stderr


def test_missing_candidate_is_not_a_traceback(tmp_path: Path):
    p = cli("eval", PROBLEM, str(tmp_path / "nope.py"), "--target", "cpu", "--no-timing",
            "--out", str(tmp_path / "r.json"), timeout=120)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr + p.stdout
    assert "nope.py" in p.stdout + p.stderr


def test_search_with_missing_problem_is_a_clear_error(tmp_path: Path):
    p = cli("search", "tests/problems/no_such_problem", "--target", "cpu", timeout=120)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr + p.stdout
    assert any(ln.startswith("error:") and "no_such_problem" in ln for ln in p.stderr.splitlines()), p.stderr
