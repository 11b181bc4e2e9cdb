"""The offline tuner: reading and rewriting marked tunables, the joint space, the Optuna-driven
proposals (real Optuna, small spaces, seeded), constraints learned from real compiler errors, and
the search's rounds with the tuner (a fake pool stands in for the judge: no kernel is built).
"""
from __future__ import annotations

import difflib
import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from workbench.problem import load_problem
from workbench.proposers.proposal import Context, Idea
from workbench.judge import Verdict
from workbench.proposers.tuner import (Constraint, Space, Tuner, apply, failed_asserts, learn_constraints,
                                       source_hash, tunables)

PROBLEM_DIR = Path(__file__).resolve().parent / "problems" / "scale_rows"

C_SRC = '''CPP = r"""
#define BLOCK 256  // tune: 128, 256, 512
#define WARPS 4 // tune: 2,4,8
#define FIXED 32
#define UNLISTED 7  // a plain comment, not a tune marker
__global__ void k() {}
"""
CUDA = r"""
#define BLOCK 256  // tune: 128, 256, 512
"""
ROWS_PER_BLOCK = 4  # tune: 1, 2, 4, 8
MODE = fast  # tune: fast, exact
OTHER = 3  # not tunable
'''


def changed_lines(a: str, b: str) -> list[str]:
    return [ln[2:] for ln in difflib.ndiff(a.splitlines(), b.splitlines()) if ln.startswith("- ")]


# -- tunables() / apply() ---------------------------------------------------------------------------

def test_tunables_reads_c_and_python_markers():
    t = tunables(C_SRC)
    assert set(t) == {"BLOCK", "WARPS", "ROWS_PER_BLOCK", "MODE"}
    assert t["BLOCK"].value == "256" and t["BLOCK"].options == ["128", "256", "512"]
    assert t["WARPS"].value == "4" and t["WARPS"].options == ["2", "4", "8"]
    assert t["ROWS_PER_BLOCK"].value == "4" and t["ROWS_PER_BLOCK"].options == ["1", "2", "4", "8"]
    assert t["MODE"].options == ["fast", "exact"]


def test_apply_changes_only_marked_lines():
    out = apply(C_SRC, {"BLOCK": "512", "ROWS_PER_BLOCK": "8", "FIXED": "64", "UNLISTED": "9", "OTHER": "5"})
    # Both definitions of BLOCK (cpp and cuda sources must agree) and the Python constant change ...
    assert out.count("#define BLOCK 512  // tune: 128, 256, 512") == 2
    assert "ROWS_PER_BLOCK = 8  # tune: 1, 2, 4, 8" in out
    # ... and nothing else does, unmarked defines and constants included, even when asked to.
    assert "#define FIXED 32\n" in out and "#define UNLISTED 7  // a plain" in out and "OTHER = 3  # not" in out
    removed = changed_lines(C_SRC, out)
    assert len(removed) == 3 and all("tune:" in ln for ln in removed), removed
    assert tunables(out)["BLOCK"].value == "512" and tunables(out)["ROWS_PER_BLOCK"].value == "8"
    assert apply(C_SRC, {}) == C_SRC


def test_seed_tunables_of_the_test_problem():
    loop = (PROBLEM_DIR / "seeds" / "loop.py").read_text()
    blocked = (PROBLEM_DIR / "seeds" / "blocked.py").read_text()
    assert {n: t.options for n, t in tunables(loop).items()} == {"CHUNK": ["16", "64", "256"], "UNROLL": ["1", "2", "4"]}
    assert {n: t.options for n, t in tunables(blocked).items()} == {"ROWS": ["1", "4", "16"], "COLS": ["128", "512", "2048"]}
    out = apply(blocked, {"ROWS": "16"})
    assert "#define COLS 512  // tune" in out and "#define ROWS 16  // tune" in out


# -- the joint space ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def problem():
    return load_problem(PROBLEM_DIR)


def seed_source(name: str) -> str:
    return (PROBLEM_DIR / "seeds" / f"{name}.py").read_text()


def seed_hashes(problem) -> set[str]:
    return {source_hash(p.read_text()) for p in problem.seeds()}


def test_space_counts_and_locates_every_point(problem):
    space = Space(problem.seeds())
    assert space.size == 18 and {v: space.variants[v].size for v in space.variants} == {"blocked": 9, "loop": 9}
    points = list(space.points())
    assert len(points) == len(set(points)) == 18
    sources = [space.source(p) for p in points]
    assert len({source_hash(s) for s in sources}) == 18  # distinct points, distinct sources
    assert all(space.locate(s) == p for s, p in zip(sources, points))
    assert space.locate(seed_source("loop")) == space.point("loop", {"CHUNK": "64", "UNROLL": "1"})
    # a value off the list, or an edit outside the marked lines, is not a point of the space
    assert space.locate(seed_source("loop").replace("#define CHUNK 64", "#define CHUNK 32")) is None
    assert space.locate(seed_source("loop").replace("2.0f + 1.0f;\n", "2.0f + 1.0f; \n", 1)) is None


def ctx_for(problem, best: dict[str, str], tried: set[str], round_: int = 1) -> Context:
    return Context(problem, {}, round_, [{"id": k, "source": s, "ms": 1.0 + i} for i, (k, s) in enumerate(best.items())],
                   [], set(tried))


def drive(tuner: Tuner, problem, rounds: int, k: int, m: int, ms=None, tried: set[str] | None = None) -> list[list[str]]:
    """The search's calls, round by round: ideas, then m implementations each, each verdict observed."""
    tried = set(seed_hashes(problem) if tried is None else tried)
    per_round = []
    for r in range(1, rounds + 1):
        ctx = ctx_for(problem, {}, tried, r)
        sources = []
        for j, idea in enumerate(tuner.ideas(ctx, k)):
            for i in range(m):
                impl = tuner.implement(ctx, idea, None, i)
                if impl.source is None:
                    assert impl.error
                    continue
                assert source_hash(impl.source) not in ctx.tried
                ctx.tried.add(source_hash(impl.source))
                sources.append(impl.source)
                value = ms(impl.source) if ms else 1.0 + len(tried) / 100
                tuner.observe(f"r{r}-i{j}-m{i}", impl.source, {"status": "correct", "ms": value})
        tried |= ctx.tried
        per_round.append(sources)
    return per_round


def test_ideas_are_untried_points_described_against_the_best(problem):
    loop = seed_source("loop")
    ctx = ctx_for(problem, {"r0-loop": loop}, seed_hashes(problem))
    tuner = Tuner(seed=1)
    ideas = tuner.ideas(ctx, 6)
    assert len(ideas) == 6
    space = tuner.space
    points = [space.point(i.data["variant"], i.data["assign"]) for i in ideas]
    assert len(set(points)) == 6 and not {source_hash(space.source(p)) for p in points} & ctx.tried
    for idea, p in zip(ideas, points):
        assert idea.data["seed"] == "r0-loop"
        if p.variant == "loop":  # what changes relative to the best (loop, CHUNK 64, UNROLL 1)
            moves = [f"{n} {old} -> {new}" for (n, old), (_, new) in zip((("CHUNK", "64"), ("UNROLL", "1")), p.values) if old != new]
            assert idea.text == "loop: " + ", ".join(moves)
        else:
            assert idea.text.startswith("blocked (switch from loop): ROWS ") and ", COLS " in idea.text
        assert tuner.implement(ctx, idea, None, 0).source == space.source(p)


def test_an_ideas_implementations_are_distinct_points_of_its_variant(problem):
    tuner = Tuner(seed=2)
    ctx = ctx_for(problem, {}, seed_hashes(problem))
    (idea,) = tuner.ideas(ctx, 1)
    got = []
    for i in range(4):
        src = tuner.implement(ctx, idea, None, i).source
        ctx.tried.add(source_hash(src))
        got.append(tuner.space.locate(src))
    assert len(set(got)) == 4 and {p.variant for p in got} == {idea.data["variant"]}


def test_proposals_are_deterministic_given_the_seed(problem):
    runs = [drive(Tuner(seed=s), problem, rounds=3, k=2, m=2) for s in (7, 7, 8)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_the_space_is_exhausted_exactly_then_nothing_is_proposed(problem):
    tuner = Tuner(seed=3)
    per_round = drive(tuner, problem, rounds=6, k=2, m=2)
    flat = [s for r in per_round for s in r]
    assert [len(r) for r in per_round] == [4, 4, 4, 4, 0, 0]  # 18 points, 2 of them the seeds
    assert len({source_hash(s) for s in flat}) == 16 and not {source_hash(s) for s in flat} & seed_hashes(problem)
    assert tuner.remaining() == 0
    ctx = ctx_for(problem, {}, seed_hashes(problem) | {source_hash(s) for s in flat}, 7)
    assert tuner.ideas(ctx, 3) == []


def test_tpe_beats_random_on_a_structured_space(tmp_path: Path):
    """1512 points (variant a: 6^4, b: 6^3), a bowl-shaped cost, 40 candidates: TPE finds the optimum
    for most seeds and does better on average than random sampling of the same space."""
    shutil.copy(PROBLEM_DIR / "reference.py", tmp_path / "reference.py")
    (tmp_path / "seeds").mkdir()
    for variant, names in (("a", "PQRS"), ("b", "PQR")):
        (tmp_path / "seeds" / f"{variant}.py").write_text("".join(f"#define {n} 1  // tune: 1, 2, 3, 4, 5, 6\n" for n in names))
    problem = load_problem(tmp_path)
    space = Space(problem.seeds())
    assert space.size == 1512
    centre = {"P": 4, "Q": 2, "R": 5, "S": 3}

    def ms(src: str) -> float:
        p = space.locate(src)
        return (0.5 if p.variant == "a" else 0.0) + 1 + sum((int(v) - centre[n]) ** 2 for n, v in p.assign.items()) / 10

    best = min(ms(space.source(p)) for p in space.points())
    found = {kind: [min(ms(s) for r in drive(Tuner(seed, budget=40, sampler=kind), problem, 5, 4, 2, ms) for s in r)
                    for seed in range(4)] for kind in ("tpe", "random")}
    assert sum(f == best for f in found["tpe"]) >= 2, found
    assert sum(found["tpe"]) < sum(found["random"]), found


# -- verdicts fed back ---------------------------------------------------------------------------------

def test_verdicts_become_trials(problem):
    from optuna.trial import TrialState

    tuner = Tuner(seed=0)
    ctx = ctx_for(problem, {}, seed_hashes(problem))
    ideas = tuner.ideas(ctx, 3)
    srcs = [tuner.implement(ctx, i, None, 0).source for i in ideas]
    tuner.observe("a", srcs[0], {"status": "correct", "ms": 2.5, "stage": "full"})
    tuner.observe("b", srcs[1], {"status": "correct", "ms": 3.5, "stage": "screen"})  # screened out: its short timing
    tuner.observe("c", srcs[2], {"status": "incorrect", "ms": None})
    tuner.observe("c", srcs[2], {"status": "correct", "ms": 0.1})  # a second report of one candidate changes nothing
    tuner.observe("d", seed_source("loop"), {"status": "correct", "ms": 4.0})  # a seed the tuner did not ask for
    tuner.observe("e", "not a kernel of this space", {"status": "correct", "ms": 0.01})
    trials = [t for t in tuner.study.trials if not t.user_attrs.get("redraw")]
    by_cand = {t.user_attrs["candidate"]: t for t in trials}
    assert by_cand["a"].state == TrialState.COMPLETE and by_cand["a"].value == 2.5
    assert by_cand["b"].state == TrialState.COMPLETE and by_cand["b"].value == 3.5 and by_cand["b"].user_attrs["stage"] == "screen"
    assert by_cand["c"].state == TrialState.PRUNED
    assert by_cand["d"].state == TrialState.COMPLETE and by_cand["d"].params["variant"] == "loop"
    assert len(trials) == 4
    assert tuner.study.best_value == 2.5


def test_a_resumed_search_replays_its_verdicts_before_planning(problem):
    tuner = Tuner(seed=0)  # observe() before the first plan (the search replaying its log) is kept, not lost
    tuner.observe("r0-loop", seed_source("loop"), {"status": "correct", "ms": 4.0})
    tuner.ideas(ctx_for(problem, {}, seed_hashes(problem)), 1)
    assert [t.value for t in tuner.study.trials if t.user_attrs.get("candidate") == "r0-loop"] == [4.0]


def test_promote_by_successive_halving_only_when_asked(problem):
    """pruner="sha": a screened candidate goes on only when its screen time is among the best so far."""
    screen = [1.0, 5.0, 0.5, 6.0, 7.0, 0.4, 8.0, 9.0]
    answers = {}
    for pruner in (None, "sha"):
        tuner = Tuner(seed=0, pruner=pruner)
        ctx = ctx_for(problem, {}, seed_hashes(problem))
        answers[pruner] = []
        for n, (idea, ms) in enumerate(zip(tuner.ideas(ctx, len(screen)), screen)):
            src = tuner.implement(ctx, idea, None, 0).source
            answers[pruner].append(tuner.promote(src, ms))
            tuner.observe(f"c{n}", src, {"status": "correct", "ms": ms})
    assert answers[None] == [True] * len(screen)
    assert answers["sha"][:3] == [True, True, True]  # the first rung promotes while it has few peers
    assert answers["sha"][5] is True and not any(answers["sha"][i] for i in (3, 4, 6, 7))  # 0.4 on, the slow ones off


# -- constraints learned from build errors ----------------------------------------------------------------

ASSERT_CPP = r"""
#define THREADS 128  // tune: 64, 128, 256, 384
#define PF 2  // tune: 1, 2, 3
#define MODE 0  // tune: 0, 1
#define CAP4 1024
#define SLOTS (CAP4 / THREADS)
static_assert(CAP4 % THREADS == 0, "THREADS must divide CAP4");
static_assert(SLOTS % PF == 0, "the prefetch depth must divide the slots");
#if MODE > 0 && PF > 2
#error "MODE 1 keeps at most two tiles in flight"
#endif
"""
# nvcc 13.0's report of a failed static_assert (its format; gcc's is checked with the real compiler below)
NVCC_LOG = '''sa.cu(5): error: static assertion failed with "THREADS must divide CAP4"
  static_assert(1024 % 384 == 0, "THREADS must divide CAP4");
  ^

1 error detected in the compilation of "sa.cu".'''


@pytest.fixture()
def assert_problem(tmp_path: Path):
    shutil.copy(PROBLEM_DIR / "reference.py", tmp_path / "reference.py")
    (tmp_path / "seeds").mkdir()
    (tmp_path / "seeds" / "tiles.py").write_text(f'CPP = r"""{ASSERT_CPP}"""\n')
    return load_problem(tmp_path)


def gcc_log(source: str) -> str:
    if shutil.which("g++") is None:
        pytest.skip("no g++ to produce a real build log")
    cpp = source.split('r"""', 1)[1].rsplit('"""', 1)[0]
    out = subprocess.run(["g++", "-std=c++17", "-fsyntax-only", "-x", "c++", "-"], input=cpp, text=True, capture_output=True)
    assert out.returncode != 0
    return out.stderr


def test_failed_asserts_reads_nvcc_and_gcc_logs(assert_problem):
    space = Space(assert_problem.seeds())
    assert failed_asserts(NVCC_LOG) == ["THREADS must divide CAP4"]
    src = space.source(space.point("tiles", {"THREADS": "384", "PF": "3", "MODE": "1"}))
    assert failed_asserts(gcc_log(src)) == ["THREADS must divide CAP4", "the prefetch depth must divide the slots",
                                           "MODE 1 keeps at most two tiles in flight"]


def test_constraints_name_the_values_the_failing_condition_depends_on(assert_problem):
    space = Space(assert_problem.seeds())
    p = space.point("tiles", {"THREADS": "384", "PF": "3", "MODE": "1"})
    got = learn_constraints(p, space.source(p), gcc_log(space.source(p)))
    assert [c.values for c in got] == [(("THREADS", "384"),),  # through nothing: THREADS itself
                                       (("THREADS", "384"), ("PF", "3")),  # SLOTS -> CAP4 / THREADS
                                       (("PF", "3"), ("MODE", "1"))]  # the #if around the #error
    # an assert whose text is not in the source: the tunables its message names; none named: the exact point
    assert learn_constraints(p, "", 'static assertion failed with "PF too deep"')[0].values == (("PF", "3"),)
    assert learn_constraints(p, "", 'static assertion failed with "too deep"')[0].values == p.values
    assert learn_constraints(p, space.source(p), "error: identifier undefined") == []  # not an assert: no rule


def test_a_static_assert_failure_rules_out_every_point_sharing_its_values(assert_problem):
    tuner = Tuner(seed=0)
    ctx = ctx_for(assert_problem, {}, set())
    space = Space(assert_problem.seeds())
    assert space.size == 24
    bad = space.point("tiles", {"THREADS": "384", "PF": "1", "MODE": "0"})
    tuner.ideas(ctx, 0)  # the study exists
    tuner.observe("x", space.source(bad), {"status": "build_error", "ms": None, "build_log": gcc_log(space.source(bad))})
    assert tuner.constraints == [Constraint("tiles", (("THREADS", "384"),), "THREADS must divide CAP4")]
    assert tuner.remaining() == 24 - 6  # every THREADS=384 point, exactly
    seen = []
    for r in range(1, 10):
        ctx = ctx_for(assert_problem, {}, ctx.tried, r)
        for idea in tuner.ideas(ctx, 2):
            src = tuner.implement(ctx, idea, None, 0).source
            ctx.tried.add(source_hash(src))
            seen.append(space.locate(src))
            log = gcc_log(src) if failed_asserts_expected(seen[-1]) else ""
            rec = {"status": "build_error", "ms": None, "build_log": log} if log else {"status": "correct", "ms": 1.0}
            tuner.observe(f"r{r}-{len(seen)}", src, rec)
    assert all(p.assign["THREADS"] != "384" for p in seen)
    # THREADS 256 with PF 3 and MODE 1 with PF 3 failed once each, then their partners were never proposed
    assert sum(p.assign["THREADS"] == "256" and p.assign["PF"] == "3" for p in seen) <= 1
    assert sum(p.assign["MODE"] == "1" and p.assign["PF"] == "3" for p in seen) <= 2
    assert tuner.remaining() == 0 and len(seen) == len(set(seen)) < 18


def failed_asserts_expected(p) -> bool:
    threads, pf, mode = int(p.assign["THREADS"]), int(p.assign["PF"]), int(p.assign["MODE"])
    return 1024 % threads != 0 or (1024 // threads) % pf != 0 or (mode > 0 and pf > 2)


# -- the search's rounds with the tuner ------------------------------------------------------------------

class FakePool:
    """Stands in for EvalPool: every candidate 'correct', each judged one faster than the last."""

    def __init__(self) -> None:
        self.eval_kwargs: dict[str, Any] = {}
        self.judged: list[Path] = []

    def evaluate_many(self, problem, paths, on_done=None, should_stop=None):
        for path in paths:
            self.judged.append(Path(path))
            if on_done:
                on_done(path, Verdict(problem.name, str(path), "cpu", timing={"ms": 100.0 - len(self.judged)}))


def search_with_tuner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pool: FakePool, run_id: str = "t", **kw: Any):
    """A real Search on the test problem, its verdicts fed to the tuner (the observe() call the search makes)."""
    import workbench.search as search

    monkeypatch.setattr(search, "EvalPool", lambda *a, **k: pool)
    monkeypatch.setattr(search, "measure_facts", lambda target: {"device": "fake"})
    monkeypatch.setattr(search, "time_reference", lambda problem, target, compile: {"eager_ms": 10.0})
    params = dict(problem=str(PROBLEM_DIR), models=["tuner"], rounds=5, ideas=2, impls=1, seeds=1, target="cpu",
                  compile_baseline=False, trials=2, samples=30)
    s = search.Search(search.SearchParams(**{**params, **kw}), run_id=run_id, runs_dir=tmp_path)
    tuner = s.proposers["tuner"]

    def feed(ev: dict[str, Any]) -> None:
        if ev["type"] == "verdict":
            tuner.observe(ev["candidate"], s.store.candidate_path(ev["candidate"]).read_text(), ev)

    for v in s.verdicts().values():  # a resumed run: its log first
        feed(v)
    s.on_event = feed
    return s


def round_counts(store) -> dict[int, int]:
    events = [json.loads(ln) for ln in (store.dir / "events.jsonl").read_text().splitlines()]
    cands = [e for e in events if e["type"] == "candidate" and not e.get("failed")]
    assert len({c["hash"] for c in cands}) == len(cands)  # never a source twice
    return {r: sum(c["round"] == r for c in cands) for r in range(0, 6)}


def test_no_round_idles_while_untried_points_remain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    pool = FakePool()  # 5 rounds x K=2 x M=1 = 10 candidates, 16 untried points: every round full
    store = search_with_tuner(tmp_path, monkeypatch, pool).run()
    assert round_counts(store) == {0: 2, 1: 2, 2: 2, 3: 2, 4: 2, 5: 2}
    # K=2 x M=2: 20 asked, 16 untried: four full rounds, then nothing is left to propose
    store = search_with_tuner(tmp_path, monkeypatch, FakePool(), run_id="t2", impls=2).run()
    assert round_counts(store) == {0: 2, 1: 4, 2: 4, 3: 4, 4: 4, 5: 0}


def test_the_tuner_works_before_the_search_calls_observe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import workbench.search as search

    pool = FakePool()  # no observe(): the tuner learns from ctx (tried sources, the best kernels)
    monkeypatch.setattr(search, "EvalPool", lambda *a, **k: pool)
    monkeypatch.setattr(search, "measure_facts", lambda target: {"device": "fake"})
    monkeypatch.setattr(search, "time_reference", lambda problem, target, compile: {"eager_ms": 10.0})
    store = search.run_search(search.SearchParams(problem=str(PROBLEM_DIR), rounds=5, ideas=2, impls=1, seeds=1,
                                                  target="cpu", compile_baseline=False), run_id="plain", runs_dir=tmp_path)
    assert round_counts(store) == {0: 2, 1: 2, 2: 2, 3: 2, 4: 2, 5: 2}


class Killed(BaseException):
    pass


def test_a_resumed_search_does_not_repropose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    class DyingPool(FakePool):
        def evaluate_many(self, problem, paths, on_done=None, should_stop=None):
            for path in paths:
                if len(self.judged) == 7:
                    raise Killed
                super().evaluate_many(problem, [path], on_done, should_stop)

    dying = DyingPool()
    with pytest.raises(Killed):
        search_with_tuner(tmp_path, monkeypatch, dying, run_id="r", impls=2).run()
    first = {source_hash(p.read_text()) for p in dying.judged}
    pool = FakePool()
    store = search_with_tuner(tmp_path, monkeypatch, pool, run_id="r", impls=2).run()
    second = [source_hash(p.read_text()) for p in pool.judged]
    assert len(second) == len(set(second)) and not first & set(second)
    assert len(first) + len(second) == 18  # the whole space, each point judged once across both processes
    assert round_counts(store)[5] == 0


def test_repair_is_refused(problem):
    impl = Tuner().repair(ctx_for(problem, {}, set()), "src", "incorrect", "log")
    assert impl.source is None and impl.error


def test_an_idea_not_of_this_space_is_a_recorded_failure(problem):
    impl = Tuner().implement(ctx_for(problem, {}, set()), Idea("x", "tuner", {"kind": "tune", "assign": {"A": "1"}}), None, 0)
    assert impl.source is None and impl.error


def test_the_benchmarks_offline_replay_reaches_the_best_of_a_small_space(problem):
    """benchmarks/tuner_vs_sweep.py replays the tuner against a swept table: with 16 open points and
    make run's 40 candidates it must find the table's best (and must skip the point that fails to build)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tuner_vs_sweep", Path(__file__).resolve().parent.parent /
                                                  "benchmarks" / "tuner_vs_sweep.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    space = Space(problem.seeds())
    table = {p: {"status": "correct", "ms": 1.0 + (i * 7 % 18) / 10} for i, p in enumerate(space.points())}
    broken = min(table, key=lambda p: table[p]["ms"])  # the fastest-looking point does not build
    table[broken] = {"status": "build_error", "ms": None, "build_log": ""}
    best = min(r["ms"] for r in table.values() if r["ms"])
    assert bench.replay(problem, space, table, budget=40, seeds=3) == [best, best, best]


def test_the_benchmarks_sweep_judges_the_tuners_point_in_full_then_screens_the_rest(problem, tmp_path, monkeypatch):
    """benchmarks/tuner_vs_sweep.py's sweep: the tuner's point alone and unscreened first (the ratio
    needs its full time), then every other point screened against 1.25x the best full time so far."""
    import importlib.util

    import workbench.pool
    import workbench.problem

    spec = importlib.util.spec_from_file_location("tuner_vs_sweep", Path(__file__).resolve().parent.parent /
                                                  "benchmarks" / "tuner_vs_sweep.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    monkeypatch.setattr(workbench.problem, "REPO_ROOT", tmp_path)  # where the sweep writes its point files
    space = Space(problem.seeds())
    points = list(space.points())
    ms = {source_hash(space.source(p)): 1.0 + i / 10 for i, p in enumerate(points)}  # later points slower
    must = points[-1]  # the slowest point: it would be screened if it were not judged first
    batches = []

    class FakePool:  # the judge's screening rule, on made-up times: no kernel is built
        def __init__(self, target: str, **kwargs: Any):
            self.screen = None

        def evaluate_many(self, problem, paths, on_done, should_stop):
            batches.append(([space.locate(p.read_text()) for p in paths], self.screen is not None))
            for path in paths:
                t, limit = ms[source_hash(path.read_text())], self.screen() if self.screen else None
                screened = limit is not None and t > limit
                on_done(path, Verdict(problem.name, str(path), "cpu", status="screened" if screened else "correct",
                                      timing={"ms": t}, stage="screen" if screened else "full"))

    monkeypatch.setattr(workbench.pool, "EvalPool", FakePool)
    rows = bench.sweep(problem, space, points, "cpu", {}, {}, 1, 1, tmp_path / "sweep.jsonl", None, True, must)
    assert batches[0] == ([must], False) and batches[1][1] is True and must not in batches[1][0]
    by_point = dict(zip(points, rows))
    assert by_point[must]["status"] == "correct" and by_point[must]["stage"] == "full"
    # after 1.0 ms is judged in full, anything above 1.25 ms stops at the screen
    assert {p for p, r in by_point.items() if r["status"] == "screened"} == \
        {p for p in points if p != must and ms[source_hash(space.source(p))] > 1.25 + 1e-9}
    assert len(points) > 4  # the space is big enough for the rule to screen something


def test_the_benchmarks_bench_sweep_times_every_point_and_resumes(tmp_path, monkeypatch):
    """benchmarks/tuner_vs_sweep.py --bench: every point of the space gets a row from
    benchmarks/bench_points.py (correct with a time, or incorrect against the reference), rows go to
    the cache as they are made, and a second run benches nothing again."""
    import importlib.util
    import shutil

    import workbench.problem

    root = Path(__file__).resolve().parent.parent
    spec = importlib.util.spec_from_file_location("tuner_vs_sweep", root / "benchmarks" / "tuner_vs_sweep.py")
    tvs = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tvs)
    pdir = tmp_path / "scale_py"
    (pdir / "seeds").mkdir(parents=True)
    shutil.copy(PROBLEM_DIR / "reference.py", pdir / "reference.py")
    (pdir / "seeds" / "plain.py").write_text(
        "import torch\nimport torch.nn as nn\n\n"
        "FACTOR = 2.0  # tune: 2.0, 3.0\n"
        "REPEAT = 1  # tune: 1, 2\n\n\n"
        "class ModelNew(nn.Module):\n"
        "    def forward(self, x):\n"
        "        for _ in range(REPEAT):\n"
        "            x = x * 1.0\n"
        "        return x * FACTOR + 1.0\n")
    monkeypatch.setattr(workbench.problem, "REPO_ROOT", tmp_path)  # where the point files are written
    problem = load_problem(pdir / "reference.py", target="cpu")
    space = Space(problem.seeds())
    points = list(space.points())
    rows = tvs.bench_sweep(problem, space, points, "cpu", tmp_path / "bench.jsonl", None)
    by_point = {tvs.point_text(p): r for p, r in zip(points, rows)}
    assert len(by_point) == 4
    for text, row in by_point.items():
        if "FACTOR=3.0" in text:  # the wrong answer is caught at the judge's tolerance
            assert row["status"] == "incorrect" and row["ms"] is None and "mismatch" in row["reasons"][0]
        else:
            assert row["status"] == "correct" and row["ms"] > 0
    import benchmarks.bench_points as bp

    monkeypatch.setattr(bp, "bench", lambda *a, **k: pytest.fail("a resumed bench timed a point again"))
    again = tvs.bench_sweep(problem, space, points, "cpu", tmp_path / "bench.jsonl", None)
    assert [r["status"] for r in again] == [r["status"] for r in rows]
