"""The notebooks: committed clean, and executable by papermill end to end on the CPU test problem."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
NAMES = ["search", "report", "explore"]


@pytest.fixture(scope="module")
def kernel():
    from jupyter_client.kernelspec import find_kernel_specs

    if "python3" not in find_kernel_specs():
        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--user"], check=True)
    return "python3"


@pytest.mark.parametrize("name", NAMES)
def test_committed_notebooks_are_clean(name):
    nb = nbformat.read(str(NOTEBOOKS / f"{name}.ipynb"), as_version=4)
    nbformat.validate(nb)
    assert nb.metadata["kernelspec"]["name"] == "python3"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    params = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and params[0] is code[0]
    import ast

    for stmt in ast.parse(params[0].source).body:  # plain literals only
        assert isinstance(stmt, ast.Assign)
        ast.literal_eval(stmt.value)


def _images(nb) -> int:
    return sum(1 for c in nb.cells if c.cell_type == "code" for o in c.outputs if "image/png" in o.get("data", {}))


@pytest.mark.slow
def test_search_and_report_notebooks_execute(tmp_path, kernel):
    import papermill as pm

    runs = tmp_path / "runs"
    out = tmp_path / "search.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "search.ipynb"), str(out), kernel_name=kernel, cwd=str(ROOT),
                        progress_bar=False,
                        parameters={"problem": "tests/problems/scale_rows", "target": "cpu", "models": ["tuner"],
                                    "rounds": 1, "ideas": 1, "impls": 1, "compile_baseline": False, "trials": 2,
                                    "samples": 5, "run_id": "nbtest", "runs_dir": str(runs)})
    nb = nbformat.read(str(out), as_version=4)
    assert _images(nb) >= 2  # trajectory and idea tree
    text = json.dumps(nb)
    assert "best candidate" in text and "scale_rows" in text
    events = [json.loads(line) for line in (runs / "nbtest" / "events.jsonl").read_text().splitlines()]
    types = {e["type"] for e in events}
    assert {"start", "baseline", "candidate", "verdict", "round", "end"} <= types
    assert any(e["type"] == "round" and e["round"] == 1 for e in events)

    failures = tmp_path / "failures.json"
    failures.write_text(json.dumps([{"problem": "conv_fake", "run": "b-conv", "error": "RuntimeError: boom"}]))
    rep = tmp_path / "report.ipynb"
    pm.execute_notebook(str(NOTEBOOKS / "report.ipynb"), str(rep), kernel_name=kernel, cwd=str(ROOT),
                        progress_bar=False, parameters={"runs_dir": str(runs), "failures": str(failures)})
    nb = nbformat.read(str(rep), as_version=4)
    assert _images(nb) >= 2  # summary bars and the trajectory grid
    text = json.dumps(nb)
    assert "fast_1.0" in text and "nbtest" in text and "conv_fake" in text and "boom" in text


@pytest.mark.slow
def test_batch_records_a_failed_problem_and_still_reports(tmp_path, kernel):
    """A problem that does not load fails its notebook; the batch goes on and the HTML report lists it."""
    out = tmp_path / "nb"
    env = {**os.environ, "WORKBENCH_RUNS": str(tmp_path / "runs"), "MPLBACKEND": "Agg"}
    r = subprocess.run([sys.executable, "-m", "workbench", "batch", "no_such_problem", "--target", "cpu",
                        "--no-compile", "--rounds", "1", "--out", str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 1, r.stdout + r.stderr
    failures = json.loads((out / "batch-failures.json").read_text())
    assert [f["problem"] for f in failures] == ["no_such_problem"] and failures[0]["error"]
    assert (out / "search-no_such_problem.ipynb").is_file()
    html = (out / "report.html").read_text()
    assert "no_such_problem" in html and "report.html" in r.stdout
    assert "from workbench import report" not in html  # inputs excluded
