"""The judge on CUDA candidates (tests/candidates/cuda), on the GPU: honest kernels (tensor-core
fp16-input GEMM included) are judged correct, every known cheat is judged not correct with one
of the reason codes its docstring names, and a faulting or hanging kernel does not spoil the
next evaluation. Skipped without CUDA.
"""
from __future__ import annotations

import pytest
import torch

from candidate_catalog import Candidate, catalog

pytestmark = [pytest.mark.gpu, pytest.mark.slow,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CANDIDATES = catalog("cuda")
BY_NAME = {c.name: c for c in CANDIDATES}
DISRUPTIVE = {"illegal_address": 60.0, "hang_kernel": 20.0}  # name -> timeout_s
HONEST = [c for c in CANDIDATES if c.honest]
CHEATS = [c for c in CANDIDATES if not c.honest and c.name not in DISRUPTIVE]


def judge(c: Candidate, **kwargs):
    from workbench.judge import evaluate
    from workbench.problem import load_problem

    return evaluate(load_problem(c.problem_dir), c.path, target="cuda", **kwargs)


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
