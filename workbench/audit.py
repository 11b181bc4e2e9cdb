"""Is the candidate doing its own work, without reaching into the harness?

Two layers. Before anything runs, a static scan of the candidate's source refuses what a
kernel file has no business doing (introspection, process and thread control, patching
modules, reading files, library GEMM/conv calls in its C++). After one audited call, the
worker's runtime facts (aten ops and GPU kernels recorded by the profiler, the stream each
kernel ran on, threads, patched functions) are checked against what a kernel may use:
allocation, views, copies and its own kernels, on the current stream.

A third layer does not depend on spelling at all: `link_audit` reads the undefined dynamic
symbols of each built extension, which name every library function its C++ can call, and
refuses ATen compute below or through the dispatcher, record-function and dispatch-key guards,
the profiler, vendor libraries and process control. (The runtime guard for Python lives in
workbench/guard.py.)
"""
from __future__ import annotations

import ast
import functools
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

ALLOWED_IMPORTS = {"torch", "math", "os", "typing", "functools", "itertools", "dataclasses", "collections",
                   "numpy", "enum", "abc", "operator", "warnings", "textwrap", "string", "__future__"}
FORBIDDEN_NAMES = {"__subclasses__", "__globals__", "__code__", "__builtins__", "__import__", "_getframe",
                   "f_back", "f_locals", "f_globals", "settrace", "setprofile", "get_objects", "get_referrers",
                   "exec", "eval", "compile", "open", "globals", "vars", "breakpoint", "get_inputs",
                   "get_init_inputs", "_is_profiler_enabled", "profiler", "_C"}
ALLOWED_OS_ATTRS = {"environ", "path", "cpu_count", "getenv"}
# Names whose only use in a kernel file is to reach attributes the scan cannot read.
COMPUTED_ACCESS = {"getattr", "setattr", "delattr", "hasattr"}
INTROSPECTION_NAMES = {"attrgetter", "methodcaller", "__getattribute__", "__dict__", "vars", "dir",
                       "_profiler_enabled", "_is_profiler_enabled", "kineto", "record_function",
                       "_current_frames", "currentframe", "stack", "getframeinfo", "walk_stack", "extract_stack"}
# Dunder attributes a kernel file may read or call (super().__init__(), type(x).__name__).
ALLOWED_DUNDERS = {"__init__", "__name__", "__qualname__", "__doc__", "__class__", "__len__", "__call__",
                   "__future__", "__version__"}
FRAME_ATTRS = {"__traceback__", "tb_frame", "tb_next", "tb_lasti", "tb_lineno", "f_back", "f_locals", "f_globals",
               "f_builtins", "f_code", "f_lasti", "f_trace", "f_lineno", "gi_frame", "gi_code", "gi_yieldfrom",
               "cr_frame", "cr_code", "cr_await", "ag_frame", "ag_code", "ag_await", "cell_contents", "__closure__"}
# Attributes that hand a tensor's data to another library, whose compute the profiler cannot see
# (the worker also switches torch's NumPy bridge off; Python lists are the way round it).
DATA_BRIDGES = {"numpy", "from_numpy", "tolist", "from_dlpack", "to_dlpack", "frombuffer"}
# Attributes that hand a module of the process's internals to whoever reads them (torch.os, torch.sys, ...).
MODULE_ATTRS = {"sys", "os", "gc", "ctypes", "inspect", "builtins", "importlib", "subprocess", "socket",
                "traceback", "threading", "signal", "multiprocessing", "marshal", "pickle", "types", "weakref"}
FORBIDDEN_NATIVE = [
    (r"cublas|cudnn|cufft|cusparse|cusolver", "calls a vendor library (cuBLAS/cuDNN/...) instead of its own kernel"),
    (r"\b(cblas_\w+|[sdcz]gemm_|mkl_\w+|dnnl_\w+|LAPACKE_\w+)\s*\(", "calls a host vendor library (BLAS, MKL, oneDNN)"),
    (r"\b(at|torch)::(matmul|mm|bmm|addmm|baddbmm|conv\w*|cudnn\w*|softmax|log_softmax|layer_norm|linear|"
     r"scaled_dot_product_attention|gelu|relu|max_pool\w*|native::\w+)\s*\(", "calls an ATen compute op from C++"),
    (r"\.(matmul|mm|bmm|softmax|conv2d)\s*\(", "calls a tensor compute method from C++"),
    (r"cudaStreamCreate|cudaStreamBeginCapture|getStreamFromPool", "creates its own CUDA stream"),
    (r"std::thread|std::async|pthread_create", "starts threads"),
    (r"\b(dlopen|dlsym|fork|popen|system|execv\w*)\s*\(", "loads code or starts processes"),
    (r"\bat::(cpu|native|_ops|compositeexplicitautograd|compositeimplicitautograd)::",
     "calls ATen kernels below or through the dispatcher"),
    (r"\bat::cuda::(?!getCurrentCUDAStream|getDefaultCUDAStream|getStreamFromExternal|CUDAStream|"
     r"getCurrentDeviceProperties|getDeviceProperties|OptionalCUDAGuard|CUDAGuard|warp_size)\w+",
     "calls an ATen CUDA kernel or handle"),
    (r"RecordFunction|DispatchKeyGuard|AutoDispatchBelow|tls_set_dispatch_key|ForceDispatchKeyGuard",
     "switches off the profiler's view or the dispatcher"),
    (r"\b(torch::autograd::profiler|torch::profiler|kineto|cupti)", "touches the profiler"),
    (r"/proc/|/dev/shm", "reads process or harness state"),
]

# aten ops a candidate may call during forward: allocation, views, copies, casts, padding.
ALLOWED_ATEN = {
    "empty", "empty_like", "empty_strided", "zeros", "zeros_like", "ones", "ones_like", "full", "full_like",
    "fill_", "zero_", "new_empty", "new_zeros", "new_ones", "new_full", "new_empty_strided", "resize_",
    "view", "_unsafe_view", "reshape", "_reshape_alias", "as_strided", "permute", "transpose", "t", "expand",
    "expand_as", "squeeze", "unsqueeze", "flatten", "unflatten", "view_as", "contiguous", "clone", "copy_",
    "_to_copy", "to", "type_as", "detach", "alias", "lift_fresh", "slice", "select", "narrow", "split",
    "split_with_sizes", "chunk", "unbind", "constant_pad_nd", "pad", "item", "_local_scalar_dense",
    "is_nonzero", "size", "stride", "numel", "dim", "is_contiguous", "record_stream", "set_", "_has_compatible_shallow_copy_type",
    "resolve_conj", "resolve_neg", "_copy_from", "_copy_from_and_resize", "cat", "stack", "movedim", "swapaxes",
}


def _root(node: ast.AST) -> str | None:
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.value if not isinstance(node, ast.Call) else node.func
    return node.id if isinstance(node, ast.Name) else None


def scan_source(source: str, filename: str = "<candidate>") -> list[str]:
    """Reason codes for a candidate file: `syntax_error: <file>:<line>:<col>: <msg>` when it does not
    parse (an error, not a cheat), else forbidden_source: ... codes; empty when nothing is wrong."""
    try:
        tree = ast.parse(source, filename=filename)
    except SyntaxError as e:
        return [f"syntax_error: {filename}:{e.lineno}:{e.offset}: {e.msg}"]
    found: list[str] = []
    modules: set[str] = set()

    def bad(msg: str, node: ast.AST) -> None:
        found.append(f"forbidden_source: line {getattr(node, 'lineno', '?')}: {msg}")

    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if isinstance(node, ast.ImportFrom) and node.level:
                bad("relative import", node)
            for name in names:
                if name.split(".")[0] not in ALLOWED_IMPORTS:
                    bad(f"imports {name!r}", node)
            for a in node.names:
                modules.add((a.asname or a.name).split(".")[0])
                # `from torch import os`, `import torch.autograd.profiler`: attributes by another spelling
                parts = ([node.module or ""] if isinstance(node, ast.ImportFrom) else []) + a.name.split(".")
                for part in parts[1:]:
                    if why := _attribute_refusal(part):
                        bad(f"imports {'.'.join(parts)!r}: {why} {part!r}", node)
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and (node.id in FORBIDDEN_NAMES | INTROSPECTION_NAMES or _asks_profiler(node.id)):
            bad(f"uses {node.id!r}", node)
        elif isinstance(node, ast.Attribute):
            if why := _attribute_refusal(node.attr):
                bad(f"{why} .{node.attr}", node)
            if isinstance(node.value, ast.Name) and node.value.id == "os" and node.attr not in ALLOWED_OS_ATTRS:
                bad(f"uses os.{node.attr}", node)
            if isinstance(node.value, ast.Attribute) and (node.value.attr, node.attr) == ("autograd", "profiler"):
                bad("queries the profiler (autograd.profiler)", node)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in COMPUTED_ACCESS:
            name = node.args[1] if len(node.args) > 1 else None
            if not (isinstance(name, ast.Constant) and isinstance(name.value, str)):
                bad(f"{node.func.id} with a computed attribute name", node)
            elif why := _attribute_refusal(name.value):
                bad(f"{node.func.id} {why} {name.value!r}", node)
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) else [node.target]
            for t in targets:
                if isinstance(t, (ast.Attribute, ast.Subscript)) and _root(t) in modules and not _is_environ(t):
                    bad(f"assigns into module {_root(t)!r} (patching the harness or torch)", node)
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            if node.args and _root(node.args[0]) in modules:
                bad(f"{node.func.id} on module {_root(node.args[0])!r}", node)
        elif isinstance(node, ast.ClassDef):
            for base in node.bases:
                if isinstance(base, ast.Attribute) and base.attr == "Tensor":
                    bad("subclasses torch.Tensor (lazy or deferred outputs)", node)
        elif isinstance(node, ast.FunctionDef) and node.name in ("__torch_function__", "__torch_dispatch__"):
            bad(f"defines {node.name}", node)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _is_native_code(node.value):
            code = _strip_c_comments(node.value)
            for pattern, why in FORBIDDEN_NATIVE:
                if m := re.search(pattern, code):
                    bad(f"native source {why} ({m.group(0)!r})", node)
    return sorted(set(found))


def _asks_profiler(name: str) -> bool:
    """Whether the profiler is watching is none of a kernel's business, however the query is named."""
    low = name.lower()
    return "profiler" in low or "kineto" in low or "record_function" in low


def _attribute_refusal(attr: str) -> str | None:
    """Why reading attribute `attr` is refused, or None."""
    if attr in FORBIDDEN_NAMES or attr in INTROSPECTION_NAMES:
        return "uses"
    if _asks_profiler(attr):
        return "queries the profiler:"
    if attr in FRAME_ATTRS:
        return "reads a frame or traceback attribute"
    if attr in MODULE_ATTRS:
        return "reaches a process-internals module through an attribute"
    if attr in DATA_BRIDGES:
        return "hands tensor data to another library (its compute is not the candidate's kernel):"
    if attr.startswith("__") and attr.endswith("__") and attr not in ALLOWED_DUNDERS:
        return "reads the dunder attribute"
    return None


def _is_native_code(text: str) -> bool:
    """C/C++/CUDA source rather than a docstring or message."""
    return "#include" in text or "__global__" in text or ("{" in text and ";" in text)


def _strip_c_comments(code: str) -> str:
    return re.sub(r"//[^\n]*|/\*.*?\*/", " ", code, flags=re.S)


def _is_environ(t: ast.AST) -> bool:
    """os.environ[...] = ... is how kernels set build flags; allow it."""
    return isinstance(t, ast.Subscript) and isinstance(t.value, ast.Attribute) and t.value.attr == "environ"


_GLOBAL_RE = re.compile(r"\b__global__\b")
_NAME_CALL_RE = re.compile(r"(\w+)\s*\(")
# Qualifiers that may sit between __global__ and the kernel's name, each with a parenthesised argument.
_KERNEL_ATTRS = {"__launch_bounds__", "__cluster_dims__", "__maxnreg__", "__block_size__", "__attribute__"}


def _after_group(text: str, open_at: int) -> int:
    """Index just past the parenthesised group that opens at text[open_at]."""
    depth = 0
    for i in range(open_at, len(text)):
        depth += {"(": 1, ")": -1}.get(text[i], 0)
        if depth == 0:
            return i + 1
    return len(text)


def kernel_names(cuda_source: str) -> set[str]:
    """Names of the __global__ functions a source defines (templates and launch attributes included)."""
    names = set()
    for m in _GLOBAL_RE.finditer(cuda_source):
        pos = m.end()
        while n := _NAME_CALL_RE.search(cuda_source, pos):  # the first name followed by "(" that is no attribute
            if n.group(1) not in _KERNEL_ATTRS:
                names.add(n.group(1))
                break
            pos = _after_group(cuda_source, n.end() - 1)
    return names


def _aten_name(op: str) -> str:
    return op.split("::", 1)[1].split(".")[0] if op.startswith("aten::") else op


def _is_own(kernel_name: str, own: set[str]) -> bool:
    return any(re.search(rf"(^|[\s:]){re.escape(o)}\s*[<(]", kernel_name) or kernel_name == o for o in own)


def _compute_ops(call: dict[str, Any]) -> set[str]:
    return {op for op in call.get("aten_ops", []) if op.startswith("aten::") and _aten_name(op) not in ALLOWED_ATEN}


def _kernel_sets(call: dict[str, Any]) -> tuple[set[str], set[str]]:
    """(own kernel names, foreign kernel names) of one call; torch's own fill/copy kernels excluded."""
    own = set(call.get("own_kernels", []))
    mine, foreign = set(), set()
    for k in call.get("kernels", []):
        if _is_own(k["name"], own):
            mine.add(k["name"])
        elif "at::native::" not in k["name"]:
            foreign.add(k["name"])
    return mine, foreign


def check_runtime(facts: dict[str, Any] | list[dict[str, Any]], policy: str = "strict") -> list[str]:
    """Reason codes from the worker's runtime facts: one audited call (a dict) or every audited
    call (a list of dicts, same format), which must then also agree with each other.
    policy "partial" lets torch compute part of the work but requires the candidate's own
    kernels in every call (`no_own_kernel:`, a cheat code)."""
    if policy not in ("strict", "partial"):
        raise ValueError(f"policy must be 'strict' or 'partial', not {policy!r}")
    calls = facts if isinstance(facts, list) else [facts]
    codes: list[str] = []
    for i, call in enumerate(calls):
        for code in _check_call(call, policy, f"call {i}: " if len(calls) > 1 else ""):
            if code not in codes:
                codes.append(code)
    return codes + consistent(calls)


def _check_call(facts: dict[str, Any], policy: str, label: str) -> list[str]:
    codes = []
    bad_ops = sorted(_compute_ops(facts))
    if bad_ops and policy == "strict":
        codes.append(f"torch_compute: {label}forward calls torch compute ops {', '.join(bad_ops[:8])}")
    mine, foreign = _kernel_sets(facts)
    if foreign and policy == "strict":
        codes.append(f"library_kernel: {label}GPU kernels that are not the candidate's own: {'; '.join(sorted(n[:120] for n in foreign)[:4])}")
    if policy == "partial" and facts.get("kernels") is not None and facts.get("own_kernels") and not mine:
        codes.append(f"no_own_kernel: {label}none of the candidate's own kernels ran (it declares {', '.join(sorted(facts['own_kernels'])[:4])})")
    marker = facts.get("marker_stream")
    other_stream = {f"{k['name'][:60]} on stream {k['stream']}" for k in facts.get("kernels", [])
                    if marker is not None and k.get("stream") is not None and k["stream"] != marker}
    if other_stream:
        codes.append(f"other_stream: {label}kernels off the current stream ({marker}): {'; '.join(sorted(other_stream)[:4])}")
    if facts.get("threads_added", 0) > 0:
        codes.append(f"threads: {label}forward left {facts['threads_added']} new thread(s) running")
    if facts.get("tamper"):
        codes.append(f"tamper: {label}patched {', '.join(facts['tamper'][:8])}")
    return codes


def consistent(calls: list[dict[str, Any]]) -> list[str]:
    """Codes for a candidate whose work differs between audited calls (honest only while watched,
    or only on the first call): its compute ops or its kernels must be the same set every time."""
    if len(calls) < 2:
        return []
    codes = []
    ops0, (mine0, foreign0) = _compute_ops(calls[0]), _kernel_sets(calls[0])
    for i, call in enumerate(calls[1:], start=1):
        ops, (mine, foreign) = _compute_ops(call), _kernel_sets(call)
        if ops != ops0:
            codes.append(f"torch_compute: the torch compute ops of call {i} differ from call 0's "
                         f"(only in call {i}: {sorted(ops - ops0)[:6]}; only in call 0: {sorted(ops0 - ops)[:6]})")
        if mine != mine0 or foreign != foreign0:
            diff = sorted((mine ^ mine0) | (foreign ^ foreign0))
            codes.append(f"library_kernel: call {i} ran a different set of kernels than call 0: {'; '.join(n[:80] for n in diff[:4])}")
    return codes


def device_share(call: dict[str, Any]) -> dict[str, float]:
    """Fractions of one call's kernel time spent in the candidate's own kernels and in torch's."""
    own = set(call.get("own_kernels", []))
    total = mine = 0.0
    for k in call.get("kernels", []):
        dur = float(k.get("dur_us") or 0.0)
        total += dur
        mine += dur if _is_own(k["name"], own) else 0.0
    if total <= 0:
        return {"own": 0.0, "torch": 0.0}
    return {"own": mine / total, "torch": (total - mine) / total}


# -- link audit: what the built C++ can call, read from the library itself ----------------------------
def undefined_symbols(library: str | Path, use_nm: bool | None = None) -> list[str]:
    """The library functions an extension calls: its undefined dynamic symbols, as qualified names
    without arguments or template arguments (`at::_ops::mm::call`, `dlopen`). Uses `nm -D -C` when
    binutils is present (use_nm=None), else reads the ELF .dynsym table itself."""
    if use_nm is None:
        use_nm = shutil.which("nm") is not None
    if use_nm:
        out = subprocess.run(["nm", "-D", "--undefined-only", "-C", str(library)], capture_output=True, text=True,
                             check=True).stdout
        names = [line.split(None, 1)[1] if line.split(None, 1)[0] == "U" else line.split()[-1]
                 for line in out.splitlines() if line.strip()]
        return sorted({_plain_name(n.split("@")[0]) for n in names} - {""})
    return sorted({_demangled_prefix(n) for n in elf_undefined(Path(library))} - {""})


def elf_undefined(library: Path) -> list[str]:
    """Raw names of the undefined symbols in an ELF shared object's .dynsym (no binutils needed)."""
    data = library.read_bytes()
    if data[:4] != b"\x7fELF":
        raise ValueError(f"{library}: not an ELF file")
    is64, endian = data[4] == 2, "<" if data[5] == 1 else ">"
    if is64:
        shoff, = struct.unpack_from(endian + "Q", data, 0x28)
        shentsize, shnum = struct.unpack_from(endian + "HH", data, 0x3A)
        sec_fmt, sym_fmt, sym_size = "IIQQQQIIQQ", "IBBHQQ", 24
    else:
        shoff, = struct.unpack_from(endian + "I", data, 0x20)
        shentsize, shnum = struct.unpack_from(endian + "HH", data, 0x2E)
        sec_fmt, sym_fmt, sym_size = "IIIIIIIIII", "IIIBBH", 16
    sections = [struct.unpack_from(endian + sec_fmt, data, shoff + i * shentsize) for i in range(shnum)]
    names = []
    for sec in sections:
        if sec[1] != 11:  # SHT_DYNSYM
            continue
        offset, size, link = sec[4], sec[5], sec[6]
        strtab = sections[link][4]
        for pos in range(offset + sym_size, offset + size, sym_size):  # entry 0 is the null symbol
            sym = struct.unpack_from(endian + sym_fmt, data, pos)
            st_name, shndx = sym[0], (sym[3] if is64 else sym[5])
            if shndx == 0 and st_name:
                end = data.index(b"\0", strtab + st_name)
                names.append(data[strtab + st_name:end].decode("ascii", "replace"))
    return names


def _plain_name(demangled: str) -> str:
    """`ns::f<T>(args) const` -> `ns::f`: the qualified name only, as _demangled_prefix gives it."""
    text, depth, out = demangled.strip(), 0, []
    if text.startswith("typeinfo") or text.startswith("vtable") or text.startswith("VTT"):
        text = text.split(" for ", 1)[-1]
    for ch in text:
        if ch == "<":
            depth += 1
        elif ch == ">":
            depth -= 1
        elif ch == "(" and depth == 0:
            break
        elif depth == 0:
            out.append(ch)
    words = "".join(out).split()  # a template function's name is preceded by its return type
    return words[-1].lstrip("*&") if words else ""


def _demangled_prefix(name: str) -> str:
    """The qualified name of an Itanium-mangled symbol (`_ZN2at4_ops2mm4callE...` -> `at::_ops::mm::call`),
    enough to match namespaces and functions; a plain C name is returned as is."""
    if name.startswith("_ZTI") or name.startswith("_ZTV") or name.startswith("_ZTS"):
        name = "_Z" + name[4:]  # typeinfo / vtable / typeinfo name of a class
    if not name.startswith("_Z"):
        return name
    s, i, parts = name, 2, []
    nested = s.startswith("N", i)
    if nested:
        i += 1
        while i < len(s) and s[i] in "rVKRO":
            i += 1

    def skip_template(j: int) -> int:  # s[j] == "I": skip to just past the matching E
        depth = 0
        while j < len(s):
            c = s[j]
            if c.isdigit():
                k = j
                while k < len(s) and s[k].isdigit():
                    k += 1
                j = k + int(s[j:k])
                continue
            if c in "INLXJ":
                depth += 1
            elif c == "E":
                depth -= 1
                if depth == 0:
                    return j + 1
            j += 1
        return j

    while i < len(s):
        c = s[i]
        if s.startswith("St", i):
            parts.append("std")
            i += 2
        elif c.isdigit():
            k = i
            while k < len(s) and s[k].isdigit():
                k += 1
            n = int(s[i:k])
            parts.append(s[k:k + n])
            i = k + n
        elif c == "I":
            i = skip_template(i)
        elif c in "CD" and i + 1 < len(s) and s[i + 1] in "0123I" and parts:
            parts.append(("~" if c == "D" else "") + parts[-1])
            i += 2
        else:
            break
        if not nested:
            break
    return "::".join(parts) if parts else name


@functools.lru_cache(maxsize=1)
def _aten_ops() -> tuple[dict[str, str], frozenset[str]]:
    """({at::_ops class name: aten op name}, every aten op name), from torch's registered schemas."""
    import torch

    classes, bases = {}, set()
    for schema in torch._C._jit_get_all_schemas():
        if schema.name.startswith("aten::"):
            base = schema.name[len("aten::"):]
            bases.add(base)
            classes[f"{base}_{schema.overload_name}" if schema.overload_name else base] = base
    return classes, frozenset(bases)


# (code, pattern on the qualified name, why). Order matters only for the message.
# Not `syscall`: every CUDA extension that includes torch's c10/cuda headers imports it (measured on the
# H200: all 30 honest CUDA builds were refused for it); raw system calls are the sandbox's to confine.
_PROCESS = ("dlopen|dlsym|dlvsym|dlmopen|fork|vfork|execl|execlp|execle|execv|execve|execvp|execvpe|fexecve|system|"
            "popen|posix_spawn|posix_spawnp|ptrace|process_vm_readv|process_vm_writev|socket|connect|bind|"
            "listen|accept|accept4|prctl|unshare|setns|mount|umount|umount2|kill|tgkill|tkill|setsid|"
            "pthread_create|clone|clone3|cuModuleLoad\\w*|cuLibraryLoad\\w*|cudaLibraryLoad\\w*|nvrtc\\w*")
# BLAS levels 1-3 and the common LAPACK drivers, as Fortran (`sgemm_`) and upper-case (`SGEMM`) symbols.
_BLAS_NAMES = ("gemm|gemm3m|gemmt|gemv|gbmv|symm|symv|hemm|hemv|syrk|syr2k|herk|her2k|trmm|trmv|trsm|trsv|ger|geru|"
               "gerc|axpy|axpby|dot|dotu|dotc|scal|copy|swap|nrm2|asum|rot|rotg|rotm|getrf|getrs|gesv|gesvd|gesdd|"
               "potrf|potrs|posv|geqrf|orgqr|syev|syevd|heev|heevd|geev|gels|gelsd")
_HOST_BLAS = rf"[sdcz](?:{_BLAS_NAMES})_?|[SDCZ](?:{_BLAS_NAMES.upper()})_?|i[sdcz]amax_?|[sd]z?asum_?|[sd]cnrm2_?"
LINK_RULES = [
    ("torch_compute", re.compile(r"^at::native::"), "calls an ATen native kernel"),
    ("torch_compute", re.compile(r"^at::(compositeexplicitautograd|compositeimplicitautograd|"
                                 r"compositeexplicitautogradnonfunctional)::"), "calls an ATen composite kernel directly"),
    ("torch_compute", re.compile(r"^c10::Dispatcher::(findSchema|findOp|findSchemaOrThrow|callBoxed)|"
                                 r"^c10::OperatorHandle::|^torch::jit::"), "looks up or calls ATen ops by name"),
    ("forbidden_source", re.compile(r"^at::(enableRecordFunction|isRecordFunctionEnabled|\w*RecordFunction\w*|"
                                    r"add\w*Callback|remove\w*Callback|clear\w*Callbacks|hasCallbacks)\b"),
     "switches record functions (the profiler's view) off or hooks them"),
    # ExcludeDispatchKeyGuard is allowed: torch::empty_like and the other torch:: factories hold one
    # (AutoDispatchBelowADInplaceOrView, inline) in every honest extension, and which keys it excludes
    # is an argument the symbol does not show. Excluding keys does not hide ops from record functions.
    ("forbidden_source", re.compile(r"^c10::impl::(IncludeDispatchKeyGuard|ForceDispatchKeyGuard|"
                                    r"tls_set_dispatch_key_excluded|tls_set_dispatch_key_included|"
                                    r"_force_tls_local_dispatch_key_set)"), "changes which dispatch keys run"),
    ("forbidden_source", re.compile(r"^(torch::autograd::profiler|torch::profiler|libkineto|at::Kineto|cupti|Cupti)"),
     "touches the profiler"),
    ("library_kernel", re.compile(r"^(cublas|cublasLt|cudnn|cufft|cusparse|cusolver|curand|nccl)\w*$|"
                                  r"^at::cuda::(getCurrentCUDA\w*Handle|blas::|getCurrentCUDABlasLtHandle)|"
                                  r"^at::native::getCudnnHandle"), "calls a vendor library"),
    # The host's vendor libraries, which torch's CPU library exports (MKL's BLAS and LAPACK, oneDNN,
    # FBGEMM, XNNPACK):
    # `extern "C" void sgemm_(...)` links against libtorch_cpu without naming any torch API.
    ("library_kernel", re.compile(rf"^({_HOST_BLAS})$|^(cblas_|LAPACKE_|mkl_|MKL_|dnnl_|mkldnn_|openblas_|xnn_|"
                                  r"pytorch_qnnp_|qnnp_)\w*$|^(at::native::)?(mkldnn|dnnl|ideep)::|^fbgemm::"),
     "calls a host vendor library (BLAS, LAPACK, MKL, oneDNN, FBGEMM, XNNPACK)"),
    ("forbidden_source", re.compile(rf"^({_PROCESS})$|^std::(thread|jthread)::"),
     "loads code, controls processes, opens sockets or starts threads"),
]


def link_audit(library: str | Path, policy: str = "strict", use_nm: bool | None = None) -> list[str]:
    """Reason codes for what a built extension's C++ may not call, read from its undefined dynamic
    symbols (independent of how the source spells it). policy "partial" allows ATen compute through
    the dispatcher (at::_ops::<op>::call); everything else stays forbidden."""
    if policy not in ("strict", "partial"):
        raise ValueError(f"policy must be 'strict' or 'partial', not {policy!r}")
    library = Path(library)
    classes, aten = _aten_ops()
    found: dict[tuple[str, str], list[str]] = {}
    for sym in undefined_symbols(library, use_nm):
        hit = None
        if m := re.match(r"^at::_ops::(\w+)::(call|redispatch)$", sym):
            op = classes.get(m[1], m[1])
            if m[2] == "redispatch":
                hit = ("torch_compute", "redispatches an ATen op (skips dispatch keys)")
            elif op not in ALLOWED_ATEN and policy == "strict":
                hit = ("torch_compute", "calls ATen compute through the dispatcher")
        elif m := re.match(r"^at::(cpu|cuda|meta|mps)::(\w+)$", sym):
            op = re.sub(r"_(outf|out|symint)$", "", m[2])
            if op in aten or op.rstrip("_") in aten:
                hit = ("torch_compute", f"calls an ATen {m[1]} structured kernel (below the dispatcher)")
        if hit is None:
            hit = next(((code, why) for code, pattern, why in LINK_RULES if pattern.search(sym)), None)
        if hit:
            found.setdefault(hit, []).append(sym)
    return [f"{code}: extension {library.name} {why}: {', '.join(sorted(syms)[:6])}"
            for (code, why), syms in sorted(found.items())]


def main(argv: list[str] | None = None) -> int:
    """`python -m workbench.audit PATH...`: link-audit every built extension (.so) under the paths."""
    import argparse
    import time

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("paths", nargs="+", type=Path, help=".so files or directories holding them (a build cache)")
    parser.add_argument("--policy", choices=("strict", "partial"), default="strict")
    parser.add_argument("--elf", action="store_true", help="read symbols with the built-in ELF reader, not nm")
    args = parser.parse_args(argv)
    libraries = sorted({so for p in args.paths for so in ([p] if p.is_file() else p.rglob("*.so"))})
    if not libraries:
        print("no .so files under " + ", ".join(map(str, args.paths)))
        return 2
    refused = 0
    for so in libraries:
        t = time.perf_counter()
        codes = link_audit(so, args.policy, use_nm=False if args.elf else None)
        ms = (time.perf_counter() - t) * 1e3
        refused += bool(codes)
        print(f"{'REFUSED' if codes else 'ok     '} {ms:6.1f} ms  {so}")
        for c in codes:
            print(f"          {c}")
    print(f"{len(libraries)} libraries, {refused} refused ({args.policy})")
    return 1 if refused else 0


if __name__ == "__main__":
    raise SystemExit(main())
