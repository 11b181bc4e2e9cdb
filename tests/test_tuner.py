"""The offline tuner: reading and rewriting marked tunables, and the moves it proposes.

Pure source manipulation: nothing is built or run here.
"""
from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from workbench.problem import load_problem
from workbench.proposers.proposal import Context, Idea
from workbench.proposers.tuner import Tuner, apply, source_hash, tunables

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


# -- Tuner ----------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def problem():
    return load_problem(PROBLEM_DIR)


def seed_source(name: str) -> str:
    return (PROBLEM_DIR / "seeds" / f"{name}.py").read_text()


def ctx_for(problem, best_sources: dict[str, str], tried: set[str], round_: int = 1) -> Context:
    best = [{"id": k, "source": s, "ms": 1.0 + i} for i, (k, s) in enumerate(best_sources.items())]
    return Context(problem, {}, round_, best, [], set(tried))


def all_seed_hashes(problem) -> set[str]:
    return {source_hash(p.read_text()) for p in problem.seeds()}


def test_untried_variants_come_first(problem):
    loop = seed_source("loop")
    ctx = ctx_for(problem, {"r0-loop": loop}, {source_hash(loop)})
    ideas = Tuner().ideas(ctx, 3)
    assert len(ideas) == 3
    assert ideas[0].data["kind"] == "variant" and Path(ideas[0].data["path"]).stem == "blocked"
    assert all(i.data["kind"] == "tune" for i in ideas[1:])
    assert Tuner().implement(ctx, ideas[0], None, 0).source == seed_source("blocked")
    # Once every seed was tried, no variant is proposed again.
    ctx = ctx_for(problem, {"r0-loop": loop}, all_seed_hashes(problem))
    assert all(i.data["kind"] == "tune" for i in Tuner().ideas(ctx, 10))


def test_ideas_never_propose_a_tried_source(problem):
    loop, blocked = seed_source("loop"), seed_source("blocked")
    t = tunables(loop)
    neighbours = {source_hash(apply(loop, {n: v})) for n, tn in t.items() for v in tn.options if v != tn.value}
    assert len(neighbours) == 4
    tried = all_seed_hashes(problem) | set(sorted(neighbours)[:2])
    ctx = ctx_for(problem, {"r0-loop": loop, "r0-blocked": blocked}, tried)
    tuner = Tuner()
    ideas = tuner.ideas(ctx, 100)
    # loop has 4 one-step moves (2 tried), blocked has 4: exactly the 6 untried remain
    assert len(ideas) == 6
    seen = set()
    for idea in ideas:
        seed = next(b for b in ctx.best if b["id"] == idea.data["seed"])
        src = tuner.implement(ctx, idea, seed, 0).source
        assert src is not None
        h = source_hash(src)
        assert h not in tried and h not in seen
        seen.add(h)
        for name, value in idea.data["assign"].items():  # only listed options, never the current value
            opts = tunables(seed["source"])[name]
            assert value in opts.options and value != opts.value


def test_ideas_only_listed_values(problem):
    src = '#define A 100  // tune: 16, 64\n#define B 3\nC = 7  # tune: 1, 7\n'
    ctx = ctx_for(problem, {"x": src}, all_seed_hashes(problem))
    ideas = Tuner().ideas(ctx, 100)
    assigned = sorted((n, v) for i in ideas for n, v in i.data["assign"].items())
    assert assigned == [("A", "16"), ("A", "64"), ("C", "1")]


def test_ideas_spread_over_parameters_before_repeating_one(problem):
    loop = seed_source("loop")
    ctx = ctx_for(problem, {"r0-loop": loop}, all_seed_hashes(problem))
    for seed in range(5):
        ideas = Tuner(seed).ideas(ctx, 2)
        assert {n for i in ideas for n in i.data["assign"]} == {"CHUNK", "UNROLL"}


def test_ideas_are_deterministic(problem):
    loop = seed_source("loop")
    ctx = ctx_for(problem, {"r0-loop": loop}, all_seed_hashes(problem))
    a = [i.text for i in Tuner(3).ideas(ctx, 4)]
    assert a == [i.text for i in Tuner(3).ideas(ctx, 4)]


def test_implement_further_index_gives_a_different_untried_source(problem):
    loop = seed_source("loop")
    ctx = ctx_for(problem, {"r0-loop": loop}, all_seed_hashes(problem))
    tuner = Tuner()
    for idea in tuner.ideas(ctx, 4):
        seed = ctx.best[0]
        first = tuner.implement(ctx, idea, seed, 0).source
        assert first is not None
        ctx.tried.add(source_hash(first))  # as the search does after each implementation
        for index in (1, 2):
            impl = tuner.implement(ctx, idea, seed, index)
            if impl.source is None:
                assert impl.error
                continue
            assert impl.source != first and source_hash(impl.source) not in ctx.tried
            for name, tn in tunables(impl.source).items():
                assert tn.value in tunables(loop)[name].options
            # one more step from the move: exactly one tunable differs from implementation 0
            changed = {n for n, tn in tunables(impl.source).items() if tn.value != tunables(first)[n].value}
            assert len(changed) == 1, changed
            ctx.tried.add(source_hash(impl.source))


def test_implement_index_gt0_when_nothing_is_left(problem):
    src = '#define A 1  // tune: 1, 2\n'
    ctx = ctx_for(problem, {"x": src}, all_seed_hashes(problem) | {source_hash(src)})
    tuner = Tuner()
    (idea,) = tuner.ideas(ctx, 5)
    first = tuner.implement(ctx, idea, ctx.best[0], 0).source
    ctx.tried.add(source_hash(first))
    impl = tuner.implement(ctx, idea, ctx.best[0], 1)
    assert impl.source is None and "no untried" in impl.error


def test_tune_move_without_its_seed_is_a_recorded_failure(problem):
    impl = Tuner().implement(ctx_for(problem, {}, set()), Idea("x", "tuner", {"kind": "tune", "assign": {"A": "1"}}), None, 0)
    assert impl.source is None and impl.error


def test_repair_is_refused(problem):
    impl = Tuner().repair(ctx_for(problem, {}, set()), "src", "incorrect", "log")
    assert impl.source is None and impl.error
