"""Run one seed's forward a few times on fresh inputs, outside the judge: a target for profilers.

    ncu --clock-control none --launch-skip 2 --launch-count 1 --metrics ... \\
        python benchmarks/call_once.py PROBLEM SEED [--calls 3]

Builds the seed with the workbench builder, makes the problem's inputs on the GPU, and calls
forward --calls times with a sync after each, so the profiler can skip the warm-up launches.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("problem")
    ap.add_argument("seed")
    ap.add_argument("--calls", type=int, default=3)
    a = ap.parse_args()
    import torch

    from workbench import build
    from workbench.problem import load_problem, make_inputs

    build.target_arch()
    problem = load_problem(a.problem)
    path = problem.seeds_dir / f"{a.seed}.py"
    spec = importlib.util.spec_from_file_location(f"seed_{a.seed}", path)
    module = importlib.util.module_from_spec(spec)
    with build.patched_load_inline():
        spec.loader.exec_module(module)
    torch.manual_seed(0)
    model = module.ModelNew(*problem.init_inputs()).cuda()
    for i in range(a.calls):
        inputs = make_inputs(problem, seed=i, distribution="given", device="cuda")
        model(*inputs)
        torch.cuda.synchronize()
    print(f"{problem.name}/{a.seed}: {a.calls} calls done")


if __name__ == "__main__":
    main()
