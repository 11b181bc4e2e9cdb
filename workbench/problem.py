"""Load a problem (a KernelBench-format file), make its inputs, and state its size facts."""
from __future__ import annotations

import ast
import dataclasses
import hashlib
import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

REPO_ROOT = Path(__file__).resolve().parent.parent
PROBLEMS_DIR = REPO_ROOT / "problems"

# Input distributions the judge draws from. "given" is the problem's own get_inputs();
# the others keep shapes and dtypes but change the values, so a kernel that only works on
# the stated distribution (assumed mean 0, variance 1, bounded range...) fails. "wide" has
# large magnitudes and heavy tails (10 * z * e^w, z and w standard normal: median |x| ~ 7,
# a few in a million past 1000), so range clamps and formulas that overflow (a softmax
# without the max subtraction) fail; the judge uses it only where the reference stays finite.
DISTRIBUTIONS = ("given", "normal", "shifted", "uniform", "wide")
POLICIES = ("strict", "partial")


class ProblemError(ValueError):
    """A problem file that is missing or not in KernelBench format."""


@dataclass
class Problem:
    name: str
    path: Path
    source: str
    module: ModuleType = field(repr=False)
    atol: float = 1e-2
    rtol: float = 1e-2
    rel_l2_tol: float = 1e-2
    flops: int = 0
    description: str = ""
    policy: str = "strict"  # the problem's default judging policy (module constant POLICY)
    # The target this Problem was made for by for_target(); None: not bound to one.
    target: str | None = None
    # "cpu" when get_inputs / get_init_inputs are the file's CPU sizes (get_inputs_cpu ...).
    sizes: str = "stated"

    @property
    def digest(self) -> str:
        # Sizes are part of the identity: caches keyed on it must not mix CPU and GPU inputs.
        tag = "" if self.sizes == "stated" else f"\0sizes={self.sizes}"
        return hashlib.sha256((self.source + tag).encode()).hexdigest()[:16]

    @property
    def seeds_dir(self) -> Path:
        return self.path.parent / "seeds"

    def seeds(self, target: str | None = None) -> list[Path]:
        """Seed files for `target` ("cpu", "cuda", "cuda:1"...); by default the bound target's, else all."""
        files = sorted(self.seeds_dir.glob("*.py")) if self.seeds_dir.is_dir() else []
        want = target_kind(target or self.target)
        return files if want is None else [f for f in files if seed_target(f) == want]

    def for_target(self, target: str) -> "Problem":
        """This problem as the judge should run it on `target`.

        On a cpu target, a file's optional get_inputs_cpu() / get_init_inputs_cpu() replace
        get_inputs() / get_init_inputs() (the published sizes are GPU sizes) and FLOPS_CPU
        replaces FLOPS (0 when not stated). seeds() then lists this target's seeds.
        """
        kind = target_kind(target)
        if kind == self.target:
            return self
        cpu_sizes = kind == "cpu" and hasattr(self.module, "get_inputs_cpu")
        return dataclasses.replace(
            self, target=kind, sizes="cpu" if cpu_sizes else "stated",
            flops=int(getattr(self.module, "FLOPS_CPU", 0)) if cpu_sizes else int(getattr(self.module, "FLOPS", 0)))

    def _sized(self, name: str) -> Any:
        if self.sizes == "cpu" and hasattr(self.module, f"{name}_cpu"):
            return getattr(self.module, f"{name}_cpu")
        return getattr(self.module, name)

    def draw_inputs(self) -> list[Any]:
        """One call of the file's get_inputs() at this Problem's sizes (the caller seeds the RNG)."""
        return list(self._sized("get_inputs")())

    def init_inputs(self) -> list[Any]:
        return list(self._sized("get_init_inputs")())

    def make_model(self, seed: int, device: torch.device | str) -> torch.nn.Module:
        """The reference model, its parameters drawn under `seed` (KernelBench convention)."""
        return construct(self.module.Model, self.init_inputs(), seed, device)


def construct(cls: type, init_inputs: list[Any], seed: int, device: torch.device | str) -> torch.nn.Module:
    """Build a model the way the judge builds both Model and ModelNew: same seed, then move."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = cls(*init_inputs)
    return model.to(device).eval()


def resolve_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.is_dir():
        p = p / "reference.py"
    if p.suffix == ".py" and p.is_file():
        return p.resolve()
    named = PROBLEMS_DIR / str(name_or_path) / "reference.py"
    if named.is_file():
        return named
    known = ", ".join(list_problems()) or "none"
    raise ProblemError(f"no problem {str(name_or_path)!r}: not a file, and not one of problems/ ({known})")


def list_problems(target: str | None = None) -> list[str]:
    """Names under problems/; with a target, only those that have a seed for it."""
    if not PROBLEMS_DIR.is_dir():
        return []
    refs = sorted(PROBLEMS_DIR.glob("*/reference.py"))
    want = target_kind(target)
    return [p.parent.name for p in refs
            if want is None or any(seed_target(s) == want for s in sorted((p.parent / "seeds").glob("*.py")))]


def target_kind(target: str | None) -> str | None:
    """"cuda:1" -> "cuda"; None stays None (no target: everything)."""
    if target is None:
        return None
    kind = str(target).split(":")[0].strip().lower()
    if kind not in ("cpu", "cuda"):
        raise ValueError(f"unknown target {target!r}: expected cpu or cuda")
    return kind


def seed_target(path: Path) -> str:
    """The target a seed file is for, read without importing it (importing would build it).

    A module constant TARGET = "cpu" or "cuda" says it; without one, a seed that passes
    cuda_sources= is a CUDA seed and any other a CPU one (C++ only), which is what every seed
    written before the convention is.
    """
    try:
        tree = ast.parse(path.read_text(), filename=str(path))
    except SyntaxError as e:
        raise ProblemError(f"{path}: seed does not parse: {e}") from e
    for node in tree.body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "TARGET"):
            if isinstance(node.value, ast.Constant) and node.value.value in ("cpu", "cuda"):
                return node.value.value
            raise ProblemError(f"{path}:{node.lineno}: TARGET must be the string \"cpu\" or \"cuda\"")
    uses_cuda = any(isinstance(n, ast.keyword) and n.arg == "cuda_sources" for n in ast.walk(tree))
    return "cuda" if uses_cuda else "cpu"


def load_module(path: Path, module_name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ProblemError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        sys.modules.pop(module_name, None)
        raise ProblemError(f"{path}: failed to import: {type(e).__name__}: {e}") from e
    return module


def load_problem(name_or_path: str | Path, target: str | None = None) -> Problem:
    """Load a problem; with a target, as for_target(target) returns it."""
    path = resolve_path(name_or_path)
    name = path.parent.name if path.name == "reference.py" else path.stem
    source = path.read_text()
    module = load_module(path, f"workbench_problem_{name}_{hashlib.sha256(source.encode()).hexdigest()[:8]}")
    for attr in ("Model", "get_inputs", "get_init_inputs"):
        if not hasattr(module, attr):
            raise ProblemError(f"{path}: not KernelBench format, it lacks {attr}")
    doc = (module.__doc__ or "").strip().splitlines()
    problem = Problem(
        name=name,
        path=path,
        source=source,
        module=module,
        atol=float(getattr(module, "ATOL", 1e-2)),
        rtol=float(getattr(module, "RTOL", 1e-2)),
        rel_l2_tol=float(getattr(module, "REL_L2_TOL", 1e-2)),
        flops=int(getattr(module, "FLOPS", 0)),
        description=str(getattr(module, "DESCRIPTION", doc[0] if doc else name)),
        policy=_policy(path, getattr(module, "POLICY", "strict")),
    )
    return problem if target is None else problem.for_target(target)


def _policy(path: Path, value: Any) -> str:
    if value not in POLICIES:
        raise ProblemError(f"{path}: POLICY must be one of {POLICIES}, not {value!r}")
    return str(value)


def given_inputs(problem: Problem, seed: int, device: torch.device | str) -> list[Any]:
    """The problem's own get_inputs() drawn under `seed` directly on `device`.

    Factory calls without a device (torch.randn(...), KernelBench's style) land on `device`
    through torch's default-device context, so a 1 GiB input costs a few milliseconds on a GPU
    instead of seconds of CPU generation. Any process drawing with the same seed on the same
    device gets the same values; tensors made elsewhere are moved.
    """
    device = torch.device(device)
    forked = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked, device_type=device.type if forked else "cuda"), device:
        torch.manual_seed(seed)
        inputs = problem.draw_inputs()
    return [x.to(device) if isinstance(x, torch.Tensor) else x for x in inputs]


def redraw(template: list[Any], seed: int, distribution: str) -> list[Any]:
    """Fresh values of the template's float tensors, drawn on their own device.

    Fast enough to run before every timed sample. Non-float tensors and non-tensors are kept.
    A template that is non-negative stays non-negative (inputs such as variances or
    probabilities must stay valid).
    """
    if distribution not in DISTRIBUTIONS or distribution == "given":
        raise ValueError(f"redraw takes one of {DISTRIBUTIONS[1:]}, not {distribution!r}")
    out: list[Any] = []
    for i, x in enumerate(template):
        if not (isinstance(x, torch.Tensor) and x.is_floating_point()):
            out.append(x.clone() if isinstance(x, torch.Tensor) else x)
            continue
        gen = torch.Generator(device=x.device)
        gen.manual_seed((seed * 1_000_003 + i) % (2**63))
        shape = x.shape
        if distribution == "normal":
            v = torch.randn(shape, generator=gen, device=x.device, dtype=torch.float32)
        elif distribution == "shifted":  # non-zero mean, wider spread
            v = torch.randn(shape, generator=gen, device=x.device, dtype=torch.float32) * 2.0 + 1.5
        elif distribution == "wide":
            z = torch.randn(shape, generator=gen, device=x.device, dtype=torch.float32)
            v = 10.0 * z * torch.randn(shape, generator=gen, device=x.device, dtype=torch.float32).exp_()
        else:  # uniform on [-2, 2): bounded, flat, no tails
            v = torch.rand(shape, generator=gen, device=x.device, dtype=torch.float32) * 4.0 - 2.0
        if x.numel() and bool((x >= 0).all()):
            v = v.abs()
        out.append(v.to(x.dtype))
    return out


def make_inputs(problem: Problem, seed: int, distribution: str, device: torch.device | str,
                template: list[Any] | None = None) -> list[Any]:
    """Inputs for one trial: identical in any process given the same seed, distribution and device.

    `template` (any earlier draw of the same problem on `device`) saves a CPU draw of
    get_inputs() for the redrawn distributions; only its shapes, dtypes and signs are used.
    """
    if distribution == "given":
        return given_inputs(problem, seed, device)
    return redraw(template if template is not None else given_inputs(problem, 0, device), seed, distribution)


def perturb(inputs: list[Any], seed: int, lo: float, hi: float) -> None:
    """Redraw, in place, the flat range [lo, hi) of every float input; the rest stays as it was.

    The judge calls a candidate, perturbs the same tensors and calls again: a cache keyed on
    the pointer, or on a few elements outside the block, then returns a stale answer.
    """
    for i, x in enumerate(inputs):
        if isinstance(x, torch.Tensor) and x.is_floating_point() and x.numel() > 1:
            flat = x.view(-1) if x.is_contiguous() else None
            if flat is None:
                continue
            a, b = int(flat.numel() * lo), max(int(flat.numel() * lo) + 1, int(flat.numel() * hi))
            gen = torch.Generator(device=x.device)
            gen.manual_seed((seed * 7_919 + i) % (2**63))
            fresh = torch.randn(b - a, generator=gen, device=x.device, dtype=torch.float32)
            if bool((flat >= 0).all()):
                fresh = fresh.abs()
            flat[a:b] = fresh.to(x.dtype)


def tensor_bytes(values: Any) -> int:
    if isinstance(values, torch.Tensor):
        return values.numel() * values.element_size()
    if isinstance(values, (list, tuple)):
        return sum(tensor_bytes(v) for v in values)
    return 0
