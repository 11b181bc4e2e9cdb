"""KernelBench at scale on the CPU: fast_p on hand-made numbers, finding and matching files by
KernelBench's naming, per-problem messages (missing import, too large), `batch --suite` resuming
without re-measuring, and `eval --suite` judging honest, wrong, cheating and partial-replacement
C++ candidates in the runs layout (tests/kernelbench_mini/runs/demo) under both policies.
"""
from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from workbench import suite
from workbench.fastp import fast_p, figures, geomean_speedup

REPO = Path(__file__).resolve().parent.parent
MINI = REPO / "tests" / "kernelbench_mini"
RUNS = MINI / "runs"


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "workbench", *args], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


# -- fast_p -----------------------------------------------------------------------------------------------
def test_fast_p_counts_correct_and_faster_over_all_entries():
    correct = [True, True, True, False, True]
    speedups = [0.5, 1.2, 2.5, 9.0, None]  # the incorrect 9x and the correct one without a baseline never count
    assert fast_p(correct, speedups, 0.0) == pytest.approx(3 / 5)
    assert fast_p(correct, speedups, 1.0) == pytest.approx(2 / 5)
    assert fast_p(correct, speedups, 1.5) == pytest.approx(1 / 5)
    assert fast_p(correct, speedups, 2.5) == 0.0  # strictly greater than p, as KernelBench
    assert fast_p([], [], 1.0) is None
    with pytest.raises(ValueError):
        fast_p([True], [], 1.0)


def test_geomean_is_over_correct_entries_only():
    assert geomean_speedup([True, True, False], [2.0, 8.0, 100.0]) == pytest.approx(4.0)
    assert geomean_speedup([False], [3.0]) is None
    f = figures([{"correct": True, "speedup_eager": 2.0, "speedup_compile": 0.5},
                 {"correct": False, "speedup_eager": None, "speedup_compile": None}])
    assert f["n"] == 2 and f["correct"] == 1 and f["correct_rate"] == 0.5
    assert f["eager"]["fast_p"]["1.0"] == 0.5 and f["compile"]["fast_p"]["1.0"] == 0.0
    assert f["compile"]["fast_p"]["0.0"] == 0.5 and math.isclose(f["compile"]["geomean"], 0.5)
    unmeasured = figures([{"correct": True, "speedup_eager": 2.0, "speedup_compile": None}])
    assert unmeasured["compile"]["fast_p"]["1.0"] is None and unmeasured["eager"]["fast_p"]["1.0"] == 1.0


def test_degenerate_problems_are_counted_apart_per_level():
    rows = [{"level_label": "level1", "correct": True, "speedup_eager": 3.0, "speedup_compile": 1.0},
            {"level_label": "level1", "correct": True, "speedup_eager": 50.0, "speedup_compile": 50.0, "degenerate": True},
            {"level_label": "level2", "correct": False, "speedup_eager": None, "speedup_compile": None}]
    f = suite.figures_by_level(rows)
    assert f["level1"]["n"] == 1 and f["level1"]["degenerate"] == 1
    assert f["level1"]["eager"]["fast_p"]["2.0"] == 1.0 and f["level2"]["eager"]["fast_p"]["0.0"] == 0.0
    assert f["all"]["n"] == 2 and f["all"]["degenerate"] == 1 and f["all"]["eager"]["fast_p"]["2.0"] == 0.5
    table = suite.fastp_table({"partial": f})
    assert "| partial | all | 2 | 1 | 1 |" in table


# -- finding and matching ---------------------------------------------------------------------------------
def test_discover_finds_references_by_level_and_number_only_and_limit():
    entries = suite.discover(MINI)
    assert [e.rel for e in entries] == ["level1/1_ReLU_small.py", "level1/2_Sum_rows_small.py",
                                       "level2/1_Linear_ReLU_small.py", "level3/1_Rearrange_einops.py",
                                       "level3/2_Huge_linear.py"]  # the runs/ candidates are not references
    assert [(e.level, e.number) for e in entries][:3] == [(1, 1), (1, 2), (2, 1)]
    assert [e.rel for e in suite.discover(MINI, only=["level1/*"], limit=1)] == ["level1/1_ReLU_small.py"]
    assert [e.rel for e in suite.discover(MINI, only=["Huge"])] == ["level3/2_Huge_linear.py"]
    with pytest.raises(FileNotFoundError):
        suite.discover(MINI / "nope")


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


REF = "import torch\nclass Model(torch.nn.Module):\n    pass\ndef get_inputs():\n    return []\n"
CAND = "import torch\nclass ModelNew(torch.nn.Module):\n    pass\n"


def test_every_documented_layout_matches_and_the_rest_is_listed(tmp_path: Path):
    refs_dir, k = tmp_path / "refs", tmp_path / "kernels"
    for rel in ("level1/19_ReLU.py", "level2/19_ReLU.py", "level1/23_Softmax.py", "few_shot/model_ex_add.py",
                "Conv2D/ref.py", "LayerNorm2/ref.py"):
        _write(refs_dir / rel, REF)
    _write(tmp_path / "both" / "Softmax" / "ref.py", REF)  # good-kernels: ref.py and src.py side by side
    both_src = _write(tmp_path / "both" / "Softmax" / "src.py", CAND)
    for rel in ("run1/level_1_problem_19_sample_0_kernel.py", "run1/level_2_problem_19_sample_3_kernel.py",
                "level1/23_Softmax.py", "model_new_ex_add.py", "Conv2D/src.py", "level1/19_ReLU/sample_0.py",
                "19_ReLU.py", "level_3_problem_1_sample_0_kernel.py", "mystery.py"):
        _write(k / rel, CAND)
    _write(k / "not_a_candidate.py", "x = 1\n")
    refs = suite.discover(refs_dir)
    got = {m.rel: (m.reference.rel if m.reference else None, m.rule) for m in suite.match_kernels(refs, k)}
    assert got == {
        "run1/level_1_problem_19_sample_0_kernel.py": ("level1/19_ReLU.py", "runs"),
        "run1/level_2_problem_19_sample_3_kernel.py": ("level2/19_ReLU.py", "runs"),
        "level1/23_Softmax.py": ("level1/23_Softmax.py", "same_name"),
        "model_new_ex_add.py": ("few_shot/model_ex_add.py", "few_shot_pair"),
        "Conv2D/src.py": ("Conv2D/ref.py", "problem_dir"),
        "level1/19_ReLU/sample_0.py": ("level1/19_ReLU.py", "problem_dir"),
        "19_ReLU.py": (None, "unmatched: 2 references are named 19_ReLU.py"),  # no level to tell them apart
        "level_3_problem_1_sample_0_kernel.py": (None, "unmatched: no level 3 problem 1 among the references"),
        "mystery.py": (None, "unmatched: no reference by any accepted naming"),
    }
    one = suite.match_kernels(suite.discover(tmp_path / "both"), tmp_path / "both")
    assert [(m.candidate, m.reference.rel, m.rule) for m in one] == [(both_src, "Softmax/ref.py", "problem_dir")]


# -- per-problem messages -----------------------------------------------------------------------------------
def test_missing_optional_import_is_a_message_not_a_crash(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "einops", None)  # not importable, even where einops is installed
    entry = next(e for e in suite.discover(MINI) if "einops" in e.rel)
    problem, status = suite.load_entry(entry)
    assert problem is None and status["status"] == "missing_import"
    assert "'einops'" in status["message"] and "pip install einops" in status["message"]


def test_too_large_problem_is_found_on_the_meta_device_before_it_allocates():
    entry = next(e for e in suite.discover(MINI) if "Huge" in e.rel)
    problem, status = suite.load_entry(entry)
    assert status["status"] == "ok"
    check = suite.size_check(problem, "cpu")
    assert check["status"] == "too_large" and check["footprint"]["params"] == (1 << 36) * 4
    assert "256.0 GiB of parameters" in check["message"]
    small = suite.size_check(suite.load_entry(suite.discover(MINI)[0])[0], "cpu")
    assert small["status"] == "ok" and 0 < small["need_bytes"] < small["free_bytes"]


def test_policy_resolution():
    problem = suite.load_entry(suite.discover(MINI)[0])[0]
    assert suite.policy_for(problem, None) == suite.SUITE_DEFAULT_POLICY == "partial"
    assert suite.policy_for(problem, "strict") == "strict"
    problem.module.POLICY = "strict"  # a file's own POLICY beats the suite default, --policy beats both
    assert suite.policy_for(problem, None) == "strict" and suite.policy_for(problem, "partial") == "partial"
    from workbench.problem import load_problem

    ours = load_problem("softmax")  # the repo's own problems/ are judged strict unless told otherwise
    assert suite.policy_for(ours, None) == "strict"


# -- batch --suite ----------------------------------------------------------------------------------------
@pytest.mark.slow  # three runs of the CLI, one baseline measured (~35 s on 2 cores)
def test_batch_suite_reports_every_problem_and_resumes_without_remeasuring(tmp_path: Path):
    args = ("batch", "--suite", str(MINI), "--only", "level1/1_*", "--only", "level3", "--target", "cpu",
            "--no-compile", "--suites-dir", str(tmp_path), "--suite-id", "mini")
    p = cli(*args)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "measured   1 baselines, 0 searches this time" in p.stdout
    summary = json.loads((tmp_path / "mini" / "summary.json").read_text())
    by = {r["rel"]: r for r in summary["problems"]}
    assert set(by) == {"level1/1_ReLU_small.py", "level3/1_Rearrange_einops.py", "level3/2_Huge_linear.py"}
    assert by["level1/1_ReLU_small.py"]["eager_ms"] > 0
    assert by["level1/1_ReLU_small.py"]["note"] == "no seeds and no model: baselines only"
    assert by["level3/2_Huge_linear.py"]["status"] == "too_large"
    assert by["level3/1_Rearrange_einops.py"]["status"] in ("missing_import", "ok")  # ok only where einops is installed
    assert "no fast_p" in p.stdout and "| level1/1_ReLU_small.py | level1 |" in p.stdout
    events = (tmp_path / "mini" / "events.jsonl").read_text().splitlines()
    again = cli(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "measured   0 baselines, 0 searches this time" in again.stdout
    assert (tmp_path / "mini" / "events.jsonl").read_text().splitlines() == events  # nothing recorded twice
    other = cli(*args[:-2], "--suite-id", "mini", "--limit", "1")  # other parameters: refused, not mixed in
    assert other.returncode != 0 and "other parameters" in other.stderr + other.stdout


def test_batch_suite_on_an_empty_directory_fails(tmp_path: Path):
    p = cli("batch", "--suite", str(tmp_path), "--target", "cpu", "--suites-dir", str(tmp_path / "s"))
    assert p.returncode == 1 and "no KernelBench-format file" in p.stdout


# -- eval --suite (builds one shared C++ extension, judges 5 candidates under both policies) ----------------
@pytest.mark.slow  # one cold C++ build (~75 s on 2 cores), then ~5 s a verdict
def test_rejudge_runs_layout_under_both_policies_then_resume(tmp_path: Path):
    args = ("eval", "--suite", str(MINI), str(RUNS), "--policy", "strict", "--policy", "partial", "--target", "cpu",
            "--no-compile", "--no-timing", "--trials", "2", "--suites-dir", str(tmp_path), "--suite-id", "rj")
    p = cli(*args)
    assert p.returncode == 0, p.stdout + p.stderr
    rows = json.loads((tmp_path / "rj" / "rejudge.json").read_text())["rows"]
    status = {(r["candidate"].split("/")[-1].removesuffix("_kernel.py"), r["policy_asked"] if "policy_asked" in r else "-"):
              r["status"] for r in rows}
    same_under_both = {"level_1_problem_1_sample_0": "correct", "level_1_problem_1_sample_1": "incorrect",
                       "level_1_problem_1_sample_2": "rejected", "level_1_problem_1_sample_3": "rejected"}
    for policy in ("strict", "partial"):
        for name, want in same_under_both.items():
            assert status[(name, policy)] == want, (name, policy, rows)
    assert status[("level_4_problem_7_sample_0", "-")] == "unmatched"
    assert "level_4_problem_7_sample_0_kernel.py: no level 4 problem 7" in p.stdout
    by = {r["policy_asked"]: r for r in rows if "level_2_problem_1" in r["candidate"]}
    assert by["strict"]["status"] == "rejected" and "torch_compute" in by["strict"]["codes"]
    # torch keeps the linear layer, its own C++ does the ReLU
    assert by["partial"]["policy"] == "partial" and by["partial"]["status"] == "correct", by["partial"]
    assert "| strict | all | 5 | 1 | 0 |" in p.stdout  # n counts the 5 matched candidates, 1 correct
    assert "build      5 candidate(s) at once, before judging" in p.stdout  # all built first, not one per reference
    # A run killed while writing its last verdict: that line torn, the verdict lost.
    log = tmp_path / "rj" / "events.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    verdicts = [i for i, ln in enumerate(lines) if '"type": "verdict"' in ln]
    assert len(verdicts) == 10
    log.write_text("".join(lines[:verdicts[-1]]) + lines[verdicts[-1]][:40])
    again = cli(*args)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "judged     1 this time" in again.stdout
    assert "build      1 candidate(s) at once" in again.stdout  # only the one left to judge
    assert len([ln for ln in log.read_text().splitlines() if '"type": "verdict"' in ln]) == 10
