"""EvalPool.session: candidates judged as they are submitted, builds ahead of judging, each
verdict on its future; evaluate_many on top of it. The builder and judge are stand-ins here
(their real versions are the judge's tests); what is tested is the streaming."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import workbench.pool as pool_mod
from workbench.judge import Verdict
from workbench.pool import EvalPool
from workbench.problem import load_problem

PROBLEM = load_problem(str(Path(__file__).resolve().parent / "problems" / "scale_rows"))


@pytest.fixture
def stand_ins(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    order: list[str] = []
    lock = threading.Lock()

    def prebuild(path: Path, timeout_s: float) -> dict:
        time.sleep(0.2)
        return {"builds": [{"name": path.stem, "seconds": 0.2, "cached": False}]}

    def evaluate(problem, path, **kw) -> Verdict:
        with lock:
            order.append(Path(path).stem)
        time.sleep(0.1)
        return Verdict(problem.name, str(path), "cpu", timing={"ms": 1.0},
                       builds=[{"name": "x", "seconds": 0.001, "cached": True}])

    monkeypatch.setattr(pool_mod, "prebuild", prebuild)
    monkeypatch.setattr(pool_mod, "evaluate", evaluate)
    return order


def test_a_session_judges_what_arrives_while_it_runs(tmp_path: Path, stand_ins: list[str]):
    pool = EvalPool("cpu", build_workers=2)
    done: list[str] = []
    with pool.session(PROBLEM, on_done=lambda p, v: done.append(p.stem)) as s:
        first = s.submit(tmp_path / "a.py")
        assert first.result(timeout=10).status == "correct"  # judged before anything else was submitted
        later = [s.submit(tmp_path / f"{n}.py") for n in "bcd"]
        s.wait()
        assert all(f.done() for f in later)
    assert stand_ins[0] == "a" and sorted(stand_ins) == ["a", "b", "c", "d"]
    assert sorted(done) == ["a", "b", "c", "d"]
    assert first.result().prebuilt == [{"name": "a", "seconds": 0.2, "cached": False}]  # the real build's record


def test_evaluate_many_still_judges_every_path(tmp_path: Path, stand_ins: list[str]):
    paths = [tmp_path / f"{n}.py" for n in "xyz"]
    results = EvalPool("cpu", build_workers=3).evaluate_many(PROBLEM, paths)
    assert set(results) == set(paths) and all(v.status == "correct" for v in results.values())


def test_a_failing_hook_reaches_the_waiter(tmp_path: Path, stand_ins: list[str]):
    def hook(path: Path, v: Verdict) -> None:
        raise RuntimeError("the caller's hook broke")

    with EvalPool("cpu").session(PROBLEM, on_done=hook) as s:
        fut = s.submit(tmp_path / "a.py")
        with pytest.raises(RuntimeError, match="hook broke"):
            fut.result(timeout=10)


def test_a_stop_leaves_candidates_unjudged(tmp_path: Path, stand_ins: list[str]):
    stop = threading.Event()
    with EvalPool("cpu").session(PROBLEM, should_stop=stop.is_set) as s:
        first = s.submit(tmp_path / "a.py")
        assert first.result(timeout=10) is not None
        stop.set()
        assert s.submit(tmp_path / "b.py").result(timeout=10) is None  # not judged, so nothing to record
    assert stand_ins == ["a"]
