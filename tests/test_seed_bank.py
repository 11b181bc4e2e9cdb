"""The seed bank is well-formed: every seed passes the judge's static scan, says what it does,
and marks tunables the tuner can actually rewrite (integers or identifiers, current value listed).
Runs on the CPU; whether the CUDA seeds are correct and fast is checked on the GPU by the judge
(benchmarks/seeds.py), the CPU seeds by tests/test_cpu_seeds.py and notes/cpu-seeds.md."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from workbench.audit import scan_source
from workbench.problem import seed_target
from workbench.proposers.tuner import apply, tunables

ROOT = Path(__file__).resolve().parent.parent
SEEDS = sorted(ROOT.glob("problems/*/seeds/*.py"))
VALUE = re.compile(r"^[A-Za-z_0-9]+$")


def test_every_problem_has_a_seed():
    problems = sorted(p.parent for p in ROOT.glob("problems/*/reference.py"))
    assert problems and all(list((p / "seeds").glob("*.py")) for p in problems)


@pytest.mark.parametrize("path", SEEDS, ids=lambda p: f"{p.parent.parent.name}/{p.stem}")
def test_seed_is_well_formed(path: Path):
    src = path.read_text()
    assert scan_source(src) == []
    tree = ast.parse(src)
    assert ast.get_docstring(tree), "a seed starts with a docstring saying what it does"
    assert any(isinstance(n, ast.ClassDef) and n.name == "ModelNew" for n in tree.body)
    declared = [n for n in tree.body if isinstance(n, ast.Assign) and any(getattr(t, "id", "") == "TARGET" for t in n.targets)]
    if path.stem.startswith("cpu_"):  # our CPU seeds say so, and are C++ only
        assert declared and seed_target(path) == "cpu" and "cuda_sources" not in src
    else:
        assert seed_target(path) == "cuda"
    marks = tunables(src)
    assert marks, "a seed marks at least one tunable"
    for t in marks.values():
        assert all(VALUE.match(o) for o in t.options), f"{t.name}: options must be integers or identifiers: {t.options}"
        assert t.value in t.options, f"{t.name}: current value {t.value} is not among its options {t.options}"
        for o in t.options:  # the tuner's rewrite touches only that line's value
            changed = apply(src, {t.name: o})
            assert len(changed.splitlines()) == len(src.splitlines())
