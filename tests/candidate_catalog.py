"""Reads the test candidates' docstrings: which problem each targets and what the judge must say.

Every file in tests/candidates/<target>/ starts with one line
    HONEST <name> on <problem>: <what it does>. expect: correct
    CHEAT <name> on <problem>: <what it does>. expect: <code>, <code>, ...
where <name> is the file's stem. A cheat passes its test when the verdict is not correct and
carries at least one of the listed codes. A malformed line fails collection, not a test.
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

TESTS_DIR = Path(__file__).resolve().parent
CANDIDATES_DIR = TESTS_DIR / "candidates"
PROBLEMS_DIR = TESTS_DIR / "problems"

REASON_CODES = frozenset({
    "input_mutated", "output_aliases_input", "not_plain_tensor", "wrong_shape", "wrong_dtype",
    "wrong_device", "nonfinite", "mismatch", "rel_error", "library_kernel", "torch_compute",
    "other_stream", "threads", "tamper", "forbidden_source", "timing_mismatch", "stale_output",
    "crash", "timeout", "oom", "build_error", "no_modelnew",
})  # trivial_check_tightened is informational, never the reason a cheat fails

LINE = re.compile(r"^(?P<kind>HONEST|CHEAT) (?P<name>\w+) on (?P<problem>\w+): (?P<what>.+?)\s*expect: (?P<expect>[\w, ]+)$")


@dataclass(frozen=True)
class Candidate:
    path: Path
    honest: bool
    problem: str
    what: str
    expect: frozenset[str]  # empty for honest candidates

    @property
    def name(self) -> str:
        return self.path.stem

    @property
    def problem_dir(self) -> Path:
        return PROBLEMS_DIR / self.problem


def parse(path: Path) -> Candidate:
    doc = ast.get_docstring(ast.parse(path.read_text()), clean=False) or ""
    first = doc.strip().splitlines()[0] if doc.strip() else ""
    m = LINE.match(first)
    if not m:
        raise ValueError(f"{path}: first docstring line must read '<HONEST|CHEAT> <name> on <problem>: ... expect: ...', got {first!r}")
    if m["name"] != path.stem:
        raise ValueError(f"{path}: docstring names {m['name']!r}, file is {path.stem!r}")
    if not (PROBLEMS_DIR / m["problem"] / "reference.py").is_file():
        raise ValueError(f"{path}: no test problem {m['problem']!r}")
    codes = frozenset(c.strip() for c in m["expect"].split(",") if c.strip())
    honest = m["kind"] == "HONEST"
    if honest and codes != {"correct"}:
        raise ValueError(f"{path}: an honest candidate must expect 'correct', not {sorted(codes)}")
    if not honest and (not codes or codes - REASON_CODES):
        raise ValueError(f"{path}: unknown expected codes {sorted(codes - REASON_CODES) or '(none)'}")
    return Candidate(path=path, honest=honest, problem=m["problem"], what=m["what"],
                     expect=frozenset() if honest else codes)


def catalog(target: str) -> list[Candidate]:
    """All candidates for `target` ("cpu" or "cuda"), sorted by file name."""
    return [parse(p) for p in sorted((CANDIDATES_DIR / target).glob("*.py"))]
