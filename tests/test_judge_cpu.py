"""The judge on CPU candidates (tests/candidates/cpu): honest kernels are judged correct, every
known cheat is judged not correct with one of the reason codes its docstring names, and a
candidate that crashes, hangs or runs out of memory does not spoil the next evaluation.

Each candidate builds C++ with load_inline (~30 s on a 2-core box when not cached).
"""
from __future__ import annotations

import pytest

from candidate_catalog import Candidate, catalog

pytestmark = pytest.mark.slow

CANDIDATES = catalog("cpu")
BY_NAME = {c.name: c for c in CANDIDATES}
DISRUPTIVE = {"crash": 120.0, "hang": 90.0, "oom": 120.0}  # name -> timeout_s
HONEST = [c for c in CANDIDATES if c.honest]
CHEATS = [c for c in CANDIDATES if not c.honest and c.name not in DISRUPTIVE]


def judge(c: Candidate, **kwargs):
    from workbench.judge import evaluate  # imported late: collection must not need the judge
    from workbench.problem import load_problem

    return evaluate(load_problem(c.problem_dir), c.path, target="cpu", **kwargs)


def test_catalog_reads_docstrings():
    assert BY_NAME["zeros"].expect == {"rel_error", "mismatch"}
    assert BY_NAME["matmul_small_bf16"].honest and BY_NAME["matmul_small_bf16"].problem == "matmul_small"
    required = {"zeros", "constant", "return_input", "return_view", "mutate_input", "mutate_input_scribble",
                "partial_output", "subsample", "cache_by_pointer", "cache_by_content", "torch_fallback",
                "reference_fallback", "patch_timer", "deferred_thread", "lazy_subclass", "wrong_dtype",
                "broadcast_shape", "low_precision", "distribution_exploit", "precompute_at_import", "crash",
                "hang", "oom", "build_error", "no_modelnew", "gc_snoop", "harness_write"}
    assert required <= {c.name for c in CANDIDATES if not c.honest}
    assert {c.problem for c in HONEST} == {"softmax_small", "matmul_small", "scale_shift", "layernorm_small",
                                           "relu_small"}


@pytest.mark.parametrize("cand", HONEST, ids=lambda c: c.name)
def test_honest_candidate_is_correct(cand: Candidate):
    v = judge(cand)
    assert v.status == "correct" and v.correct, v.reasons
    assert v.codes <= {"trivial_check_tightened"}, v.reasons
    assert v.timing is not None and v.timing["ms"] > 0


@pytest.mark.parametrize("cand", CHEATS, ids=lambda c: c.name)
def test_cheat_is_caught(cand: Candidate):
    # Unless the static scan is what the cheat expects, the runtime checks alone must catch it:
    # a scan of the source is easy to evade, so it may not be the only line of defence.
    v = judge(cand, static_scan="forbidden_source" in cand.expect)
    assert v.status != "correct" and not v.correct, f"{cand.name} judged correct: {cand.what}"
    assert v.codes & cand.expect, f"expected one of {sorted(cand.expect)}, got {sorted(v.codes)}: {v.reasons}"


@pytest.mark.parametrize("name", sorted(DISRUPTIVE))
def test_disruptive_cheat_is_caught_and_judge_recovers(name: str):
    cand = BY_NAME[name]
    v = judge(cand, timeout_s=DISRUPTIVE[name])
    assert v.status != "correct" and not v.correct
    assert v.codes & cand.expect, f"expected one of {sorted(cand.expect)}, got {sorted(v.codes)}: {v.reasons}"
    after = judge(BY_NAME["relu_small"])
    assert after.correct, f"after {name}: {after.reasons}"
