"""Every problem runs on a machine without a GPU: it states CPU sizes, has a CPU seed, and a
Problem made for the cpu target uses both (docs/conventions.md, "CPU sizes" and "Seeds")."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from workbench.problem import ProblemError, list_problems, load_problem, seed_target, tensor_bytes

ROOT = Path(__file__).resolve().parent.parent
PROBLEMS = sorted(p.parent.name for p in ROOT.glob("problems/*/reference.py"))
CPU_BYTES_LIMIT = 16 << 20  # inputs of one CPU call; the stated GPU sizes are 64 MiB to 1 GiB


def test_there_are_problems():
    assert len(PROBLEMS) >= 10


@pytest.mark.parametrize("name", PROBLEMS)
def test_problem_has_a_cpu_seed_and_small_cpu_sizes(name: str):
    stated = load_problem(name)
    cpu = stated.for_target("cpu")
    assert hasattr(stated.module, "get_inputs_cpu"), "reference.py states its CPU size in get_inputs_cpu()"
    assert cpu.seeds(), "at least one seed with TARGET = \"cpu\""
    assert all(seed_target(s) == "cpu" for s in cpu.seeds())
    torch.manual_seed(0)
    small = cpu.draw_inputs()
    assert 0 < tensor_bytes(small) <= CPU_BYTES_LIMIT
    # The reference runs at the CPU size (init inputs and inputs agree) and keeps the stated dtype.
    model = cpu.make_model(0, "cpu")
    with torch.no_grad():
        out = model(*small)
    assert torch.isfinite(out).all()
    assert out.dtype == small[0].dtype
    if stated.flops:
        assert 0 < cpu.flops < stated.flops, "a compute-bound problem states FLOPS_CPU for its CPU size"


def test_cpu_sizes_are_smaller_than_the_stated_ones():
    stated, cpu = load_problem("softmax"), load_problem("softmax", target="cpu")
    assert stated.sizes == "stated" and cpu.sizes == "cpu"
    assert stated.digest != cpu.digest, "caches keyed on the digest must not mix the two sizes"
    # layernorm's normalised shape is an init input: the CPU one must follow the CPU inputs
    ln = load_problem("layernorm", target="cpu")
    torch.manual_seed(0)
    assert tuple(ln.draw_inputs()[0].shape[1:]) == tuple(ln.init_inputs()[0])
    assert load_problem("layernorm").init_inputs() == [(64, 256, 256)]


def test_for_target_cuda_keeps_the_stated_sizes_and_cuda_seeds():
    p = load_problem("softmax")
    cuda = p.for_target("cuda:1")
    assert cuda.target == "cuda" and cuda.sizes == "stated" and cuda.flops == p.flops
    assert cuda.seeds() and all(seed_target(s) == "cuda" for s in cuda.seeds())
    assert set(p.seeds()) == set(cuda.seeds()) | set(p.seeds("cpu")), "unbound: all seeds, as before"
    assert cuda.for_target("cuda") is cuda
    with pytest.raises(ValueError, match="unknown target"):
        p.for_target("tpu")


def test_list_problems_by_target():
    assert list_problems() == PROBLEMS
    assert list_problems("cpu") == PROBLEMS
    assert list_problems("cuda") == PROBLEMS


def test_seed_target_is_read_without_importing(tmp_path: Path):
    good = tmp_path / "a.py"
    good.write_text('raise SystemExit("imported")\nTARGET = "cpu"\n')
    assert seed_target(good) == "cpu"
    cuda = tmp_path / "b.py"
    cuda.write_text('load_inline(name="k", cpp_sources=CPP, cuda_sources=CU)\n')
    assert seed_target(cuda) == "cuda", "undeclared with cuda_sources: a CUDA seed"
    cpp = tmp_path / "d.py"
    cpp.write_text('load_inline(name="k", cpp_sources=CPP)\n')
    assert seed_target(cpp) == "cpu", "undeclared, C++ only: a CPU seed (tests/problems/scale_rows)"
    bad = tmp_path / "c.py"
    bad.write_text("TARGET = 3\n")
    with pytest.raises(ProblemError, match="TARGET must be"):
        seed_target(bad)


def test_a_problem_without_cpu_sizes_keeps_its_own():
    ref = ROOT / "tests" / "problems" / "softmax_small" / "reference.py"
    p = load_problem(ref, target="cpu")
    assert p.sizes == "stated" and p.target == "cpu"
    torch.manual_seed(0)
    assert tuple(p.draw_inputs()[0].shape) == (32, 16384)
    rows = load_problem(ROOT / "tests" / "problems" / "scale_rows" / "reference.py", target="cpu")
    assert [s.stem for s in rows.seeds()] == ["blocked", "loop"], "C++-only seeds without TARGET stay CPU seeds"


@pytest.mark.slow  # a fresh build of torch/extension.h's precompiled header alone takes ~30-80 s here
def test_cheapest_cpu_seed_is_judged_correct():
    from workbench.judge import evaluate

    problem = load_problem("depthwise_conv2d", target="cpu")
    seed = problem.seeds()[0]
    v = evaluate(problem, seed, target="cpu", timing=False)
    assert v.status == "correct", (v.status, v.reasons[:5])
