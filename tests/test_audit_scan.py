"""The static scan: every honest candidate, seed and reference passes; each introspection route,
computed attribute access, module-valued attribute and native bypass is refused; a syntax error is
reported as one (file, line, column), not as a cheat."""
from pathlib import Path

import pytest

from candidate_catalog import CANDIDATES_DIR, catalog
from workbench.audit import scan_source

ROOT = Path(__file__).resolve().parents[1]
SEEDS = sorted(ROOT.glob("problems/*/seeds/*.py"))
HONEST = [c.path for t in ("cpu", "cuda") for c in catalog(t) if c.honest]
STATIC_CHEATS = [c.path for t in ("cpu", "cuda") for c in catalog(t) if "forbidden_source" in c.expect]


@pytest.mark.parametrize("path", SEEDS + HONEST + sorted(ROOT.glob("problems/*/reference.py")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_honest_sources_pass(path):
    assert scan_source(path.read_text(), str(path)) == []


def test_there_are_seeds_and_honest_candidates():
    assert len(SEEDS) >= 20 and len(HONEST) >= 10


@pytest.mark.parametrize("path", STATIC_CHEATS, ids=lambda p: p.stem)
def test_cheats_that_expect_the_scan_are_refused(path):
    found = scan_source(path.read_text(), str(path))
    assert found and all(c.startswith(("forbidden_source:", "syntax_error:")) for c in found), found


REFUSED = {
    "getattr_computed": "def f(e):\n    return getattr(e, '__trace' + 'back__')",
    "getattr_frame_literal": "def f(e):\n    return getattr(e, 'tb_frame')",
    "setattr_computed": "import torch\nname = 'x'\nsetattr(torch.nn, name, 1)",
    "hasattr_computed": "def f(o, n):\n    return hasattr(o, n)",
    "attrgetter": "import operator\nf = operator.attrgetter('f_back')",
    "methodcaller": "from operator import methodcaller\nf = methodcaller('x')",
    "getattribute": "def f(o):\n    return o.__getattribute__('x')",
    "dunder_dict": "def f(o):\n    return o.__dict__",
    "vars": "def f(o):\n    return vars(o)",
    "dir": "def f(o):\n    return dir(o)",
    "dunder_read": "def f(o):\n    return o.__reduce_ex__(2)",
    "mro": "def f(o):\n    return o.__class__.__mro__",
    "traceback_attr": "try:\n    1 / 0\nexcept Exception as e:\n    t = e.__traceback__",
    "frame_back": "def f(fr):\n    return fr.f_back.f_locals",
    "tb_next": "def f(tb):\n    return tb.tb_next",
    "gi_frame": "def f(g):\n    return g.gi_frame",
    "closure_cells": "def f(fn):\n    return fn.__closure__[0].cell_contents",
    "torch_os": "import torch\ntorch.os.system('id')",
    "torch_sys": "import torch\nm = torch.sys.modules",
    "any_gc": "import torch\nobjs = torch.utils.gc.get_objects",
    "builtins_attr": "import torch\nb = torch.nn.builtins",
    "importlib_attr": "import torch\ntorch.importlib.import_module('x')",
    "from_torch_import_os": "from torch import os",
    "import_profiler": "import torch.autograd.profiler",
    "profiler_enabled": "import torch\nif torch.autograd._profiler_enabled():\n    pass",
    "is_profiler_enabled": "import torch\nx = torch._C._autograd._is_profiler_enabled()",
    "autograd_profiler": "import torch\nx = torch.autograd.profiler",
    "record_function": "import torch\nwith torch.profiler.record_function('x'):\n    pass",
    "kineto": "import torch\nx = torch.autograd.kineto_available",
    "native_cpu_mm": 'CPP = """#include <torch/extension.h>\nat::Tensor f(at::Tensor a, at::Tensor b) { return at::cpu::mm(a, b); }"""',
    "native_record_guard": 'CPP = """#include <torch/extension.h>\nat::Tensor f(at::Tensor a) { at::DisableRecordFunctionGuard g; return at::einsum("ij->ij", {a}); }"""',
    "native_ops": 'CPP = """#include <torch/extension.h>\nat::Tensor f(at::Tensor a) { return at::_ops::relu::call(a); }"""',
    "native_cuda_kernel": 'CPP = """#include <torch/extension.h>\nat::Tensor f(at::Tensor a, at::Tensor b) { return at::cuda::mm(a, b); }"""',
    "native_dispatch_guard": 'CPP = """#include <torch/extension.h>\nvoid f() { c10::impl::ExcludeDispatchKeyGuard g(c10::DispatchKeySet()); }"""',
    "native_profiler": 'CPP = """#include <torch/extension.h>\nvoid f() { torch::profiler::impl::x(); }"""',
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused(name):
    found = scan_source(REFUSED[name])
    assert found and all(c.startswith("forbidden_source:") for c in found), found


ALLOWED = {
    "environ_write": "import os\nos.environ['TORCH_CUDA_ARCH_LIST'] = '9.0'",
    "getenv": "import os\nflag = os.getenv('WORKBENCH_X', '0')",
    "literal_getattr": "def f(o):\n    return getattr(o, 'weight', None)",
    "super_init": "import torch.nn as nn\nclass M(nn.Module):\n    def __init__(self):\n        super().__init__()",
    "type_name": "def f(x):\n    return type(x).__name__",
    "os_path": "import os\np = os.path.join('a', 'b')",
    "cuda_stream_getters": 'CPP = """#include <torch/extension.h>\nvoid f() { auto s = at::cuda::getCurrentCUDAStream(); auto t = c10::cuda::getCurrentCUDAStream(); }"""',
}


@pytest.mark.parametrize("name", sorted(ALLOWED))
def test_allowed(name):
    assert scan_source(ALLOWED[name]) == []


def test_syntax_error_is_its_own_verdict():
    found = scan_source("import torch\ndef f(:\n    pass\n", "cand.py")
    assert len(found) == 1 and found[0].startswith("syntax_error: cand.py:2:7: "), found
    path = CANDIDATES_DIR / "cpu" / "syntax_error.py"
    assert scan_source(path.read_text(), str(path))[0].startswith(f"syntax_error: {path}:")
