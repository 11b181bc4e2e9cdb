"""A scripted model for searches against the fake servers, and a judge that stands in for the
real one (no builds), both for tests/problems/scale_rows on the cpu target.

The model answers idea prompts with numbered ideas, implementation prompts with a C++ kernel
(a build error for ideas that say BROKEN, a wrong result for ideas that say WRONG, otherwise a
correct variant of the seed), and repair prompts with a correct kernel. The stand-in judge
reads the source: a missing semicolon is a build error, a missing "+ 1.0f" a mismatch.
"""
from __future__ import annotations

import hashlib
import re
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Callable

from workbench.judge import Verdict
from workbench.proposers.tuner import apply

try:
    from tests.fakes import Received, Reply, Step
except ImportError:
    from fakes import Received, Reply, Step

PROBLEM = str(Path(__file__).resolve().parent / "problems" / "scale_rows")
SEED = (Path(PROBLEM) / "seeds" / "loop.py").read_text()
CHUNKS, UNROLLS = ("16", "64", "256"), ("1", "2", "4")


def prompt_text(request: Received) -> str:
    body = request.body if isinstance(request.body, dict) else {}
    if "messages" in body:  # OpenAI
        return body["messages"][-1]["content"]
    contents = body.get("contents") or [{}]  # Gemini
    return "".join(p.get("text", "") for p in contents[-1].get("parts", []))


def kernel(tag: str, broken: bool = False, wrong: bool = False) -> str:
    """A scale_rows kernel: the seed with tunables picked by `tag`, perhaps broken or wrong."""
    h = int(hashlib.sha256(tag.encode()).hexdigest(), 16)
    src = apply(SEED, {"CHUNK": CHUNKS[h % 3], "UNROLL": UNROLLS[(h // 3) % 3]})
    src = src.replace('"""A flat C++ loop', f'"""[{tag}] A flat C++ loop', 1)
    if broken:
        src = src.replace("return out;", "return out")
    if wrong:
        src = src.replace("* 2.0f + 1.0f;", "* 2.0f;")
    return src


def scripted_model(ideas: list[str] | None = None, name: str = "m") -> Callable[[Received], Step]:
    """A responder: idea prompts get `ideas` (cycled), code prompts get kernels."""
    ideas = ideas or ["Block the loop in cache-sized chunks", "Unroll the inner loop four times",
                      "BROKEN: a variant that does not compile", "WRONG: a variant that drops the offset"]
    counter = {"ideas": 0}
    lock = threading.Lock()

    def respond(request: Received) -> Step:
        text = prompt_text(request)
        if "Propose exactly" in text:
            k = int(re.search(r"Propose exactly (\d+)", text).group(1))
            with lock:
                start = counter["ideas"]
                counter["ideas"] += k
            items = [f"{n}. {ideas[(start + n - 1) % len(ideas)]} ({name} idea {start + n})" for n in range(1, k + 1)]
            return Reply("Here are the ideas:\n" + "\n".join(items), input_tokens=900, output_tokens=120,
                         reasoning_tokens=40)
        if "failed:" in text and "What the evaluator reported" in text:
            return Reply("Fixed:\n```python\n" + kernel("repair " + text[-200:]) + "```", input_tokens=1500,
                         output_tokens=700)
        idea = text.split("## Optimization idea to implement", 1)[-1].split("## Conventions", 1)[0].strip()
        variant = re.search(r"\(Variant (\d+)", text)
        tag = f"{idea} v{variant.group(1) if variant else 1}"
        src = kernel(tag, broken="BROKEN" in idea, wrong="WRONG" in idea)
        return Reply(f"```python\n{src}```", input_tokens=1200, output_tokens=800, reasoning_tokens=100)

    return respond


class FakePool:
    """Stands in for EvalPool: a verdict from reading the source, no build; each correct one faster."""

    def __init__(self) -> None:
        self.eval_kwargs: dict[str, Any] = {}
        self.judged: list[Path] = []
        self.lock = threading.Lock()

    def verdict(self, problem: Any, path: Path) -> Verdict:
        src = Path(path).read_text()
        with self.lock:
            self.judged.append(Path(path))
            n = len(self.judged)
        if "return out\n" in src:
            log = ("kernel.cpp: In function 'at::Tensor scale_rows(at::Tensor)':\n"
                   "kernel.cpp:31:15: error: expected ';' before '}' token\n   31 |     return out\n")
            return Verdict(problem.name, str(path), "cpu", status="build_error", reasons=["build_error: build failed"],
                           builds=[{"name": "ext", "seconds": 2.5, "cached": False, "log": log}])
        if "+ 1.0f" not in src:
            return Verdict(problem.name, str(path), "cpu", status="incorrect",
                           reasons=["mismatch: 1048576 of 1048576 elements outside atol=0.01, rtol=0.01"])
        return Verdict(problem.name, str(path), "cpu", timing={"ms": 100.0 - n},
                       builds=[{"name": "ext", "seconds": 1.5, "cached": False, "log": ""}])

    def session(self, problem: Any, on_done: Any = None, should_stop: Any = None) -> "FakeSession":
        return FakeSession(self, problem)


class FakeSession:
    def __init__(self, pool: FakePool, problem: Any) -> None:
        self.pool, self.problem = pool, problem

    def submit(self, path: Path) -> Future:
        fut: Future = Future()
        fut.set_result(self.pool.verdict(self.problem, path))
        return fut

    def wait(self) -> None:
        pass

    def __enter__(self) -> "FakeSession":
        return self

    def __exit__(self, *exc: object) -> None:
        pass


def fake_judge(monkeypatch: Any, pool: FakePool | None = None) -> FakePool:
    """The search without the real judge: facts, baseline and verdicts are instant."""
    import workbench.search as search

    pool = pool or FakePool()
    monkeypatch.setattr(search, "EvalPool", lambda *a, **k: pool)
    monkeypatch.setattr(search, "measure_facts", lambda target: {"device": "cpu", "copy_gbps": 10.0})
    monkeypatch.setattr(search, "time_reference", lambda problem, target, compile: {"eager_ms": 100.0})
    return pool
