"""The seed bank is well-formed: every seed passes the judge's static scan, says what it does,
and marks tunables the tuner can actually rewrite (integers or identifiers, current value listed).
Runs on the CPU; whether the seeds are correct and fast is checked on the GPU by the judge
(benchmarks/seeds.py)."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from workbench.audit import scan_source
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
    marks = tunables(src)
    assert marks, "a seed marks at least one tunable"
    for t in marks.values():
        assert all(VALUE.match(o) for o in t.options), f"{t.name}: options must be integers or identifiers: {t.options}"
        assert t.value in t.options, f"{t.name}: current value {t.value} is not among its options {t.options}"
        for o in t.options:  # the tuner's rewrite touches only that line's value
            changed = apply(src, {t.name: o})
            assert len(changed.splitlines()) == len(src.splitlines())
