"""`python -m workbench batch [problems...]` and `python -m workbench report`.

batch: papermill executes notebooks/search.ipynb once per problem into
<out>/search-<problem>.ipynb (one failure does not stop the others; failures go to
<out>/batch-failures.json), then the report. report: notebooks/report.ipynb into
<out>/report.ipynb, and its HTML without input cells into <out>/report.html.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import time
import traceback
from pathlib import Path
from typing import Any

from workbench.problem import REPO_ROOT

NOTEBOOKS = REPO_ROOT / "notebooks"
KERNEL = "python3"
FAILURES = "batch-failures.json"


def safe_name(problem: str) -> str:
    p = Path(problem)
    name = p.parent.name if p.name == "reference.py" else (p.stem if p.suffix == ".py" else p.name)
    return re.sub(r"[^\w.-]", "_", name).strip(".") or "problem"


def ensure_kernel(name: str = KERNEL) -> None:
    """papermill needs the `python3` kernelspec; install ipykernel's for this interpreter if it is missing."""
    from jupyter_client.kernelspec import find_kernel_specs

    if name not in find_kernel_specs():
        import subprocess
        import sys

        subprocess.run([sys.executable, "-m", "ipykernel", "install", "--user", "--name", name], check=True)


def execute(notebook: Path, output: Path, parameters: dict[str, Any], cwd: Path = REPO_ROOT, **kw: Any) -> None:
    import papermill as pm

    output.parent.mkdir(parents=True, exist_ok=True)
    pm.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name=KERNEL, cwd=str(cwd),
                        progress_bar=False, **kw)


def search_parameters(a: argparse.Namespace, problem: str, run_id: str, runs_dir: str | None) -> dict[str, Any]:
    return {"problem": problem, "models": list(a.model or ["tuner"]), "rounds": a.rounds, "ideas": a.ideas,
            "impls": a.impls, "seeds": a.seeds, "repairs": a.repairs, "target": a.target,
            "compile_baseline": bool(a.compile), "max_candidates": a.max_candidates, "max_tokens": a.max_tokens,
            "max_wall_s": a.max_wall, "base_url": a.base_url, "trials": a.trials, "samples": a.samples,
            "timeout_s": a.timeout, "run_id": run_id, "runs_dir": runs_dir, "interactive": False}


def run_batch(a: argparse.Namespace, out: Path, runs_dir: str | None = None) -> list[dict[str, Any]]:
    """One search notebook per problem; returns the failures (also written to <out>/batch-failures.json)."""
    from papermill.exceptions import PapermillExecutionError

    from workbench.problem import list_problems

    problems = list(a.problems) or list_problems()
    stamp = time.strftime("%Y%m%d-%H%M%S")
    failures: list[dict[str, Any]] = []
    for problem in problems:
        name = safe_name(problem)
        run_id = f"batch-{stamp}-{name}"
        nb_out = out / f"search-{name}.ipynb"
        t0 = time.time()
        print(f"search     {problem} -> {nb_out} (run {run_id})", flush=True)
        try:
            execute(NOTEBOOKS / "search.ipynb", nb_out, search_parameters(a, problem, run_id, runs_dir))
            print(f"  done in {time.time() - t0:.0f} s", flush=True)
        except PapermillExecutionError as e:
            failures.append({"problem": name, "path": problem, "run": run_id, "notebook": str(nb_out),
                             "error": f"{e.ename}: {e.evalue}"[:2000], "seconds": time.time() - t0})
            print(f"  FAILED: {e.ename}: {str(e.evalue)[:300]}", flush=True)
        except Exception as e:  # a kernel that died, a notebook that would not start: still go on
            failures.append({"problem": name, "path": problem, "run": run_id, "notebook": str(nb_out),
                             "error": f"{type(e).__name__}: {e}"[:2000], "traceback": traceback.format_exc()[-3000:],
                             "seconds": time.time() - t0})
            print(f"  FAILED: {type(e).__name__}: {str(e)[:300]}", flush=True)
    (out / FAILURES).write_text(json.dumps(failures, indent=1))
    return failures


def run_report(out: Path, runs_dir: str | None = None, failures_path: Path | None = None) -> tuple[Path, Path]:
    """Execute report.ipynb over the runs and export it to HTML without input cells."""
    import nbformat
    from nbconvert import HTMLExporter

    failures_path = failures_path or out / FAILURES
    nb_out, html_out = out / "report.ipynb", out / "report.html"
    execute(NOTEBOOKS / "report.ipynb", nb_out,
            {"runs_dir": runs_dir, "failures": str(failures_path.resolve()) if failures_path.is_file() else None})
    body, _ = HTMLExporter(exclude_input=True).from_notebook_node(nbformat.read(str(nb_out), as_version=4))
    html_out.write_text(body)
    return nb_out, html_out


def main(a: argparse.Namespace) -> int:
    if getattr(a, "suite", None):  # a directory of KernelBench files: workbench.suite, no notebooks
        from workbench.suite import suite_main

        return suite_main(a)
    ensure_kernel()
    out = Path(a.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    runs_dir = getattr(a, "runs_dir", None)
    failures: list[dict[str, Any]] = []
    if a.cmd == "batch":
        if getattr(a, "address", None):  # the notebooks' searches read it (workbench.search.make_pool)
            os.environ["WORKBENCH_RAY_ADDRESS"] = a.address
        failures = run_batch(a, out, runs_dir)
        for nb in sorted(out.glob("search-*.ipynb")):
            print(f"notebook   {nb}")
        print(f"failures   {out / FAILURES} ({len(failures)})")
    nb_out, html_out = run_report(out, runs_dir)
    print(f"report     {nb_out}")
    print(f"html       {html_out}")
    return 1 if failures else 0
