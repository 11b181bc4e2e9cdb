"""The judge builds for the GPU it times on: a candidate's own architecture flags are left out."""
from __future__ import annotations

import pytest

from workbench.build import device_arch_flags


def test_architecture_flags_are_left_out_in_every_spelling():
    flags = ["-arch=sm_70", "--use_fast_math", "-gencode", "arch=compute_80,code=sm_80", "-std=c++17",
             "--gpu-architecture", "sm_86", "-gencode=arch=compute_90a,code=sm_90a", "-code=sm_75",
             "--generate-code=arch=compute_70,code=sm_70", "-Xptxas", "-v", "-arch", "native"]
    kept, dropped = device_arch_flags(flags)
    assert kept == ["--use_fast_math", "-std=c++17", "-Xptxas", "-v"]
    assert dropped == ["-arch=sm_70", "-gencode arch=compute_80,code=sm_80", "--gpu-architecture sm_86",
                       "-gencode=arch=compute_90a,code=sm_90a", "-code=sm_75",
                       "--generate-code=arch=compute_70,code=sm_70", "-arch native"]


def test_flags_without_architecture_are_kept_as_they_are():
    flags = ["-O3", "--use_fast_math", "-lineinfo", "-Xcompiler", "-fopenmp", "--expt-relaxed-constexpr"]
    assert device_arch_flags(flags) == (flags, [])
    # a flag that merely starts like one (-archive...) is not an architecture flag
    assert device_arch_flags(["-architecture-notes"]) == (["-architecture-notes"], [])


def test_an_include_of_a_credential_file_reads_nothing_in_the_confined_build(tmp_path, monkeypatch):
    """The compiler runs on the candidate's source: `#include "~/.netrc"` would put a line of it in
    the build error a repair prompt carries. Confined, the file reads as empty. The control: the
    same build with the sandbox off shows the secret, so the test can fail."""
    from workbench import build, sandbox

    if not sandbox.available().pid_namespace:
        pytest.skip("no mount namespace on this machine: files cannot be hidden (docs/isolation.md)")
    home = tmp_path / "home"
    home.mkdir()
    (home / ".netrc").write_text("machine api.example.com login me password hunter2\n")
    monkeypatch.setenv("HOME", str(home))
    def spec(tag: str) -> build.BuildSpec:  # a source of its own per build (the cache key), same include
        src = f'#include "{home / ".netrc"}"\n// {tag} {tmp_path.name}\ntorch::Tensor f(torch::Tensor x) {{ return x; }}'
        return build.spec_from_load_inline_args("netrc_include", [src], functions=["f"])

    monkeypatch.setenv("WORKBENCH_SANDBOX", "off")
    leaky = build.build(spec("open"))
    assert not leaky.ok and "hunter2" in leaky.log  # the control
    monkeypatch.setenv("WORKBENCH_SANDBOX", "on")
    confined = build.build(spec("confined"))
    assert "hunter2" not in confined.log and confined.ok, confined.log[-2000:]


def test_a_sandbox_that_cannot_start_is_a_build_error_that_says_so(tmp_path, monkeypatch):
    from workbench import build, sandbox

    def refuse(*a, **k):
        raise RuntimeError("sandbox setup failed: refused for the test")

    monkeypatch.setattr(sandbox, "spawn", refuse)
    spec = build.spec_from_load_inline_args("sandbox_refused", [f"// {tmp_path.name}\ntorch::Tensor f(torch::Tensor x) {{ return x; }}"],
                                            functions=["f"])
    r = build.build(spec)
    assert not r.ok and "the build's sandbox could not start: sandbox setup failed" in r.log
