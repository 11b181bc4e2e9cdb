"""The judge on CPU candidates (tests/candidates/cpu): honest kernels are judged correct, every
known cheat is judged not correct with one of the reason codes its docstring names, and a
candidate that crashes, hangs or runs out of memory does not spoil the next evaluation.

Each candidate builds C++ with load_inline (~30 s on a 2-core box when not cached).
"""
from __future__ import annotations

from pathlib import Path

import pytest

from candidate_catalog import Candidate, assert_correct, catalog, check_cheat, check_disruptive, judge

pytestmark = pytest.mark.slow

CANDIDATES = catalog("cpu")
BY_NAME = {c.name: c for c in CANDIDATES}
DISRUPTIVE = {"crash": 120.0, "hang": 20.0, "oom": 120.0}  # name -> timeout_s (a hang costs its whole timeout)
HONEST = [c for c in CANDIDATES if c.honest]
CHEATS = [c for c in CANDIDATES if not c.honest and c.name not in DISRUPTIVE]


def test_catalog_reads_docstrings():
    assert BY_NAME["zeros"].expect == {"rel_error", "mismatch"}
    assert BY_NAME["matmul_small_bf16"].honest and BY_NAME["matmul_small_bf16"].problem == "matmul_small"
    required = {"zeros", "constant", "return_input", "return_view", "mutate_input", "mutate_input_scribble",
                "partial_output", "subsample", "cache_by_pointer", "cache_by_content", "torch_fallback",
                "reference_fallback", "patch_timer", "deferred_thread", "lazy_subclass", "wrong_dtype",
                "broadcast_shape", "low_precision", "distribution_exploit", "precompute_at_import", "crash",
                "hang", "oom", "build_error", "no_modelnew", "gc_snoop", "harness_write"}
    assert required <= {c.name for c in CANDIDATES if not c.honest}
    assert {c.problem for c in HONEST} >= {"softmax_small", "matmul_small", "scale_shift", "layernorm_small",
                                           "relu_small", "nested_out"}


@pytest.mark.parametrize("cand", HONEST, ids=lambda c: c.name)
def test_honest_candidate_is_correct(cand: Candidate):
    assert_correct(judge(cand, "cpu"))


@pytest.mark.parametrize("cand", CHEATS, ids=lambda c: c.name)
def test_cheat_is_caught(cand: Candidate):
    check_cheat(cand, "cpu")


@pytest.mark.parametrize("name", sorted(DISRUPTIVE))
def test_disruptive_cheat_is_caught_and_judge_recovers(name: str):
    check_disruptive(BY_NAME[name], "cpu", DISRUPTIVE[name], BY_NAME["relu_small"])


def test_native_read_finds_no_credential_file_in_the_worker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """C++ that reads the judge's ~/.netrc, ~/.aws/credentials or /etc/shadow computes relu only when it
    can; judged, all three are hidden."""
    from candidate_catalog import TESTS_DIR, check_secret_thief
    from workbench import sandbox
    from workbench.worker_process import kill_spares

    if not sandbox.available().pid_namespace:
        pytest.skip("no mount namespace on this machine: files cannot be hidden (docs/isolation.md)")
    home = tmp_path / "home"
    (home / ".aws").mkdir(parents=True)
    (home / ".netrc").write_text("machine api.example.com login me password hunter2\n")
    (home / ".aws" / "credentials").write_text("[default]\naws_secret_access_key = abc123\n")
    monkeypatch.setenv("HOME", str(home))
    kill_spares()  # a warm spare started before this home existed hides what was there then
    paths = [str(home / ".netrc"), str(home / ".aws" / "credentials"), "/etc/shadow"]  # shadow: uid 0 reads it
    src = (TESTS_DIR / "data" / "read_home_secret.py").read_text()
    cand = tmp_path / "read_home_secret.py"
    cand.write_text(src.replace('SECRET_PATHS = ["/root/.netrc", "/root/.aws/credentials"]', f"SECRET_PATHS = {paths!r}"))
    check_secret_thief(cand, "cpu")


def test_native_getenv_finds_no_api_key_in_the_worker(monkeypatch: pytest.MonkeyPatch):
    """C++ getenv of the API keys, as a key thief's extension would call it: the candidate computes
    relu only when it finds a key; judged, it must find none."""
    from candidate_catalog import TESTS_DIR, check_secret_thief

    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789abcdef")
    monkeypatch.setenv("GEMINI_API_KEY", "gm-test-0123456789abcdef")
    check_secret_thief(TESTS_DIR / "data" / "getenv_api_key.py", "cpu")


@pytest.mark.parametrize("where", ["cache", "scratch"])
def test_a_library_loaded_by_path_is_audited_like_a_build(where: str, tmp_path: Path):
    """Native code reached without load_inline: an extension already in the build cache (or copied into
    the candidate's scratch) imported by its path calls at::cpu::mm. The worker reports no build, so an
    audit of the reported builds sees nothing; the judge reads what the worker has mapped instead.
    Control: the same library, built through load_inline, is refused (aten_cpu_mm)."""
    from candidate_catalog import PROBLEMS_DIR, TESTS_DIR

    from workbench import build
    from workbench.judge import evaluate
    from workbench.problem import load_problem

    cpp = (TESTS_DIR / "candidates" / "cpu" / "aten_cpu_mm.py").read_text().split('CPP = r"""')[1].split('"""')[0]
    built = build.build(build.spec_from_load_inline_args("wbt_side_loaded_mm", [cpp], functions=["matmul"],
                                                         extra_cflags=["-O1"]))
    assert built.ok, built.log
    cand = tmp_path / f"side_loaded_{where}.py"
    cand.write_text((TESTS_DIR / "data" / "side_loaded_library.py").read_text().replace(
        'LIBRARY, MODULE, WHERE = "", "", "cache"', f"LIBRARY, MODULE, WHERE = {built.library!r}, {built.module_name!r}, {where!r}"))
    v = evaluate(load_problem(PROBLEMS_DIR / "matmul_small", target="cpu"), cand, target="cpu", static_scan=False)
    assert not v.correct, f"a side-loaded at::cpu::mm was judged {v.status}"
    assert "torch_compute" in v.codes, v.reasons


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # NumPy 2's __array_wrap__ note, from the control
def test_numpy_computes_nothing_in_the_worker_though_it_does_here():
    """numpy_implicit hands the tensors to numpy.matmul without naming a bridge. Control: in this
    process (torch's NumPy bridge on) it computes the right product; in the worker (bridge off) it
    cannot, whatever the source spells (judged with the static scan off)."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("numpy_implicit", BY_NAME["numpy_implicit"].path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    a, b = torch.randn(8, 8), torch.randn(8, 8)
    assert torch.allclose(module.ModelNew()(a, b), a @ b, atol=1e-5)  # the control
    v = judge(BY_NAME["numpy_implicit"], "cpu", static_scan=False)
    assert not v.correct and "Numpy is not available" in " ".join(v.reasons), v.reasons


def test_a_timed_output_finished_after_its_call_is_stale():
    """The judge's side of the probe: elements the worker read as the call returned that the fetched
    output contradicts, a missing probe, and a malformed one are each a reason; agreeing ones are not."""
    import torch

    from workbench.judge import probes_disagree

    out = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    out[1, 1] = float("nan")
    leaf = lambda probe: [({"kind": "tensor", "probe": probe}, out)]  # noqa: E731
    assert probes_disagree(leaf({"flat": [0, 5, 11], "values": [0.0, float("nan"), 11.0]})) is None
    assert "changed afterwards" in probes_disagree(leaf({"flat": [0, 11], "values": [0.0, 0.0]}))
    assert "no probe" in probes_disagree([({"kind": "tensor"}, out)])
    assert "malformed" in probes_disagree(leaf({"flat": [99], "values": [1.0]}))
    assert probes_disagree(leaf(None)) is None  # a leaf the worker could not probe (empty, not strided)
