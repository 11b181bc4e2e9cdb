"""The judge builds for the GPU it times on: a candidate's own architecture flags are left out."""
from __future__ import annotations

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
