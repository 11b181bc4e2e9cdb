"""Prompt text for the search, and parsing of model replies (ideas, code).

Inputs are plain dicts and strings, so this module depends on nothing else in the package.
Parsers never raise: a reply the search cannot use yields [] or None.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
import warnings

Messages = list[dict[str, str]]

# The six categories ideas are drawn from; the hints fit the target (name, CUDA hint, CPU hint).
_CATEGORIES: tuple[tuple[str, str, str], ...] = (
    ("memory access",
     "coalescing, shared-memory tiling, vectorized loads, cache reuse, fewer passes over memory",
     "contiguous access, cache blocking, vectorized loads, fewer passes over memory"),
    ("asynchronous operations and latency hiding",
     "cp.async / TMA, double buffering, overlapping loads with compute",
     "software prefetching, software pipelining, overlapping loads with arithmetic"),
    ("data type and precision",
     "lower-precision storage or tensor cores where the tolerance allows, mixed accumulation",
     "lower-precision storage where the tolerance allows, wider accumulators only where needed"),
    ("compute and instruction",
     "fused operations, warp shuffles, fast intrinsics, fewer instructions per element",
     "fused operations, SIMD-friendly loops the compiler vectorizes, fewer instructions per element"),
    ("parallelism and occupancy",
     "work per thread and block, grid shape, register and shared-memory budget",
     "splitting the work over threads (at::parallel_for), chunk sizes, per-thread working sets"),
    ("control flow and loops",
     "unrolling, removing branches, specializing to the fixed sizes, loop order",
     "unrolling, removing branches, specializing to the fixed sizes, loop order"),
)
IDEA_CATEGORIES: tuple[tuple[str, str], ...] = tuple((name, cuda) for name, cuda, _ in _CATEGORIES)
TARGETS = ("cuda", "cpu")

SYSTEM_PROMPT = (
    "You are an expert CUDA performance engineer. You make PyTorch operators faster by writing "
    "custom CUDA kernels, and you reason from measurements, not guesses."
)
SYSTEM_PROMPT_CPU = (
    "You are an expert C++ performance engineer. You make PyTorch operators faster on the CPU by "
    "writing custom C++ kernels, and you reason from measurements, not guesses."
)

# What a CPU candidate looks like (docs/conventions.md describes the CUDA pattern).
CPU_CONVENTIONS = """A candidate is a Python file defining `class ModelNew(nn.Module)`, whose work is done by C++
compiled with `torch.utils.cpp_extension.load_inline(name=..., cpp_sources=..., functions=[...],
extra_cflags=["-O3"])`:
- `cpp_sources` only: one C++ string that begins with `#include <torch/extension.h>`, checks its
  inputs with `TORCH_CHECK` (CPU tensors, dtype, contiguity), allocates outputs with
  `torch::empty` / `torch::empty_like`, and computes through raw pointers (`data_ptr<float>()`);
- no other source kinds, no device code: this machine runs the kernel on its CPU cores;
- torch only for allocation, views and dtype casts: no torch, BLAS or reference compute;
- mark the values worth sweeping on the line that defines them: `#define CHUNK 64  // tune: 16, 64, 256`,
  or `ROWS = 4  # tune: 1, 2, 4` for a Python constant."""

# Reports fed back for repair keep their head (the first compiler error is the useful one)
# and their tail (the summary), within this many characters.
REPORT_CHARS = 6000


def _check_target(target: str) -> None:
    if target not in TARGETS:
        raise ValueError(f"target {target!r}: expected one of {', '.join(TARGETS)}")


def system_prompt(target: str) -> str:
    _check_target(target)
    return SYSTEM_PROMPT if target == "cuda" else SYSTEM_PROMPT_CPU


def _fence(code: str, lang: str = "python") -> str:
    # One backtick more than the longest run inside, so embedded fences cannot close it.
    longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
    ticks = "`" * max(3, longest + 1)
    return f"{ticks}{lang}\n{code.rstrip()}\n{ticks}"


def _facts_text(facts: dict) -> str:
    if not facts:
        return "(no device facts measured)"
    return "\n".join(f"- {k}: {v}" for k, v in facts.items())


def _speedup_text(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}x"


def _best_text(best: list[dict]) -> str:
    if not best:
        return "No correct kernel yet: the reference above is the only implementation."
    blocks = []
    for i, b in enumerate(best, 1):
        header = (
            f"### Kernel {i}: {b['ms']:.4f} ms, speedup {_speedup_text(b.get('speedup_eager'))} "
            f"vs torch eager, {_speedup_text(b.get('speedup_compile'))} vs torch.compile"
        )
        blocks.append(f"{header}\n{_fence(b['source'])}")
    return "\n\n".join(blocks)


def _history_text(history: list[dict]) -> str:
    """Every idea with the outcome of each of its implementations (a history entry may also
    carry a single summary `outcome`)."""
    if not history:
        return "None yet: this is the first round."
    lines = []
    for h in history:
        idea = " ".join(str(h["idea"]).split())  # one line each, so the list stays readable
        who = f", {h['model']}" if h.get("model") else ""
        lines.append(f"- [round {h['round']}{who}] {idea}")
        results = h.get("results")
        if results:
            lines.extend(f"  -> {r['candidate']}: {r['outcome']}" for r in results)
        else:
            speedup = h.get("speedup")
            measured = f", speedup {speedup:.3f}x vs eager" if speedup is not None else ""
            lines.append(f"  -> outcome: {h.get('outcome') or 'not implemented yet'}{measured}")
    return "\n".join(lines)


def idea_prompt(
    problem_source: str, gpu_facts: dict, best: list[dict], history: list[dict], k: int,
    target: str = "cuda", profile_text: str = "",
) -> Messages:
    """Messages asking for `k` new optimization ideas in natural language, conditioned on
    every earlier idea and its measured outcome, on the current best kernels and (when given)
    on profiler counters of those kernels."""
    system = system_prompt(target)
    col = 1 if target == "cuda" else 2
    categories = "\n".join(f"{i}. {c[0]}: {c[col]}" for i, c in enumerate(_CATEGORIES, 1))
    what, device = ("a CUDA implementation", "GPU") if target == "cuda" else ("a C++ CPU implementation", "CPU")
    profile = f"\n\n## Profile of the best kernels (one call each)\n{profile_text.strip()}" if profile_text.strip() else ""
    user = f"""We are writing {what} of this PyTorch reference to run faster than it.

## Reference (KernelBench format)
{_fence(problem_source)}

## {device}
{_facts_text(gpu_facts)}

## Best correct kernels so far (time per call; speedup = reference time / kernel time)
{_best_text(best)}{profile}

## Ideas tried so far, with the measured outcome of every implementation
{_history_text(history)}

## Your task
Propose exactly {k} distinct optimization ideas for the next round. Each idea must differ from
every idea tried above (learn from their outcomes: build on what helped, avoid what failed) and
from the others you propose. Draw on these categories:
{categories}

Describe each idea in natural language, in two to four sentences: what to change and why it
should be faster on this {device} at these sizes. No code. Answer with a numbered list of exactly
{k} items ("1. ...", "2. ...") and nothing else."""
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def implementation_prompt(
    problem_source: str,
    idea: str,
    seed_source: str | None,
    gpu_facts: dict,
    conventions_text: str,
    target: str = "cuda",
) -> Messages:
    """Messages asking for one complete candidate file that implements `idea`, starting
    from `seed_source` (a correct kernel) when there is one. On the cpu target the
    conventions are CPU_CONVENTIONS whatever `conventions_text` says."""
    system = system_prompt(target)
    seed = f"## Starting point: a correct kernel you may build on\n{_fence(seed_source)}\n\n" if seed_source else ""
    if target == "cuda":
        device, conventions = "GPU", conventions_text.strip()
        rules = """doing its work in its own CUDA kernels
compiled with `torch.utils.cpp_extension.load_inline`:
- follow the fast-build pattern: plain CUDA in `cuda_sources` (no torch headers), the torch
  wrapper in `cpp_sources`, `no_implicit_headers=True`, launches on the current stream,
  `cudaGetLastError()` checked after each launch;
- keep all CUDA and C++ source inside the file as Python strings (no separate files or blocks);"""
    else:
        device, conventions = "CPU", CPU_CONVENTIONS
        rules = """doing its work in its own C++ code compiled
with `torch.utils.cpp_extension.load_inline` from `cpp_sources` alone:
- keep all C++ source inside the file as a Python string (no separate files or blocks);"""
    user = f"""Write a faster replacement for this PyTorch reference.

## Reference (KernelBench format)
{_fence(problem_source)}

## {device}
{_facts_text(gpu_facts)}

{seed}## Optimization idea to implement
{idea.strip()}

## Conventions the file must follow
{conventions}

## What to return
ONE complete, self-contained Python file that defines `class ModelNew(nn.Module)` with the
same constructor and forward signature as `Model`, {rules}
- mark the values worth sweeping on the line that defines them, `// tune: a, b, c` for a
  `#define` and `# tune: a, b, c` for a Python constant;
- no torch or library compute: torch only for allocation, views and dtype casts.
Reply with the whole file in a single ```python code block."""
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _clip_report(report: str, limit: int = REPORT_CHARS) -> str:
    if len(report) <= limit:
        return report
    head = limit * 2 // 3
    tail = limit - head
    return f"{report[:head]}\n[... {len(report) - limit} characters cut ...]\n{report[-tail:]}"


def repair_prompt(
    problem_source: str, candidate_source: str, failure_kind: str, report: str, target: str = "cuda"
) -> Messages:
    """Messages feeding back why a candidate failed (compiler error, mismatch report, ...)
    and asking for a fixed complete file."""
    system = system_prompt(target)
    keep = ("fast-build pattern, `// tune:` / `# tune:` marks, no torch compute" if target == "cuda"
            else "C++ in `cpp_sources` only, `// tune:` / `# tune:` marks, no torch compute")
    user = f"""This candidate replacement for the PyTorch reference below failed: {failure_kind}.

## Reference (KernelBench format)
{_fence(problem_source)}

## Candidate
{_fence(candidate_source)}

## What the evaluator reported
{_fence(_clip_report(report), "text")}

Find the cause and fix it, keeping the candidate's optimization where you can. Keep the same
conventions ({keep}). Reply with the whole fixed file, defining `class ModelNew`, in a single
```python code block."""
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def first_error_line(build_log: str) -> str:
    """The compiler's first error line (the one worth reading), else the log's last line."""
    lines = [ln.strip() for ln in build_log.splitlines() if ln.strip()]
    for ln in lines:
        if re.search(r"\berror\b", ln, re.IGNORECASE) and not ln.lower().startswith(("ninja:", "subprocess")):
            return ln[:300]
    return lines[-1][:300] if lines else "no compiler output"


def outcome_text(status: str | None, ms: float | None = None, speedup_eager: float | None = None,
                 reasons: list[str] | None = None, build_log: str = "", error: str = "") -> str:
    """One line for one implementation: time when correct, else why it failed."""
    if status is None:
        return f"no code ({error})" if error else "not judged yet"
    if status == "correct" and ms:
        return f"correct, {ms:.4f} ms" + (f" ({speedup_eager:.2f}x eager)" if speedup_eager else "")
    if status == "build_error":
        return f"build error: {first_error_line(build_log)}"
    why = next((r for r in (reasons or []) if r.strip()), "")
    return f"{status}: {' '.join(why.split())[:300]}" if why else status


# ---------------------------------------------------------------------------------------------
# Parsing ideas

# "1." "1)" "(1)" "**1.**" "**1. Title**" "### 1." "Idea 1:" at the start of a line.
_NUMBERED = re.compile(
    r"^(?P<indent>\s*)(?:#{1,6}\s*)?(?:[*_]{1,2}\s*)?(?:idea\s*)?\(?(?P<n>\d{1,3})\s*[.):]"
    r"(?=\s|$|[*_])(?:[*_]{1,2}(?=\s|$))?\s*(?P<rest>.*)$",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^(?P<indent>\s*)[-*•+]\s+(?P<rest>.*)$")
_MIN_IDEA_LETTERS = 3


def _clean_idea(text: str) -> str:
    # Bold markers go; "__" stays (CUDA names such as __ldg and __shfl_sync).
    return " ".join(text.replace("**", "").split()).strip(" -:")


def _usable(idea: str) -> bool:
    return sum(c.isalpha() for c in idea) >= _MIN_IDEA_LETTERS


def _ideas_from_json(text: str) -> list[str] | None:
    """A JSON array of strings, or of objects with an idea-like field, anywhere in the text."""
    start, end = text.find("["), text.rfind("]")
    if start < 0 or end <= start:
        return None
    try:
        data = json.loads(text[start : end + 1])
    except ValueError:
        return None
    if not isinstance(data, list):
        return None
    ideas: list[str] = []
    for item in data:
        if isinstance(item, str):
            ideas.append(item)
        elif isinstance(item, dict):
            title = item.get("title") or item.get("name")
            body = item.get("idea") or item.get("description") or item.get("text")
            parts = [p for p in (title, body) if isinstance(p, str)]
            if parts:
                ideas.append(": ".join(parts))
    return ideas


def _is_title(line: str, rest: str) -> bool:
    """An item head formatted as a title: a heading, all bold, or ending in a colon."""
    head = rest.strip()
    return line.lstrip().startswith("#") or head.rstrip(":").endswith("**") or head.endswith(":")


def _ideas_from_list(text: str, pattern: re.Pattern[str]) -> list[str]:
    """Items of the outermost list made of `pattern` lines. A line that is not an item
    continues the current item. After the last item, an unindented paragraph that follows a
    blank line is prose after the list, unless that item so far is only a title."""
    lines = text.splitlines()
    starts = [(i, m) for i, line in enumerate(lines) if (m := pattern.match(line))]
    if not starts:
        return []
    top = min(len(m.group("indent").expandtabs()) for _, m in starts)
    last_start = max(i for i, m in starts if len(m.group("indent").expandtabs()) == top)
    items: list[tuple[bool, list[str]]] = []  # (head is a title, [head, continuation...])
    open_item = False
    blank_before = False
    for i, line in enumerate(lines):
        m = pattern.match(line)
        if m and len(m.group("indent").expandtabs()) == top:
            items.append((_is_title(line, m.group("rest")), [m.group("rest")]))
            open_item, blank_before = True, False
        elif not line.strip():
            blank_before = True
        elif open_item:
            indented = len(line.expandtabs()) - len(line.expandtabs().lstrip()) > top
            title_only = items[-1][0] and len(items[-1][1]) == 1
            if blank_before and not indented and i > last_start and not title_only:
                open_item = False  # prose after the list
            else:
                items[-1][1].append(line.strip())
            blank_before = False
    ideas = []
    for is_title, (head, *body) in items:
        head = _clean_idea(head)
        if is_title and body:
            ideas.append(f"{head.rstrip(':')}: {_clean_idea(' '.join(body))}")
        else:
            ideas.append(_clean_idea(" ".join([head, *body])))
    return ideas


def parse_ideas(text: str, k: int) -> list[str]:
    """Up to `k` distinct ideas from a reply: a numbered list, bullets, or a JSON array,
    with any prose around them ignored. Fewer (possibly none) if the reply has fewer."""
    try:
        if not isinstance(text, str) or k <= 0:
            return []
        body = re.sub(r"```[\w-]*", "", text)  # fences around a JSON or list answer
        ideas = _ideas_from_json(body)
        if not ideas:
            ideas = _ideas_from_list(body, _NUMBERED) or _ideas_from_list(body, _BULLET)
        unique: list[str] = []
        seen: set[str] = set()
        for idea in ideas:
            idea = " ".join(str(idea).split())
            key = idea.lower()
            if _usable(idea) and key not in seen:
                seen.add(key)
                unique.append(idea)
        return unique[:k]
    except Exception:  # a parser of model output must not take the search down
        return []


# ---------------------------------------------------------------------------------------------
# Extracting code

_FENCE_OPEN = re.compile(r"^\s*(?P<fence>`{3,}|~{3,})\s*(?P<lang>[\w+#.-]*)")
_PYTHON_LANGS = {"", "python", "py", "python3", "py3"}
_KERNEL_LANGS = {"cuda", "cu", "c", "cpp", "c++", "cxx", "h", "hpp", "cuh"}
_MODULE_NAMES = {"__file__", "__name__", "__doc__", "__spec__", "__loader__", "__package__",
                 "__builtins__", "__path__", "__annotations__"}
_CODE_START = re.compile(r"^(import |from |class |def |@|\"\"\"|'''|#|[A-Za-z_]\w*\s*=)")


def _fenced_blocks(text: str) -> list[tuple[str, str, bool]]:
    """(language, code, closed) for each fenced block; the last may be unterminated."""
    blocks: list[tuple[str, str, bool]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE_OPEN.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group("fence"), m.group("lang").lower()
        closing = re.compile(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body: list[str] = []
        i += 1
        while i < len(lines) and not closing.match(lines[i]):
            body.append(lines[i])
            i += 1
        closed = i < len(lines)
        blocks.append((lang, "\n".join(body), closed))
        i += 1
    return blocks


def _parse(code: str) -> ast.Module:
    # Model code often has escapes like "\\#" in plain strings: not worth a warning each.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ast.parse(code)


def _bound_names(tree: ast.AST) -> set[str]:
    """Every name the module binds anywhere (scope-blind: good enough to find references to
    things that were never defined, such as a CUDA string left in another block)."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            for alias in node.names:
                names.add(alias.asname or alias.name.split(".")[0])
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            names.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            names.add(node.rest)
    return names


def _usable_module(code: str) -> bool:
    """Parses, defines class ModelNew, and refers to no name it never defines."""
    try:
        tree = _parse(code)
    except (SyntaxError, ValueError):
        return False
    if not any(isinstance(n, ast.ClassDef) and n.name == "ModelNew" for n in ast.walk(tree)):
        return False
    if any(isinstance(n, ast.ImportFrom) and any(a.name == "*" for a in n.names) for n in ast.walk(tree)):
        return True  # star imports make the names unknowable; let the judge decide
    known = _bound_names(tree) | set(dir(builtins)) | _MODULE_NAMES
    used = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return used <= known


def _unfenced_code(text: str) -> str | None:
    """Raw code with no fences, perhaps with prose before or after it: try each plausible
    first line, and cut trailing prose where the parser first stumbles (both bounded)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if _CODE_START.match(line)][:10]
    for first in starts:
        body = lines[first:]
        for _ in range(10):
            code = "\n".join(body).strip("\n")
            try:
                _parse(code)
            except SyntaxError as err:
                bad = (err.lineno or 0) - 1  # lines before the one the parser choked on
                if bad <= 0 or bad >= len(body):
                    break
                body = body[:bad]
                continue
            except ValueError:
                break
            if _usable_module(code):
                return code
            break
    return None


def extract_code(text: str) -> str | None:
    """The candidate Python file in a reply, or None if there is no usable one.

    Prefers fenced Python blocks that define `class ModelNew`, parse, and are self-contained
    (the last such block wins: models put the final version last). A reply that split the
    CUDA source into its own block is not stitched back together. Without fences, the raw
    text is tried. Never raises."""
    try:
        if not isinstance(text, str) or "ModelNew" not in text:
            return None
        blocks = _fenced_blocks(text)
        if blocks:
            has_kernel_block = any(lang in _KERNEL_LANGS for lang, _, _ in blocks)
            usable = [
                code
                for lang, code, _ in blocks
                if lang in _PYTHON_LANGS
                and _usable_module(code)
                # The python block must carry its own kernels if the reply split them out.
                and not (has_kernel_block and "__global__" not in code)
            ]
            return usable[-1].strip("\n") + "\n" if usable else None
        code = _unfenced_code(text)
        return code + "\n" if code else None
    except Exception:  # a parser of model output must not take the search down
        return None
