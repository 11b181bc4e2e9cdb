"""Profiler feedback: Nsight Compute's CSV parsed, counters joined with ptxas' registers and
spills, and the lines the next idea prompt shows. The GPU run itself is the lead's (ncu on
the H200); here a stand-in `ncu` on PATH replays a recorded CSV through the real subprocess path."""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from workbench import profile_feedback as pf
from workbench.prompts import idea_prompt

SAMPLE = Path(__file__).resolve().parent / "data" / "ncu_softmax.csv"
RESOURCES = [{"kernel": "_Z19softmax_rows_kernelILi256ELi4EEvPKfPfii", "registers": 40, "spill_stores": 8,
              "spill_loads": 4}]


def test_parse_ncu_csv():
    kernels = pf.parse_ncu_csv(SAMPLE.read_text())
    assert [k.name.split("(")[0] for k in kernels] == ["void softmax_rows_kernel<256, 4>",
                                                       "void at::native::vectorized_elementwise_kernel<4, "
                                                       "at::native::FillFunctor<float>, at::detail::Array<char *, 1>>"]
    soft, fill = kernels
    assert (soft.dram_pct, soft.sm_pct, soft.occupancy_pct, soft.registers) == (86.52, 31.07, 47.93, 40)
    assert soft.duration_us == pytest.approx(1021.44)  # "1,021.44" usecond
    assert fill.duration_us == pytest.approx(8.736)  # "8,736" nsecond
    assert pf.parse_ncu_csv("==PROF== no kernels were profiled\n") == []


def test_feedback_text_for_the_prompt():
    kernels = pf.parse_ncu_csv(SAMPLE.read_text())
    pf.add_build_resources(kernels, RESOURCES)
    assert kernels[0].spill_bytes == 12 and kernels[1].spill_bytes is None
    text = pf.feedback_text([pf.Profile("r1-i0-m1", "ncu", kernels, ms=1.05, roofline_fraction=0.83),
                             pf.Profile("r1-i2-m0", "ncu", error="exit 1: ==ERROR== no permission")])
    assert "- r1-i0-m1 (1.0500 ms, 83% of the roofline), Nsight Compute:" in text
    assert ("softmax_rows_kernel: DRAM throughput 86.5% of peak, SM throughput 31.1% of peak, achieved occupancy "
            "47.9%, 40 registers/thread, 12 B spilled, 1021.4 us") in text
    assert "r1-i2-m0 (): no profile (exit 1: ==ERROR== no permission)" in text
    prompt = idea_prompt("class Model: ...", {}, [{"source": "k", "ms": 1.05}], [], 2, target="cuda",
                         profile_text=text)[1]["content"]
    assert "## Profile of the best kernels (one call each)" in prompt and "DRAM throughput 86.5%" in prompt
    assert "Profile of the best" not in idea_prompt("class Model: ...", {}, [], [], 2)[1]["content"]


def test_profile_candidate_runs_ncu_in_a_subprocess(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake = tmp_path / "ncu"  # prints what a real ncu printed, after checking it got the options we rely on
    fake.write_text("#!/bin/sh\n"
                    'case "$*" in *"--clock-control none --profile-from-start off --csv --metrics "*"dram__throughput"'
                    f'*"workbench.profile_feedback call"*) cat {SAMPLE} ;; *) echo "bad args: $*" >&2; exit 3 ;; esac\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    prof = pf.profile_candidate("softmax", "r1-i0-m1", tmp_path / "cand.py", "cuda",
                                {"ms": 1.05, "roofline_fraction": 0.8, "build_resources": RESOURCES})
    assert prof.tool == "ncu" and not prof.error
    assert [round(k.dram_pct or 0, 2) for k in prof.kernels] == [86.52, 72.10] and prof.kernels[0].spill_bytes == 12
    late = pf.profile_candidate("softmax", "x", tmp_path / "cand.py", "cuda", use_ncu=False, timeout_s=0.01)
    assert late.tool == "torch" and "TimeoutExpired" in late.error  # said, not raised
    assert "no profile (TimeoutExpired" in pf.feedback_text([late])


def test_profiled_call_is_confined_like_the_judge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The profiled call runs the candidate again, outside the judge: it must get no secrets and no
    writes outside its scratch directory, as in the judge (a kernel honest while judged could leak here)."""
    spy = tmp_path / "spy.py"
    outside = tmp_path / "outside.txt"
    spy.write_text(
        "import json, os, torch\n"
        "class ModelNew(torch.nn.Module):\n"
        "    def __init__(self):\n"
        "        super().__init__()\n"
        "        seen = sorted(k for k in os.environ if 'KEY' in k)\n"
        f"        try:\n            open({str(outside)!r}, 'w').write('x')\n        except OSError as e:\n"
        "            seen.append('write refused')\n"
        "        print('SPY', json.dumps(seen), flush=True)\n"
        "    def forward(self, x):\n        return torch.relu(x)\n")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-a-real-key")
    code, out, err = pf._run_confined(pf._runner(str(Path(__file__).parent / "problems" / "relu_small"), spy,
                                                 "cpu", torch_profiler=True), 120)
    assert code == 0, err[-2000:]
    line = next(ln for ln in out.splitlines() if ln.startswith("SPY"))
    assert "OPENAI_API_KEY" not in line
    from workbench import sandbox
    if sandbox.available().mount_namespace:  # the read-only view; without it only the secrets are withheld
        assert "write refused" in line and not outside.exists()


def test_profiled_call_loads_a_built_extension_from_the_read_only_cache():
    """The confined call must find the judge's build, not try to lock or write the cache (on the
    H200 every profile failed with EROFS on the cache's lock file)."""
    from workbench.pool import prebuild

    tests = Path(__file__).parent
    cand = tests / "candidates" / "cpu" / "relu_small.py"
    assert not prebuild(cand, 300).get("error")
    prof = pf.profile_candidate(str(tests / "problems" / "relu_small"), "relu", cand, "cpu", use_ncu=False)
    assert not prof.error and prof.kernels, prof.error


def test_when_ncu_reads_nothing_the_torch_profiler_stands_in(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Nsight Compute may be refused its counters inside the confinement: the prompt still gets times, and why."""
    from workbench.pool import prebuild

    fake = tmp_path / "ncu"
    fake.write_text("#!/bin/sh\necho '==ERROR== ERR_NVGPUCTRPERM - no permission to access GPU counters' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ['PATH']}")
    tests = Path(__file__).parent
    cand = tests / "candidates" / "cpu" / "relu_small.py"
    assert not prebuild(cand, 300).get("error")
    prof = pf.profile_candidate(str(tests / "problems" / "relu_small"), "relu", cand, "cpu", use_ncu=True)
    assert prof.tool == "torch" and prof.kernels and not prof.error
    assert "ERR_NVGPUCTRPERM" in prof.note
    assert "torch profiler (times only; Nsight Compute read nothing (exit 1: ==ERROR== ERR_NVGPUCTRPERM" in \
        pf.feedback_text([prof])
