"""Build times: torch's own load_inline (naive) against workbench.build, on the same sources.

    python benchmarks/build_times.py [--seed problems/softmax/seeds/<file>.py] [--variants 8]

Measures, each in a fresh directory: a trivial kernel and a typical seed through torch's
load_inline; the same seed through workbench.build cold (no precompiled header yet), warm
(header precompiled, new source), cached (same source again); and N tuner variants of the
seed built in parallel. Prints one table; the device is named.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TRIVIAL = r'''
import torch
from torch.utils.cpp_extension import load_inline
cuda = """
#include <torch/extension.h>
__global__ void add_one(const float* x, float* y, int n) { int i = blockIdx.x * blockDim.x + threadIdx.x; if (i < n) y[i] = x[i] + 1.f; }
torch::Tensor add_one_cuda(torch::Tensor x) { auto y = torch::empty_like(x); int n = x.numel();
  add_one<<<(n + 255) / 256, 256>>>(x.data_ptr<float>(), y.data_ptr<float>(), n); return y; }
"""
cpp = "torch::Tensor add_one_cuda(torch::Tensor x);"
load_inline(name="trivial_add_one", cpp_sources=cpp, cuda_sources=cuda, functions=["add_one_cuda"], verbose=False)
'''


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    p = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        print(p.stdout[-2000:], p.stderr[-3000:], file=sys.stderr)
        return float("nan")
    return time.perf_counter() - t


def naive(code: str) -> float:
    with tempfile.TemporaryDirectory() as d:
        env = dict(os.environ, TORCH_EXTENSIONS_DIR=d)
        env.pop("TORCH_CUDA_ARCH_LIST", None)
        return timed([sys.executable, "-c", code], env)


def ours(path: Path, cache: Path) -> float:
    env = dict(os.environ, WORKBENCH_BUILD_CACHE=str(cache), PYTHONPATH=str(ROOT))
    return timed([sys.executable, "-m", "workbench.prebuild", str(path)], env)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seed", default=None)
    ap.add_argument("--variants", type=int, default=8)
    ap.add_argument("--json", default=None)
    a = ap.parse_args()
    import torch

    sys.path.insert(0, str(ROOT))
    from workbench.build import target_arch
    from workbench.proposers.tuner import apply, tunables

    target_arch()
    seed = Path(a.seed) if a.seed else sorted((ROOT / "problems" / "softmax" / "seeds").glob("*.py"))[0]
    src = seed.read_text()
    rows: list[tuple[str, float]] = []
    rows.append(("torch load_inline, trivial kernel (torch/extension.h in .cu)", naive(TRIVIAL)))
    runner = f"import runpy; runpy.run_path({str(seed)!r})"
    rows.append((f"torch load_inline, seed {seed.parent.parent.name}/{seed.stem}", naive(runner)))
    with tempfile.TemporaryDirectory() as d:
        cache, work = Path(d) / "cache", Path(d) / "src"
        work.mkdir()
        (work / "seed.py").write_text(src)
        rows.append(("workbench.build, seed, cold (precompiles the header)", ours(work / "seed.py", cache)))
        rows.append(("workbench.build, seed, cached (same source)", ours(work / "seed.py", cache)))
        marks = list(tunables(src).values())
        variants = []
        for i in range(a.variants):  # distinct sources: a new key each, the header already precompiled
            v = apply(src, {marks[i % len(marks)].name: marks[i % len(marks)].options[i // len(marks) % len(marks[i % len(marks)].options)]}) if marks else src
            v = v + f"\n# variant {i}\n"
            p = work / f"v{i}.py"
            p.write_text(v)
            variants.append(p)
        one = ours(variants[0], cache)
        rows.append(("workbench.build, new source, header warm (one at a time)", one))
        t = time.perf_counter()
        with ThreadPoolExecutor(max(1, (os.cpu_count() or 2) - 2)) as ex:
            each = list(ex.map(lambda p: ours(p, cache), variants[1:]))
        wall = time.perf_counter() - t
        rows.append((f"workbench.build, {len(variants) - 1} new sources in parallel: median each", statistics.median(each)))
        rows.append((f"workbench.build, {len(variants) - 1} new sources in parallel: wall / source", wall / (len(variants) - 1)))
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    print(f"\nbuild times on {device}, {os.cpu_count()} cores, torch {torch.__version__}")
    for name, s in rows:
        print(f"{s:8.1f} s  {name}")
    if a.json:
        Path(a.json).write_text(json.dumps({"device": device, "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
