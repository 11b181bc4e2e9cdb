"""A search killed with SIGKILL mid-run resumes from its log: nothing recorded twice, nothing judged
twice, nothing recorded before the kill rewritten, and every round finished.

The search runs first in a subprocess (its own process group), which is killed once a candidate
beyond round 0 has a verdict; then the same run is resumed in this process. Same problem, seeds
and parameters as test_search_cpu, so the builds are shared through the build cache.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from workbench.proposers.tuner import source_hash
from workbench.search import SearchParams, run_search

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parent.parent
PROBLEM = str(REPO / "tests" / "problems" / "scale_rows")
PARAMS = dict(problem=PROBLEM, models=["tuner"], rounds=2, ideas=2, impls=1, seeds=1, target="cpu",
              compile_baseline=False, trials=2, samples=30)
RUN_ID = "resume-test"
WAIT_S = 1200  # cold build cache: facts, baseline, two seeds and one tuned kernel to build and judge


def descendants(pid: int) -> list[int]:
    """Every process below pid (workers and builders run in their own sessions, so killpg misses them)."""
    children: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(d.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


def events(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    text = path.read_text()
    return [json.loads(ln) for ln in text[: text.rfind("\n") + 1].splitlines()]


def test_kill_and_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    log_path = tmp_path / "events-of-killed-run.log"
    run_dir = tmp_path / RUN_ID
    events_path = run_dir / "events.jsonl"
    code = ("from workbench.search import SearchParams, run_search\n"
            f"run_search(SearchParams(**{PARAMS!r}), run_id={RUN_ID!r}, runs_dir={str(tmp_path)!r})\n")
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            if any(e["type"] == "verdict" and not e["candidate"].startswith("r0-") for e in events(events_path)):
                break
            assert proc.poll() is None, f"search exited early ({proc.returncode}):\n{log_path.read_text()[-3000:]}"
            time.sleep(0.2)
        else:
            pytest.fail(f"no verdict beyond round 0 within {WAIT_S} s:\n{log_path.read_text()[-3000:]}")
        assert proc.poll() is None, "the search finished before it could be killed"
    finally:
        below = descendants(proc.pid)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        for pid in below:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait(timeout=60)

    before = events_path.read_bytes()
    intact = before[: before.rfind(b"\n") + 1]  # a torn last line is allowed, and dropped on resume
    pre = [json.loads(ln) for ln in intact.decode().splitlines()]
    assert not any(e["type"] == "end" for e in pre) and not any(e["id"] == "round-2" for e in pre)
    judged_before = {e["candidate"] for e in pre if e["type"] == "verdict"}
    hash_of = {e["candidate"]: e.get("hash") for e in pre if e["type"] == "candidate"}
    hashes_judged_before = {hash_of[c] for c in judged_before}

    import workbench.pool as pool_mod

    evaluated: list[str] = []
    real_evaluate = pool_mod.evaluate

    def counting_evaluate(problem, path, **kw):
        evaluated.append(source_hash(Path(path).read_text()))
        return real_evaluate(problem, path, **kw)

    monkeypatch.setattr(pool_mod, "evaluate", counting_evaluate)
    store = run_search(SearchParams(**PARAMS), run_id=RUN_ID, runs_dir=tmp_path)
    assert store.dir == run_dir

    after = events_path.read_bytes()
    assert after.startswith(intact), "events recorded before the kill were changed"
    final = [json.loads(ln) for ln in after.decode().splitlines()]  # every line parses
    ids = [e["id"] for e in final]
    assert len(ids) == len(set(ids)), [i for i, n in Counter(ids).items() if n > 1]
    assert [e["id"] for e in final if e["type"] == "start"] == ["start-0", "start-1"]  # it resumed, not restarted

    verdicts = Counter(e["candidate"] for e in final if e["type"] == "verdict")
    assert max(verdicts.values()) == 1, verdicts  # no candidate has two verdicts
    cands = [e for e in final if e["type"] == "candidate"]
    assert {c["candidate"] for c in cands if not c.get("failed")} == set(verdicts)  # and none is left without one
    assert evaluated, "the resumed run had nothing left to do: the kill came too late to test anything"
    assert not set(evaluated) & hashes_judged_before, "a kernel judged before the kill was judged again"
    assert max(Counter(evaluated).values(), default=1) == 1
    assert len({c["candidate"] for c in cands}) == len(cands)

    rounds = [e["round"] for e in final if e["type"] == "round"]
    assert rounds == [0, 1, 2]
    best = [e for e in final if e["type"] == "round"][-1]["best"]
    assert best and (run_dir / "best.py").read_text() == store.candidate_path(best).read_text()
    assert final[-1]["type"] == "end"

    # a third start finds everything done: nothing new is judged, nothing but start/end is logged
    evaluated.clear()
    run_search(SearchParams(**PARAMS), run_id=RUN_ID, runs_dir=tmp_path)
    again = [json.loads(ln) for ln in events_path.read_text().splitlines()]
    assert evaluated == []
    assert [e["type"] for e in again[len(final):]] == ["start", "end"]
