"""A run on disk: the append-only event log, resume after a torn write, parameters, the table."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from workbench.store import RunError, RunStore, list_runs, problem_path, problem_ref

REPO = Path(__file__).resolve().parent.parent
PARAMS = {"problem": "scale_rows", "rounds": 2, "ideas": 2, "models": ["tuner"]}


def lines(store: RunStore) -> list[dict]:
    return [json.loads(ln) for ln in store.events_path.read_text().splitlines()]  # every line must parse


def test_open_creates_the_run(tmp_path: Path):
    store = RunStore.open("run1", PARAMS, runs_dir=tmp_path)
    assert store.dir == tmp_path / "run1" and store.run_id == "run1"
    assert store.params == {**PARAMS, "run_id": "run1"}
    assert store.candidates_dir.is_dir()
    assert store.events() == [] and not store.events_path.exists()
    assert [s.run_id for s in list_runs(tmp_path)] == ["run1"]


@pytest.mark.parametrize("problem", ["scale_rows", "/abs/tests/problems/scale_rows", "tests/problems/scale_rows/",
                                     "tests/problems/scale_rows/reference.py", "kb/level1/scale_rows.py"])
def test_open_without_run_id_names_the_run(tmp_path: Path, problem: str):
    """A problem given as a path must not turn the run id into nested directories."""
    store = RunStore.open(None, {**PARAMS, "problem": problem}, runs_dir=tmp_path)
    assert store.dir.parent == tmp_path and "/" not in store.run_id and "scale_rows" in store.run_id
    assert store.params["run_id"] == store.run_id
    assert [s.run_id for s in list_runs(tmp_path)] == [store.run_id]


def test_append_is_idempotent_by_id(tmp_path: Path):
    store = RunStore.open("run1", PARAMS, runs_dir=tmp_path)
    first = store.append("idea", "r1-i0", round=1, text="first")
    again = store.append("idea", "r1-i0", round=1, text="second")
    assert again == first and again["text"] == "first"
    store.append("idea", "r1-i1", round=1, text="other")
    assert [e["id"] for e in lines(store)] == ["r1-i0", "r1-i1"]
    assert store.has("r1-i0") and not store.has("r1-i2")
    assert store.get("r1-i1")["text"] == "other" and store.get("nope") is None
    # and across a reopen: the log, not memory, is what dedupes
    store.close()
    reopened = RunStore.open("run1", PARAMS, runs_dir=tmp_path)
    assert reopened.append("idea", "r1-i0", round=1, text="third")["text"] == "first"
    assert [e["id"] for e in lines(reopened)] == ["r1-i0", "r1-i1"]
    assert [e["id"] for e in reopened.events("idea")] == ["r1-i0", "r1-i1"]


def test_torn_last_line_is_dropped_on_reopen(tmp_path: Path):
    store = RunStore.open("run1", PARAMS, runs_dir=tmp_path)
    for i in range(3):
        store.append("verdict", f"verdict-c{i}", candidate=f"c{i}", status="correct", ms=1.0 + i)
    intact = store.events_path.read_bytes()
    torn = json.dumps({"id": "verdict-c3", "type": "verdict", "candidate": "c3", "status": "correct"})
    with open(store.events_path, "ab") as f:  # a kill -9 in the middle of a write
        f.write(torn[: len(torn) // 2].encode())
    store.close()
    reopened = RunStore.open("run1", PARAMS, runs_dir=tmp_path)
    assert [e["id"] for e in reopened.events()] == ["verdict-c0", "verdict-c1", "verdict-c2"]
    assert not reopened.has("verdict-c3")
    assert store.events_path.read_bytes() == intact  # the torn bytes are gone, the rest untouched
    reopened.append("verdict", "verdict-c3", candidate="c3", status="incorrect")
    parsed = lines(reopened)
    assert [e["id"] for e in parsed] == ["verdict-c0", "verdict-c1", "verdict-c2", "verdict-c3"]
    assert parsed[-1]["status"] == "incorrect"
    assert store.events_path.read_bytes().startswith(intact)


def test_a_log_that_is_one_torn_line(tmp_path: Path):
    store = RunStore.open("run1", PARAMS, runs_dir=tmp_path)
    store.events_path.write_text('{"id": "start-0", "ty')
    store.close()
    reopened = RunStore.open("run1", PARAMS, runs_dir=tmp_path)
    assert reopened.events() == []
    reopened.append("start", "start-0", pid=1)
    assert [e["id"] for e in lines(reopened)] == ["start-0"]


def test_reopen_with_other_params_raises(tmp_path: Path):
    with RunStore.open("run1", PARAMS, runs_dir=tmp_path) as first:
        first.append("start", "start-0")
    with pytest.raises(RunError, match="rounds"):
        RunStore.open("run1", {**PARAMS, "rounds": 3}, runs_dir=tmp_path)
    with pytest.raises(RunError, match="extra"):
        RunStore.open("run1", {**PARAMS, "extra": 1}, runs_dir=tmp_path)
    # the same parameters resume, and the log is as it was
    store = RunStore.open("run1", dict(PARAMS), runs_dir=tmp_path)
    assert [e["id"] for e in store.events()] == ["start-0"]
    assert json.loads((store.dir / "params.json").read_text())["rounds"] == 2


def test_sources_and_best(tmp_path: Path):
    store = RunStore.open("run1", PARAMS, runs_dir=tmp_path)
    path = store.save_source("r1-i0-m0", "print('kernel')\n")
    assert path == store.candidate_path("r1-i0-m0") and path.read_text() == "print('kernel')\n"
    store.save_best("r1-i0-m0", {"ms": 0.5})
    assert (store.dir / "best.py").read_text() == "print('kernel')\n"
    assert json.loads((store.dir / "best.json").read_text()) == {"candidate": "r1-i0-m0", "ms": 0.5}
    assert not list(store.dir.glob(".*tmp*"))  # atomic writes leave no temporary files


def test_table_rows(tmp_path: Path):
    store = RunStore.open("run1", PARAMS, runs_dir=tmp_path)
    store.append("idea", "r1-i0", round=1, text="unroll by 4", model="tuner")
    store.append("candidate", "cand-r0-loop", candidate="r0-loop", round=0, idea=None, model="seed", parent=None)
    store.append("candidate", "cand-r1-i0-m0", candidate="r1-i0-m0", round=1, idea="r1-i0", model="tuner",
                 parent="r0-loop")
    store.append("candidate", "cand-r1-i0-m1", candidate="r1-i0-m1", round=1, idea="r1-i0", model="tuner",
                 parent="r0-loop", failed=True)
    store.append("verdict", "verdict-r0-loop", candidate="r0-loop", status="correct", ms=2.0, speedup_eager=1.5,
                 codes=[])
    store.append("verdict", "verdict-r1-i0-m0", candidate="r1-i0-m0", status="incorrect", ms=None,
                 codes=["mismatch"])
    rows = RunStore(store.dir).table()  # from the log alone
    assert [r["candidate"] for r in rows] == ["r0-loop", "r1-i0-m0"]  # one row per judged candidate
    seed, tuned = rows
    assert seed["run"] == "run1" and seed["round"] == 0 and seed["model"] == "seed" and seed["correct"]
    assert seed["ms"] == 2.0 and seed["speedup_eager"] == 1.5 and seed["idea"] == ""
    assert tuned["idea"] == "unroll by 4" and tuned["parent"] == "r0-loop" and tuned["round"] == 1
    assert tuned["status"] == "incorrect" and not tuned["correct"] and tuned["codes"] == ["mismatch"]


# -- safety -------------------------------------------------------------------------------------------
def test_one_writer_per_run(tmp_path: Path):
    first = RunStore.open("run1", PARAMS, runs_dir=tmp_path)
    with pytest.raises(RunError, match=rf"run run1 is in use by another search \(pid {os.getpid()}"):
        RunStore.open("run1", PARAMS, runs_dir=tmp_path)
    assert RunStore(first.dir).params["rounds"] == 2  # readers (report, panel) need no lock
    first.close()
    RunStore.open("run1", PARAMS, runs_dir=tmp_path).close()


def test_a_killed_writer_leaves_no_stuck_lock(tmp_path: Path):
    code = ("import sys, time; from workbench.store import RunStore\n"
            f"s = RunStore.open('run1', {PARAMS!r}, runs_dir={str(tmp_path)!r})\n"
            "print('open', flush=True); time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True, cwd=REPO,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert proc.stdout.readline().strip() == "open"
        with pytest.raises(RunError, match="in use"):
            RunStore.open("run1", PARAMS, runs_dir=tmp_path)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    RunStore.open("run1", PARAMS, runs_dir=tmp_path).close()  # the kernel dropped the dead writer's flock


def test_appends_from_threads_and_processes_never_interleave(tmp_path: Path):
    store = RunStore.open("run1", PARAMS, runs_dir=tmp_path)
    big = "x" * 70_000  # longer than a pipe buffer: one write of one line still lands whole
    code = ("import sys; from workbench.store import RunStore\n"
            f"s = RunStore({str(store.dir)!r})\n"
            "for i in range(40): s.append('note', f'p{sys.argv[1]}-{i}', text=sys.argv[2] * (i % 3))\n")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(n), big], cwd=REPO,
                              env={**os.environ, "PYTHONPATH": str(REPO)}) for n in range(2)]

    def write(t: int) -> None:
        for i in range(40):
            store.append("note", f"t{t}-{i}", text=big * (i % 2))

    threads = [threading.Thread(target=write, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(p.wait(timeout=120) == 0 for p in procs)
    parsed = lines(store)  # every line is one whole event
    assert len(parsed) == 6 * 40 and len({e["id"] for e in parsed}) == 6 * 40
    store.close()
    assert not RunStore(store.dir).damage


def test_damaged_lines_are_reported_and_the_rest_is_read(tmp_path: Path):
    store = RunStore.open("run1", PARAMS, runs_dir=tmp_path)
    store.append("idea", "r1-i0", round=1, text="first", model="tuner")
    with open(store.events_path, "ab") as f:
        f.write(b'{"id": "verdict-r1-i0-m0", "type": "verdict", "cand\n')  # a line cut in the middle
        f.write(b'{"id": "r1-i9", "type": "idea", "text": "\xff\xfe"}\n')  # not UTF-8
        f.write(b'[1, 2, 3]\n')  # JSON, not an event
        f.write(b'{"type": "idea", "text": "no id"}\n')
    store.append("idea", "r1-i1", round=1, text="after", model="tuner")
    store.close()
    reader = RunStore(store.dir)
    assert [e["id"] for e in reader.events()] == ["r1-i0", "r1-i1"]
    assert list(reader.state.ideas) == ["r1-i0", "r1-i1"]
    damage = "\n".join(reader.damage)
    assert len(reader.damage) == 4
    assert "line 2: not JSON" in damage and "'verdict-r1-i0-m0'" in damage
    assert "line 3: not UTF-8" in damage and "'r1-i9'" in damage
    assert "line 4: a JSON list" in damage and "line 5: an object without a string id" in damage


def test_problem_refs_resolve_from_any_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert problem_ref("softmax") == "softmax"
    monkeypatch.chdir(REPO)
    assert problem_ref("tests/problems/scale_rows") == "tests/problems/scale_rows"
    assert problem_ref(str(REPO / "tests/problems/scale_rows")) == "tests/problems/scale_rows"
    assert problem_ref("tests/problems/scale_rows/reference.py") == "tests/problems/scale_rows"
    assert problem_ref("./tests/problems/scale_rows/") == "tests/problems/scale_rows"
    outside = tmp_path / "kb.py"
    outside.write_text("x = 1\n")
    assert problem_ref(str(outside)) == str(outside)
    monkeypatch.chdir(REPO / "notebooks")  # where the notebook runs: the run's problem is still found
    assert Path(problem_path("tests/problems/scale_rows")).is_dir()


def test_free_parameters_and_problem_spellings_do_not_block_a_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(REPO)
    absolute = {**PARAMS, "problem": str(REPO / "tests/problems/scale_rows"), "concurrency": 8}
    RunStore.open("run1", absolute, runs_dir=tmp_path).close()
    relative = {**PARAMS, "problem": "tests/problems/scale_rows"}
    RunStore.open("run1", relative, runs_dir=tmp_path, free=("concurrency",)).close()
    with pytest.raises(RunError, match="concurrency"):
        RunStore.open("run1", relative, runs_dir=tmp_path)
