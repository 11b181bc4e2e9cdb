"""The link audit on real shared libraries: small extensions in tests/link_sources are built once
(g++, and nvcc for the CUDA ones: it compiles without a GPU) into a cache in the temp dir, then
each library's undefined symbols must give exactly the codes below, with nm and with the
pure-Python ELF reader alike.

Building the libraries that include torch headers costs ~30 s of CPU once (3 min of wall time on a
loaded 2-core box), so those tests are slow; the torch-free library keeps the fast tier honest."""
from __future__ import annotations

import hashlib
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from workbench.audit import link_audit, undefined_symbols

SOURCES = Path(__file__).resolve().parent / "link_sources"
CUDA_HOME = Path("/usr/local/cuda-13.0") if Path("/usr/local/cuda-13.0/bin/nvcc").is_file() else None
if CUDA_HOME is None and shutil.which("nvcc"):
    CUDA_HOME = Path(shutil.which("nvcc")).resolve().parents[1]

# library -> (sources, codes under "strict", codes under "partial")
EXPECT = {
    "cpu_structured_mm": (["cpu_structured_mm.cpp"], {"torch_compute"}, {"torch_compute"}),
    "dispatcher_mm": (["dispatcher_mm.cpp"], {"torch_compute"}, set()),
    "guarded_einsum": (["guarded_einsum.cpp"], {"forbidden_source", "torch_compute"}, {"forbidden_source"}),
    "dispatch_key_guard": (["dispatch_key_guard.cpp"], {"forbidden_source"}, {"forbidden_source"}),
    "process_control": (["process_control.cpp"], {"forbidden_source"}, {"forbidden_source"}),
    "honest_cpu": (["honest_cpu.cpp"], set(), set()),
    "cuda_structured_mm": (["cuda_structured_mm.cpp"], {"torch_compute"}, {"torch_compute"}),
    "cuda_cublas": (["cuda_cublas.cu"], {"library_kernel"}, {"library_kernel"}),
    "cuda_honest": (["cuda_honest.cu", "cuda_honest_host.cpp"], set(), set()),
}


def _needs_cuda(name: str) -> bool:
    return name.startswith("cuda_")


def _build(name: str, cache: Path) -> Path:
    from torch.utils.cpp_extension import include_paths

    sources = [SOURCES / s for s in EXPECT[name][0]]
    incs = [f"-I{p}" for p in include_paths()] + ([f"-I{CUDA_HOME / 'include'}"] if _needs_cuda(name) else [])
    key = hashlib.sha256(b"".join(s.read_bytes() for s in sources) + " ".join(incs).encode()).hexdigest()[:16]
    out = cache / f"{name}-{key}.so"
    if out.is_file():
        return out
    work = Path(tempfile.mkdtemp(dir=cache))
    try:
        _compile_and_link(name, sources, incs, work)
        (work / "lib.so").replace(out)  # atomic: a killed build leaves no half-written library
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return out


def _compile_and_link(name: str, sources: list[Path], incs: list[str], work: Path) -> None:
    objs = []
    for src in sources:
        obj = work / (src.name + ".o")
        if src.suffix == ".cu":
            cmd = [str(CUDA_HOME / "bin" / "nvcc"), "-c", "-O1", "-Xcompiler", "-fPIC", "-arch=sm_90", str(src), "-o", str(obj)]
        else:
            cmd = ["g++", "-c", "-std=c++20", "-O0", "-fPIC", "-fopenmp", "-w", *incs, str(src), "-o", str(obj)]
        subprocess.run(cmd, check=True, capture_output=True)
        objs.append(str(obj))
    link = ["g++", "-shared", "-fopenmp", *objs, "-o", str(work / "lib.so")]
    if _needs_cuda(name):
        link += [f"-L{CUDA_HOME / 'lib64'}", "-lcudart"]  # shared cudart, as torch's extensions link it
    subprocess.run(link, check=True, capture_output=True)


FAST = {"process_control"}  # no torch headers: builds in about a second


def _cache() -> Path:
    cache = Path(tempfile.gettempdir()) / "workbench-link-audit"
    cache.mkdir(exist_ok=True)
    return cache


@pytest.fixture(scope="module")
def libraries() -> dict[str, Path]:
    names = [n for n in EXPECT if CUDA_HOME is not None or not _needs_cuda(n)]
    with ThreadPoolExecutor(2) as pool:
        return dict(zip(names, pool.map(lambda n: _build(n, _cache()), names)))


def test_process_control_library_fast():
    """The fast tier: one torch-free library through both symbol readers."""
    lib = _build("process_control", _cache())
    for use_nm in ([True] if shutil.which("nm") else []) + [False]:
        found = link_audit(lib, use_nm=use_nm)
        assert _codes(found) == {"forbidden_source"}, found
        for sym in ("dlopen", "dlsym", "fork", "socket", "std::thread::"):
            assert sym in found[0], (sym, found)


def _codes(found: list[str]) -> set[str]:
    return {c.split(":", 1)[0] for c in found}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECT))
@pytest.mark.parametrize("use_nm", [True, False], ids=["nm", "elf"])
def test_link_audit_verdicts(libraries, name, use_nm):
    if name not in libraries:
        pytest.skip("no nvcc")
    if use_nm and shutil.which("nm") is None:
        pytest.skip("no binutils")
    _, strict, partial = EXPECT[name]
    got_strict = link_audit(libraries[name], "strict", use_nm=use_nm)
    assert _codes(got_strict) == strict, got_strict
    got_partial = link_audit(libraries[name], "partial", use_nm=use_nm)
    assert _codes(got_partial) == partial, got_partial


@pytest.mark.slow
def test_nm_and_elf_reader_name_the_same_calls(libraries):
    if shutil.which("nm") is None:
        pytest.skip("no binutils")
    for name, lib in libraries.items():
        by_nm, by_elf = set(undefined_symbols(lib, use_nm=True)), set(undefined_symbols(lib, use_nm=False))
        interesting = {s for s in by_nm | by_elf if s.startswith(("at::", "c10::", "cublas", "dl", "fork", "socket"))}
        assert interesting & by_nm == interesting & by_elf, (name, sorted(by_nm ^ by_elf)[:20])


@pytest.mark.slow
def test_link_audit_names_what_it_refuses(libraries):
    text = " ".join(link_audit(libraries["cpu_structured_mm"]) + link_audit(libraries["guarded_einsum"])
                    + link_audit(libraries["process_control"]))
    for sym in ("at::cpu::mm", "at::_ops::einsum::call", "at::enableRecordFunction", "dlopen", "fork", "socket",
                "std::thread::"):
        assert sym in text, (sym, text)


@pytest.mark.slow
def test_link_audit_cost(libraries):
    for use_nm in ([True] if shutil.which("nm") else []) + [False]:
        t = time.perf_counter()
        for lib in libraries.values():
            link_audit(lib, use_nm=use_nm)
        ms = (time.perf_counter() - t) * 1e3 / len(libraries)
        print(f"link audit ({'nm' if use_nm else 'ELF reader'}): {ms:.1f} ms per library")
        assert ms < 500


def test_bad_policy_and_non_elf(tmp_path):
    (tmp_path / "x.so").write_text("not a library")
    with pytest.raises(ValueError):
        link_audit(tmp_path / "x.so", use_nm=False)
    with pytest.raises(ValueError):
        link_audit(tmp_path / "x.so", policy="lenient")


# -- the same audit on what load_inline really builds (the workbench's cached builder) --------------
ROOT = Path(__file__).resolve().parents[1]
CPU_CANDIDATES = ROOT / "tests" / "candidates" / "cpu"
# candidate file -> codes its extension must get under "strict"
CPU_BUILDS = {"relu_small": set(), "softmax_small": set(), "matmul_small": set(), "matmul_small_bf16": set(),
              "layernorm_small": set(), "scale_shift": set(), "aten_cpu_mm": {"torch_compute"},
              "record_guard_einsum": {"forbidden_source", "torch_compute"}}
CUDA_FILES = sorted(ROOT.glob("problems/*/seeds/*.py")) + sorted((ROOT / "tests" / "candidates" / "cuda").glob("*.py"))
CUDA_EXPECT = {"aten_cuda_mm": {"torch_compute"}, "record_guard_einsum": {"forbidden_source", "torch_compute"},
               "cublas": {"torch_compute"}}


def _built_libraries(path: Path) -> list[Path]:
    """Import a candidate as the worker does and return the libraries its load_inline calls built."""
    import importlib.util

    from workbench import build

    before = len(build.BUILDS)
    spec = importlib.util.spec_from_file_location(f"link_audit_{path.parent.name}_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    with build.patched_load_inline():
        spec.loader.exec_module(module)
    return [Path(b.library) for b in build.BUILDS[before:] if b.ok and b.library]


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CPU_BUILDS))
def test_link_audit_on_load_inline_builds(name):
    libs = _built_libraries(CPU_CANDIDATES / f"{name}.py")
    assert libs
    for lib in libs:
        assert _codes(link_audit(lib)) == CPU_BUILDS[name], link_audit(lib)


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.parametrize("path", CUDA_FILES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_link_audit_on_cuda_seed_and_candidate_builds(path):
    """Every CUDA seed and honest CUDA test candidate passes; the native cheats are refused."""
    import torch

    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device")
    if path.stem in ("hang_kernel", "illegal_address"):
        pytest.skip("builds like relu; nothing new for the link audit")
    if "load_inline" not in path.read_text():
        pytest.skip("builds nothing (plain torch): the runtime audit's case, not the link audit's")
    libs = _built_libraries(path)
    assert libs
    expect = CUDA_EXPECT.get(path.stem, set()) if "candidates" in path.parts else set()
    for lib in libs:
        assert _codes(link_audit(lib)) == expect, link_audit(lib)
