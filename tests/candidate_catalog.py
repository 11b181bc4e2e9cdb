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
    "crash", "timeout", "oom", "build_error", "no_modelnew", "syntax_error", "no_own_kernel",
    "error",  # the candidate raised (numpy_fallback: torch's NumPy bridge is off in the worker)
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


def _first_doc_line(text: str) -> str:
    try:
        doc = ast.get_docstring(ast.parse(text), clean=False) or ""
    except SyntaxError:  # a candidate that does not parse on purpose: read its opening line as text
        m = re.match(r'\s*(?:r?"""|r?\'\'\')(.*)', text)
        doc = m[1].split('"""')[0] if m else ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def parse(path: Path) -> Candidate:
    first = _first_doc_line(path.read_text())
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


# The judge tests for both targets share these: one call of the judge and what each verdict must say.
def judge(c: Candidate, target: str, **kwargs):
    from workbench.judge import evaluate  # imported late: collection must not need the judge
    from workbench.problem import load_problem

    return evaluate(load_problem(c.problem_dir), c.path, target=target, **kwargs)


def assert_correct(v) -> None:
    assert v.status == "correct" and v.correct, v.reasons
    assert v.codes <= {"trivial_check_tightened"}, v.reasons
    assert v.timing is not None and v.timing["ms"] > 0


def assert_cheat_caught(v, cand: Candidate) -> None:
    assert v.status != "correct" and not v.correct, f"{cand.name} judged correct: {cand.what}"
    assert v.codes & cand.expect, f"expected one of {sorted(cand.expect)}, got {sorted(v.codes)}: {v.reasons}"


def check_cheat(cand: Candidate, target: str) -> None:
    # Unless the static scan is what the cheat expects, the runtime checks alone must catch it:
    # a scan of the source is easy to evade, so it may not be the only line of defence.
    scan = bool(cand.expect & {"forbidden_source", "syntax_error"})
    assert_cheat_caught(judge(cand, target, static_scan=scan), cand)


def check_disruptive(cand: Candidate, target: str, timeout_s: float, honest_after: Candidate) -> None:
    """A crashing or hanging candidate is caught, and the next evaluation is judged correct."""
    v = judge(cand, target, timeout_s=timeout_s)
    assert v.status != "correct" and not v.correct
    assert v.codes & cand.expect, f"expected one of {sorted(cand.expect)}, got {sorted(v.codes)}: {v.reasons}"
    after = judge(honest_after, target)
    assert after.correct, f"after {cand.name}: {after.reasons}"


def check_secret_thief(path: Path, target: str) -> None:
    """A relu_small candidate that computes relu only when it can reach a secret (a key, a file).
    In this process it can, so it computes relu (the control: the test can fail); judged, it must
    reach nothing, so its output is zeros and the verdict incorrect."""
    import importlib.util

    import torch

    from workbench import build
    from workbench.judge import evaluate

    spec = importlib.util.spec_from_file_location(f"thief_control_{path.stem}_{target}", path)
    module = importlib.util.module_from_spec(spec)
    with build.patched_load_inline():
        spec.loader.exec_module(module)
    x = torch.randn(1000, device=target)
    assert torch.equal(module.ModelNew()(x), torch.relu(x))  # the secret is reachable here
    v = evaluate(PROBLEMS_DIR / "relu_small", path, target=target, static_scan=False, timing=False)
    assert v.status != "correct" and v.codes & {"mismatch", "rel_error"}, v.reasons
