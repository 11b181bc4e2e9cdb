"""Builds are bounded: a compile bomb ends in a clear build-timeout verdict, soon, and the judge goes on."""
from __future__ import annotations

import time
from pathlib import Path

import pytest

from candidate_catalog import PROBLEMS_DIR

BOMB = '''
"""A macro that expands to 2**24 statements: the compiler would run for many minutes."""
import torch
import torch.nn as nn
from torch.utils.cpp_extension import load_inline

SRC = r"""
#define A(x) x x
#define B(x) A(A(A(A(x))))
#define C(x) B(B(B(B(x))))
#define D(x) C(C(C(x)))
torch::Tensor relu(torch::Tensor x) { volatile int s = 0; D(s++;) return x.clone(); }
"""
ext = load_inline("bomb", cpp_sources=[SRC], functions=["relu"])


class ModelNew(nn.Module):
    def forward(self, x):
        return ext.relu(x)
'''


@pytest.mark.slow
def test_compile_bomb_is_a_build_timeout(tmp_path: Path, monkeypatch):
    from workbench import build
    from workbench.judge import evaluate

    monkeypatch.setattr(build, "DEFAULT_CACHE", tmp_path / "cache")
    cand = tmp_path / "bomb.py"
    cand.write_text(BOMB)
    t0 = time.perf_counter()
    v = evaluate(PROBLEMS_DIR / "relu_small", cand, target="cpu", build_timeout_s=8)
    took = time.perf_counter() - t0
    assert v.status == "build_error", v.reasons
    assert any("timed out" in r for r in v.reasons), v.reasons
    assert took < 90, took
