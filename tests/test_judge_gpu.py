"""The judge on CUDA candidates (tests/candidates/cuda), on the GPU: honest kernels (tensor-core
fp16-input GEMM included) are judged correct, every known cheat is judged not correct with one
of the reason codes its docstring names, and a faulting or hanging kernel does not spoil the
next evaluation. Skipped without CUDA.
"""
from __future__ import annotations

import pytest
import torch

from candidate_catalog import Candidate, assert_correct, catalog, check_cheat, check_disruptive, judge

pytestmark = [pytest.mark.gpu, pytest.mark.slow,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]

CANDIDATES = catalog("cuda")
BY_NAME = {c.name: c for c in CANDIDATES}
DISRUPTIVE = {"illegal_address": 60.0, "hang_kernel": 20.0}  # name -> timeout_s
HONEST = [c for c in CANDIDATES if c.honest]
CHEATS = [c for c in CANDIDATES if not c.honest and c.name not in DISRUPTIVE]


@pytest.mark.parametrize("cand", HONEST, ids=lambda c: c.name)
def test_honest_candidate_is_correct(cand: Candidate):
    assert_correct(judge(cand, "cuda"))


@pytest.mark.parametrize("cand", CHEATS, ids=lambda c: c.name)
def test_cheat_is_caught(cand: Candidate):
    check_cheat(cand, "cuda")


@pytest.mark.parametrize("name", sorted(DISRUPTIVE))
def test_disruptive_cheat_is_caught_and_judge_recovers(name: str):
    check_disruptive(BY_NAME[name], "cuda", DISRUPTIVE[name], BY_NAME["relu_small"])


def test_native_getenv_finds_no_api_key_in_the_worker(monkeypatch: pytest.MonkeyPatch):
    """The CUDA form of the CPU test: C++ getenv of the keys decides whether the kernel computes relu."""
    from candidate_catalog import TESTS_DIR, check_secret_thief

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    monkeypatch.setenv("GEMINI_API_KEY", "gm-test-0123456789abcdef")
    check_secret_thief(TESTS_DIR / "data" / "getenv_api_key_cuda.py", "cuda")
