"""The round loop on the CPU, with the offline tuner and tests/problems/scale_rows.

The fast tests drive the search's bookkeeping with a fake pool (no builds). The slow test runs
a whole 2-round search; with the build cache warm it takes about a minute, cold a few
(each distinct kernel source is one ~20 s C++ build on a 2-core box).
"""
from __future__ import annotations

import json
import os
import threading
from collections import Counter
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from workbench.judge import Verdict
from workbench.proposers.tuner import source_hash
from workbench.search import Search, SearchParams, run_search

PROBLEM = str(Path(__file__).resolve().parent / "problems" / "scale_rows")


def search_params(**kw: Any) -> SearchParams:
    base = dict(problem=PROBLEM, models=["tuner"], rounds=2, ideas=2, impls=1, seeds=1, target="cpu",
                compile_baseline=False, trials=2, samples=30, profile_kernels=0)
    return SearchParams(**{**base, **kw})


def log_lines(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in (run_dir / "events.jsonl").read_text().splitlines()]


class FakePool:
    """Stands in for EvalPool: records what it was asked to judge, answers 'correct', each one faster."""

    def __init__(self) -> None:
        self.eval_kwargs: dict[str, Any] = {}
        self.judged: list[Path] = []
        self.lock = threading.Lock()

    def verdict(self, problem, path) -> Verdict:
        with self.lock:
            self.judged.append(Path(path))
            return Verdict(problem.name, str(path), "cpu", timing={"ms": 100.0 - len(self.judged)})

    def session(self, problem, on_done=None, should_stop=None):
        return FakeSession(self, problem)


class FakeSession:
    def __init__(self, pool: FakePool, problem) -> None:
        self.pool, self.problem = pool, problem

    def submit(self, path) -> Future:
        fut: Future = Future()
        fut.set_result(self.pool.verdict(self.problem, path))
        return fut

    def wait(self) -> None:
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def test_duplicate_sources_are_judged_once(tmp_path: Path):
    s = Search(search_params(profile_kernels=0), run_id="dup", runs_dir=tmp_path)
    src = Path(PROBLEM, "seeds", "loop.py").read_text()
    other = Path(PROBLEM, "seeds", "blocked.py").read_text()
    cands = [s.add_candidate(cid, source, round=1, idea=None, model="tuner", parent=None)
             for cid, source in (("r1-i0-m0", src), ("r1-i1-m0", src), ("r1-i2-m0", other))]
    assert s.state.candidates["r1-i1-m0"].duplicate_of == "r1-i0-m0"
    pool = FakePool()
    s.session = pool.session(s.problem)
    with ThreadPoolExecutor(3) as ex:  # the duplicate may be asked first: it waits for its original
        list(ex.map(s.judge, reversed(cands)))
    assert sorted(p.stem for p in pool.judged) == ["r1-i0-m0", "r1-i2-m0"]  # one evaluation per source
    v = {cid: c.verdict for cid, c in s.state.candidates.items()}
    assert v["r1-i1-m0"].ms == v["r1-i0-m0"].ms and v["r1-i1-m0"].status == "correct"
    assert v["r1-i1-m0"].copied_from == "r1-i0-m0"
    # a later duplicate reuses the recorded verdict, nothing is judged again
    s.judge(s.add_candidate("r2-i0-m0", src, round=2, idea=None, model="tuner", parent=None))
    assert len(pool.judged) == 2 and s.state.candidates["r2-i0-m0"].verdict.ms == v["r1-i0-m0"].ms
    s.store.close()
    ids = [e["id"] for e in log_lines(s.store.dir)]
    assert len(ids) == len(set(ids))


def test_round_bookkeeping_with_a_fake_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The whole loop without building anything: seeds in round 0, K*M tuned candidates per round."""
    import workbench.search as search

    pool = FakePool()
    monkeypatch.setattr(search, "EvalPool", lambda *a, **k: pool)
    monkeypatch.setattr(search, "measure_facts", lambda target: {"device": "fake"})
    monkeypatch.setattr(search, "time_reference", lambda problem, target, compile: {"eager_ms": 10.0})
    store = run_search(search_params(rounds=3), run_id="fake", runs_dir=tmp_path)
    events = log_lines(store.dir)
    assert [e["round"] for e in events if e["type"] == "round"] == [0, 1, 2, 3]
    cands = [e for e in events if e["type"] == "candidate"]
    assert sorted(c["candidate"] for c in cands if c["round"] == 0) == ["r0-blocked", "r0-loop"]
    for r in (1, 2, 3):
        assert len([c for c in cands if c["round"] == r]) == 2  # K=2 ideas x M=1
    hashes = [c["hash"] for c in cands if c.get("hash")]
    assert len(hashes) == len(set(hashes))  # the tuner never re-proposes a source
    assert len(pool.judged) == len(hashes)
    assert events[-1]["type"] == "end"


@pytest.mark.slow
def test_full_search_on_cpu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import workbench.pool as pool_mod

    judged: list[str] = []  # the source hash of every real evaluation
    real_evaluate = pool_mod.evaluate

    def counting_evaluate(problem, path, **kw):
        judged.append(source_hash(Path(path).read_text()))
        return real_evaluate(problem, path, **kw)

    monkeypatch.setattr(pool_mod, "evaluate", counting_evaluate)
    store = run_search(search_params(), runs_dir=tmp_path)
    assert store.dir.parent == tmp_path and store.params["run_id"] == store.run_id
    events = log_lines(store.dir)
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids))

    cands = {e["candidate"]: e for e in events if e["type"] == "candidate"}
    verdicts = [e for e in events if e["type"] == "verdict"]
    by_cand = {v["candidate"]: v for v in verdicts}
    assert len(by_cand) == len(verdicts)  # no candidate has two verdicts
    assert Counter(judged) and max(Counter(judged).values()) == 1, Counter(judged)  # no source judged twice
    assert len(judged) == len({cands[c]["hash"] for c in by_cand})

    # round 0 judged both seeds, and both are correct
    assert {"r0-loop", "r0-blocked"} <= set(by_cand)
    assert by_cand["r0-loop"]["status"] == "correct", by_cand["r0-loop"]["reasons"]
    assert by_cand["r0-blocked"]["status"] == "correct", by_cand["r0-blocked"]["reasons"]
    for r in (1, 2):
        assert [c for c in cands.values() if c["round"] == r and not c.get("failed")], f"round {r} made nothing"
    # duplicates (if any) carry the verdict of the source they duplicate
    for c in cands.values():
        if c.get("duplicate_of") and c["candidate"] in by_cand:
            assert by_cand[c["candidate"]]["ms"] == by_cand[c["duplicate_of"]]["ms"]

    rounds = [e for e in events if e["type"] == "round"]
    assert [e["round"] for e in rounds] == [0, 1, 2]
    for e in rounds:
        assert e["best"] is not None and by_cand[e["best"]]["status"] == "correct"
        assert e["best_ms"] == by_cand[e["best"]]["ms"]
    assert rounds[-1]["best_ms"] <= rounds[0]["best_ms"]  # the best never gets worse
    assert all(e["best_ms"] >= rounds[-1]["best_ms"] for e in rounds)

    best = json.loads((store.dir / "best.json").read_text())
    fastest = min((v for v in verdicts if v["status"] == "correct"), key=lambda v: v["ms"])
    assert best["candidate"] == fastest["candidate"] == rounds[-1]["best"]
    assert (store.dir / "best.py").read_text() == store.candidate_path(best["candidate"]).read_text()
    table = store.table()
    assert len(table) == len(verdicts) and all(r["round"] is not None for r in table)
    assert events[-1]["type"] == "end" and events[-1]["best"] == best["candidate"]


class Killed(BaseException):
    pass


class DyingPool(FakePool):
    """Judges `lives` candidates, then dies the way a killed process would: mid-round, without cleanup."""

    def __init__(self, lives: int) -> None:
        super().__init__()
        self.lives = lives

    def verdict(self, problem, path) -> Verdict:
        with self.lock:
            if self.lives == 0:
                raise Killed
            self.lives -= 1
        return super().verdict(problem, path)


@pytest.mark.parametrize("lives", [0, 1, 3, 4])
def test_resume_after_a_crash_with_a_fake_pool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, lives: int):
    import workbench.search as search

    monkeypatch.setattr(search, "measure_facts", lambda target: {"device": "fake"})
    monkeypatch.setattr(search, "time_reference", lambda problem, target, compile: {"eager_ms": 10.0})
    dying = DyingPool(lives)
    monkeypatch.setattr(search, "EvalPool", lambda *a, **k: dying)
    with pytest.raises(Killed):
        run_search(search_params(), run_id="crash", runs_dir=tmp_path)
    events_path = tmp_path / "crash" / "events.jsonl"
    with open(events_path, "a") as f:
        f.write('{"id": "verdict-r9-i9-m9", "type": "verd')  # and the last write was torn
    before = events_path.read_text()
    before = before[: before.rfind("\n") + 1]
    first = {source_hash(p.read_text()) for p in dying.judged}
    assert len(first) == lives

    pool = FakePool()
    monkeypatch.setattr(search, "EvalPool", lambda *a, **k: pool)
    store = run_search(search_params(), run_id="crash", runs_dir=tmp_path)
    text = events_path.read_text()
    assert text.startswith(before)
    events = [json.loads(ln) for ln in text.splitlines()]
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)) and "verdict-r9-i9-m9" not in ids
    second = [source_hash(p.read_text()) for p in pool.judged]
    assert len(second) == len(set(second)) and not first & set(second)  # nothing judged twice
    assert [e["round"] for e in events if e["type"] == "round"] == [0, 1, 2]
    verdicts = Counter(e["candidate"] for e in events if e["type"] == "verdict")
    assert max(verdicts.values()) == 1
    assert set(verdicts) == {e["candidate"] for e in events if e["type"] == "candidate" and not e.get("failed")}
    assert (store.dir / "best.py").is_file()


def fake_setup(monkeypatch: pytest.MonkeyPatch) -> FakePool:
    import workbench.search as search

    pool = FakePool()
    monkeypatch.setattr(search, "EvalPool", lambda *a, **k: pool)
    monkeypatch.setattr(search, "measure_facts", lambda target: {"device": "fake"})
    monkeypatch.setattr(search, "time_reference", lambda problem, target, compile: {"eager_ms": 10.0})
    return pool


def test_a_run_binds_to_its_problem(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import shutil

    from workbench.store import RunError

    fake_setup(monkeypatch)
    problem = tmp_path / "problem"
    shutil.copytree(PROBLEM, problem)
    p = search_params(problem=str(problem), rounds=1)
    first = run_search(p, run_id="bound", runs_dir=tmp_path / "runs")
    assert json.loads((first.dir / "params.json").read_text())["problem_digest"]
    ref = problem / "reference.py"
    ref.write_text(ref.read_text().replace("x * 2.0 + 1.0", "x * 3.0 + 1.0"))
    with pytest.raises(RunError, match="the problem file has changed since"):
        Search(p, run_id="bound", runs_dir=tmp_path / "runs")
    other = Search(p, run_id="bound", runs_dir=tmp_path / "runs", new_run_on_change=True)
    assert other.store.run_id != "bound" and not other.store.events()
    other.store.close()


def test_a_resume_on_a_damaged_log_says_what_it_redoes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pool = fake_setup(monkeypatch)
    store = run_search(search_params(rounds=1), run_id="damaged", runs_dir=tmp_path)
    lines = store.events_path.read_bytes().splitlines(keepends=True)
    n = next(i for i, ln in enumerate(lines) if b'"verdict-r0-loop"' in ln)
    lines[n] = lines[n][:40] + b"\n"  # damage a verdict in the middle of the log
    store.events_path.write_bytes(b"".join(lines))
    judged = len(pool.judged)
    notices: list[str] = []
    run_search(search_params(rounds=1), run_id="damaged", runs_dir=tmp_path,
               on_event=lambda ev: notices.append(ev["message"]) if ev["type"] == "notice" else None)
    assert any(f"line {n + 1}: not JSON" in m and "verdict-r0-loop" in m and "redone" in m for m in notices), notices
    assert [p.stem for p in pool.judged[judged:]] == ["r0-loop"]  # exactly the lost verdict is redone


def test_search_params_state_every_default_once():
    from dataclasses import fields

    from workbench.__main__ import main
    from workbench.params import param_fields

    assert all(f.metadata.get("help") for f in fields(SearchParams))
    flags = [flag for _, flag, _ in param_fields()]
    assert "--model" in flags and "--concurrency" in flags and "--max-output-tokens" in flags
    assert len(flags) == len(set(flags))
    with pytest.raises(SystemExit):  # every field became an option, with its help
        main(["search", "--help"])


def test_a_second_search_on_a_run_in_use_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]):
    import workbench.store as store
    from workbench.__main__ import main

    fake_setup(monkeypatch)
    monkeypatch.setattr(store, "RUNS_DIR", tmp_path)
    first = Search(search_params(), run_id="busy")  # holds the run until it ends
    code = main(["search", PROBLEM, "--target", "cpu", "--rounds", "2", "--ideas", "2", "--impls", "1",
                 "--seeds", "1", "--no-compile", "--trials", "2", "--profile-kernels", "0", "--run-id", "busy"])
    assert code == 2 and f"run busy is in use by another search (pid {os.getpid()}" in capsys.readouterr().err
    first.run()  # ... and it still completes
    assert first.store.events("end")


def test_a_duplicate_hears_when_its_original_cannot_be_judged(tmp_path: Path):
    s = Search(search_params(), run_id="dup-fail", runs_dir=tmp_path)
    src = Path(PROBLEM, "seeds", "loop.py").read_text()
    orig = s.add_candidate("r1-i0-m0", src, round=1, idea=None, model="tuner", parent=None)
    dup = s.add_candidate("r1-i1-m0", src, round=1, idea=None, model="tuner", parent=None)

    class BrokenSession:
        def submit(self, path):
            raise Killed

    s.session = BrokenSession()
    with ThreadPoolExecutor(2) as ex:
        waiting = ex.submit(s.judge, dup)
        with pytest.raises(Killed):
            s.judge(orig)
        with pytest.raises(Killed):
            waiting.result(timeout=10)  # not a hang
    s.store.close()


def test_proposers_that_learn_hear_every_verdict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import workbench.search as search

    heard: list[tuple[str, str]] = []

    class Learner(search.Tuner):
        def observe(self, candidate_id: str, source: str, record: dict) -> None:
            heard.append((candidate_id, record["status"]))

    monkeypatch.setattr(search, "Tuner", Learner)
    fake_setup(monkeypatch)
    store = run_search(search_params(rounds=1), run_id="learn", runs_dir=tmp_path)
    judged = [e["candidate"] for e in store.events("verdict")]
    assert [c for c, _ in heard] == judged and len(judged) >= 3
    heard.clear()
    Search(search_params(rounds=1), run_id="learn", runs_dir=tmp_path).store.close()  # a resume replays them
    assert [c for c, _ in heard] == judged


class QueuedSession(FakeSession):
    """A device that judges one candidate at a time, 30 ms each, in submission order; logs when each
    candidate was submitted and when its verdict came."""

    def __init__(self, pool: FakePool, problem) -> None:
        super().__init__(pool, problem)
        self.device = ThreadPoolExecutor(1)
        self.log: list[tuple[str, str]] = []

    def submit(self, path) -> Future:
        self.log.append(("submit", Path(path).stem))

        def judge() -> Verdict:
            import time

            time.sleep(0.03)
            v = self.pool.verdict(self.problem, path)
            self.log.append(("verdict", Path(path).stem))
            return v

        return self.device.submit(judge)


@pytest.mark.parametrize("overlap", [True, False])
def test_offline_rounds_overlap_so_the_judge_never_waits_for_a_round(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      overlap: bool):
    pool = fake_setup(monkeypatch)
    sessions: list[QueuedSession] = []
    pool.session = lambda problem, on_done=None, should_stop=None: sessions.append(QueuedSession(pool, problem)) \
        or sessions[-1]
    s = Search(search_params(rounds=3, ideas=2, impls=2, overlap_rounds=overlap), runs_dir=tmp_path)
    monkeypatch.setattr(s, "lookahead", lambda: 2)
    store = s.run()
    log = sessions[0].log
    rnd = lambda stem: int(stem.split("-")[0][1:])  # noqa: E731
    for r in (1, 2):
        last_verdict = max(i for i, (what, stem) in enumerate(log) if what == "verdict" and rnd(stem) == r)
        first_next = min(i for i, (what, stem) in enumerate(log) if what == "submit" and rnd(stem) == r + 1)
        assert (first_next < last_verdict) == overlap  # the next round was on its way before this one ended
    events = log_lines(store.dir)
    rounds = [e for e in events if e["type"] == "round"]
    assert [e["round"] for e in rounds] == [0, 1, 2, 3]  # closed in order, each once
    assert [e["candidates"] for e in rounds] == [2, 4, 4, 4]
    verdicts = {e["candidate"]: e for e in events if e["type"] == "verdict"}
    assert len(verdicts) == 14 and all(v["status"] == "correct" for v in verdicts.values())
    for e in rounds:  # each round's best is of that round or earlier, even when the next had verdicts in
        assert rnd(e["best"]) <= e["round"]
        assert e["best_ms"] == min(v["ms"] for c, v in verdicts.items() if rnd(c) <= e["round"])
