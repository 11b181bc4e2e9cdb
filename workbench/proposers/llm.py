"""A language model as a proposer: prompts from workbench.prompts, replies parsed there,
calls through a ModelClient (OpenAI-compatible or Gemini) with retries and a response cache.
A reply without usable ideas or code is a recorded failure, never a crash.
"""
from __future__ import annotations

from typing import Any

from workbench import prompts
from workbench.problem import REPO_ROOT
from workbench.proposers.base import Completion, ModelClient, ModelError
from workbench.proposers.proposal import Context, Idea, Implementation

CONVENTIONS = (REPO_ROOT / "docs" / "conventions.md")


def _usage(c: Completion) -> dict[str, Any]:
    return {"model": c.model, "input_tokens": c.input_tokens, "output_tokens": c.output_tokens,
            "reasoning_tokens": c.reasoning_tokens, "cost_usd": 0.0 if c.cached else c.cost_usd,
            "seconds": c.seconds, "cached": c.cached, "finish_reason": c.finish_reason}


def _facts(ctx: Context) -> dict[str, Any]:
    keep = ("device", "sm_count", "l2_bytes", "memory_bytes", "capability", "copy_gbps", "matmul_tflops")
    return {k: ctx.facts[k] for k in keep if k in ctx.facts}


class ModelProposer:
    def __init__(self, client: ModelClient, max_output_tokens: int | None = None):
        self.client = client
        self.name = client.name
        self.max_output_tokens = max_output_tokens

    def _ask(self, messages: list[dict[str, str]]) -> tuple[str | None, dict[str, Any], str]:
        try:
            c = self.client.complete(messages, max_output_tokens=self.max_output_tokens)
        except ModelError as e:
            return None, {"model": self.name, "error": str(e)}, f"model call failed: {e}"
        return c.text, _usage(c), ""

    def ideas(self, ctx: Context, k: int) -> list[Idea]:
        best = [{"source": b["source"], "ms": b["ms"], "speedup_eager": b.get("speedup_eager"),
                 "speedup_compile": b.get("speedup_compile")} for b in ctx.best]
        text, usage, err = self._ask(prompts.idea_prompt(ctx.problem.source, _facts(ctx), best, ctx.history, k))
        found = prompts.parse_ideas(text or "", k)
        if not found:
            return [Idea("", self.name, {"failed": err or "reply held no usable ideas"}, usage)]
        return [Idea(t, self.name, {}, usage if i == 0 else {}) for i, t in enumerate(found)]

    def implement(self, ctx: Context, idea: Idea, seed: dict[str, Any] | None, index: int) -> Implementation:
        conventions = CONVENTIONS.read_text() if CONVENTIONS.is_file() else ""
        msgs = prompts.implementation_prompt(ctx.problem.source, idea.text, seed["source"] if seed else None,
                                             _facts(ctx), conventions)
        if index:  # distinct implementations of one idea: ask for a different take
            msgs[-1] = {**msgs[-1], "content": msgs[-1]["content"] + f"\n\n(Variant {index + 1}: choose a different "
                        "implementation strategy or parameters than the obvious one.)"}
        return self._code(msgs)

    def repair(self, ctx: Context, source: str, failure: str, report: str) -> Implementation:
        return self._code(prompts.repair_prompt(ctx.problem.source, source, failure, report))

    def _code(self, messages: list[dict[str, str]]) -> Implementation:
        text, usage, err = self._ask(messages)
        code = prompts.extract_code(text) if text else None
        return Implementation(code, self.name, usage, "" if code else (err or "reply held no usable ModelNew file"))
