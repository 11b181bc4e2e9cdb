"""Is the candidate doing its own work, without reaching into the harness?

Two layers. Before anything runs, a static scan of the candidate's source refuses what a
kernel file has no business doing (introspection, process and thread control, patching
modules, reading files, library GEMM/conv calls in its C++). After one audited call, the
worker's runtime facts (aten ops and GPU kernels recorded by the profiler, the stream each
kernel ran on, threads, patched functions) are checked against what a kernel may use:
allocation, views, copies and its own kernels, on the current stream.
"""
from __future__ import annotations

import ast
import re
from typing import Any

ALLOWED_IMPORTS = {"torch", "math", "os", "typing", "functools", "itertools", "dataclasses", "collections",
                   "numpy", "enum", "abc", "operator", "warnings", "textwrap", "string", "__future__"}
FORBIDDEN_NAMES = {"__subclasses__", "__globals__", "__code__", "__builtins__", "__import__", "_getframe",
                   "f_back", "f_locals", "f_globals", "settrace", "setprofile", "get_objects", "get_referrers",
                   "exec", "eval", "compile", "open", "globals", "vars", "breakpoint", "get_inputs",
                   "get_init_inputs", "_is_profiler_enabled", "profiler", "_C"}
ALLOWED_OS_ATTRS = {"environ", "path", "cpu_count", "getenv"}
FORBIDDEN_NATIVE = [
    (r"cublas|cudnn|cufft|cusparse|cusolver", "calls a vendor library (cuBLAS/cuDNN/...) instead of its own kernel"),
    (r"\b(at|torch)::(matmul|mm|bmm|addmm|baddbmm|conv\w*|cudnn\w*|softmax|log_softmax|layer_norm|linear|"
     r"scaled_dot_product_attention|gelu|relu|max_pool\w*|native::\w+)\s*\(", "calls an ATen compute op from C++"),
    (r"\.(matmul|mm|bmm|softmax|conv2d)\s*\(", "calls a tensor compute method from C++"),
    (r"cudaStreamCreate|cudaStreamBeginCapture|getStreamFromPool", "creates its own CUDA stream"),
    (r"std::thread|std::async|pthread_create", "starts threads"),
    (r"\b(dlopen|dlsym|fork|popen|system|execv\w*)\s*\(", "loads code or starts processes"),
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


def scan_source(source: str) -> list[str]:
    """Reason codes (forbidden_source: ...) for a candidate file; empty when nothing is wrong."""
    try:
        tree = ast.parse(source)
    except SyntaxError as e:
        return [f"forbidden_source: does not parse: {e}"]
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
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in FORBIDDEN_NAMES:
            bad(f"uses {node.id!r}", node)
        elif isinstance(node, ast.Attribute):
            if node.attr in FORBIDDEN_NAMES:
                bad(f"uses .{node.attr}", node)
            if isinstance(node.value, ast.Name) and node.value.id == "os" and node.attr not in ALLOWED_OS_ATTRS:
                bad(f"uses os.{node.attr}", node)
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


def check_runtime(facts: dict[str, Any]) -> list[str]:
    """Reason codes from the worker's runtime facts of one audited call."""
    codes = []
    bad_ops = sorted({op for op in facts.get("aten_ops", []) if op.startswith("aten::") and _aten_name(op) not in ALLOWED_ATEN})
    if bad_ops:
        codes.append(f"torch_compute: forward calls torch compute ops {', '.join(bad_ops[:8])}")
    own = set(facts.get("own_kernels", []))
    marker = facts.get("marker_stream")
    foreign, other_stream = set(), set()
    for k in facts.get("kernels", []):
        name = k["name"]
        mine = any(re.search(rf"(^|[\s:]){re.escape(o)}\s*[<(]", name) or name == o for o in own)
        if not mine and "at::native::" not in name:
            foreign.add(name[:120])
        if marker is not None and k.get("stream") is not None and k["stream"] != marker:
            other_stream.add(f"{name[:60]} on stream {k['stream']}")
    if foreign:
        codes.append(f"library_kernel: GPU kernels that are not the candidate's own: {'; '.join(sorted(foreign)[:4])}")
    if other_stream:
        codes.append(f"other_stream: kernels off the current stream ({marker}): {'; '.join(sorted(other_stream)[:4])}")
    if facts.get("threads_added", 0) > 0:
        codes.append(f"threads: forward left {facts['threads_added']} new thread(s) running")
    if facts.get("tamper"):
        codes.append(f"tamper: patched {', '.join(facts['tamper'][:8])}")
    return codes
