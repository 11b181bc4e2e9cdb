"""`python -m workbench eval` end to end on the CPU, and its errors for bad paths."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
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
    p = cli("eval", PROBLEM, SEED, "--target", "cpu", "--no-compile", "--trials", "2", "--samples", "5", "--out", str(out))
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


def test_missing_candidate_fails_at_once_before_any_timing(tmp_path: Path):
    t0 = time.monotonic()
    p = cli("eval", "softmax", str(tmp_path / "nope.py"), "--out", str(tmp_path / "r.json"), timeout=120)
    took = time.monotonic() - t0
    assert p.returncode == 2 and "Traceback" not in p.stderr + p.stdout
    assert p.stderr.startswith("error:") and "nope.py" in p.stderr and "does not exist" in p.stderr
    assert took < 3.0, f"{took:.1f} s"  # no torch import, no baseline: measured 0.1 s here
    assert p.stdout == "" and not (tmp_path / "r.json").exists()


def test_building_the_command_line_imports_no_torch():
    """Every subcommand's options come from SearchParams; the device defaults are decided after
    parsing, so a bad argument or a missing file is reported before torch's seconds of import."""
    code = ("import sys\nfrom workbench.__main__ import main\n"
            "rc = main(['eval', 'softmax', 'no_such_candidate.py'])\n"
            "print(rc, 'torch' in sys.modules)")
    p = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert p.stdout.split() == ["2", "False"], p.stdout + p.stderr


def test_candidate_with_a_syntax_error_says_so_with_file_and_line(tmp_path: Path):
    bad = tmp_path / "bad.py"
    bad.write_text("import torch\n\nclass ModelNew(torch.nn.Module:\n    pass\n")
    p = cli("eval", PROBLEM, str(bad), "--target", "cpu", timeout=120)
    assert p.returncode == 2 and "Traceback" not in p.stderr + p.stdout
    assert p.stderr.startswith(f"error: syntax error: {bad}:3:"), p.stderr
    assert "forbidden" not in p.stderr and "eager" not in p.stdout


def _alive(pid: int, started: str) -> bool:
    """pid still runs (not a zombie) and is the same process (same start time), not a reused pid."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat[stat.rfind(")") + 2:].split()
    return fields[0] not in ("Z", "X") and fields[19] == started


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return ""


def _tree(pid: int) -> dict[int, str]:
    """Descendants of pid with their start times, walked from /proc by this test (not by the code under test)."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            fields = stat[stat.rfind(")") + 2:].split()
            parents.setdefault(int(fields[1]), []).append(int(entry))
            starts[int(entry)] = fields[19]
    out, todo = {}, [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            out[child] = starts[child]
            todo.append(child)
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="walks /proc")
@pytest.mark.parametrize("sig, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_ends_the_search_cleanly_with_no_process_left(tmp_path: Path, sig: int, code: int):
    env = {**os.environ, "WORKBENCH_RUNS": str(tmp_path / "runs"), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen([sys.executable, "-m", "workbench", "search", PROBLEM, "--target", "cpu", "--no-compile",
                             "--rounds", "2", "--trials", "2", "--samples", "5", "--run-id", "sig"], cwd=REPO,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        seen: dict[int, str] = {}
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            seen.update(_tree(proc.pid))
            if any("workbench.worker" in _cmdline(p) for p in list(seen) if _alive(p, seen[p])):
                break  # mid-run: a judge worker is up
            time.sleep(0.2)
        assert proc.poll() is None and seen, "the search ended or started no worker before the signal"
        seen.update(_tree(proc.pid))
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == code, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    message = [ln for ln in err.splitlines() if ln.startswith("stopped by")]
    assert message == [message[0]] and signal.Signals(sig).name in message[0] and "--run-id sig" in message[0]
    time.sleep(0.5)
    left = [p for p, started in seen.items() if _alive(p, started)]
    assert not left, f"processes left behind: {left}"
    events = (tmp_path / "runs" / "sig" / "events.jsonl").read_text()
    assert '"type": "end"' not in events  # killed, not finished: resumable with --run-id sig


def test_search_with_missing_problem_is_a_clear_error(tmp_path: Path):
    p = cli("search", "tests/problems/no_such_problem", "--target", "cpu", timeout=120)
    assert p.returncode != 0
    assert "Traceback" not in p.stderr + p.stdout
    assert any(ln.startswith("error:") and "no_such_problem" in ln for ln in p.stderr.splitlines()), p.stderr
