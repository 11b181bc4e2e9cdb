"""A language model as a proposer: prompts from workbench.prompts, replies parsed there, calls
through a client from workbench.models.

Every call has a place in the run ("r1-ideas-0", "r1-i0-m1", "r1-i0-m1-fix1"). A `CallBook`
records each call's reply and accounting at its place before the reply is used, so a resumed
run re-reads the reply instead of asking again, and a replay (`CallBook(replay=...)`) gets the
reply recorded at the same place in another run, with no network. A reply without usable
ideas or code is a recorded failure, never a crash.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from workbench import prompts
from workbench.models.base import ModelClient, ModelError
from workbench.problem import REPO_ROOT
from workbench.proposers.proposal import Context, Idea, Implementation
from workbench.store import CallRecord, RunStore

CONVENTIONS = REPO_ROOT / "docs" / "conventions.md"


class CallBook:
    """Where model calls are looked up (this run, then a replayed run) and recorded."""

    def __init__(self, store: RunStore | None = None, replay: RunStore | None = None,
                 on_failure: Callable[[CallRecord], None] | None = None):
        self.store, self.replay, self.on_failure = store, replay, on_failure

    def recorded(self, place: str) -> CallRecord | None:
        if self.store is not None and place in self.store.state.calls:
            return self.store.state.calls[place]
        if self.replay is None:
            return None
        old = self.replay.state.calls.get(place)
        if old is None:
            return self.record(CallRecord(place, "", None, f"replay: run {self.replay.run_id} recorded no call at "
                                                           f"{place}"))
        # Replayed: the reply is the recorded one; nothing was billed this time.
        return self.record(CallRecord(place, old.model, old.text, old.error, discarded=old.discarded,
                                      replayed_from=self.replay.run_id))

    def record(self, rec: CallRecord) -> CallRecord:
        if self.store is not None:
            fields = {k: v for k, v in vars(rec).items() if k != "place"}
            self.store.append("call", f"call-{rec.place}", place=rec.place, **fields)
        if rec.text is None and self.on_failure is not None:
            self.on_failure(rec)
        return rec


def _facts(ctx: Context) -> dict[str, Any]:
    keep = ("device", "sm_count", "l2_bytes", "memory_bytes", "capability", "copy_gbps", "matmul_tflops")
    return {k: ctx.facts[k] for k in keep if k in ctx.facts}


class ModelProposer:
    offline = False  # a model: the search runs its calls in parallel

    def __init__(self, client: ModelClient, max_output_tokens: int | None = None, concurrency: int = 8,
                 book: CallBook | None = None, name: str | None = None):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.client = client
        self.name = name or client.name  # the search names it by its spec, endpoint included
        self.max_output_tokens = max_output_tokens
        self.book = book or CallBook()
        self._slots = threading.BoundedSemaphore(concurrency)  # calls in flight to this model
        self._lock = threading.Lock()
        self.in_flight = 0

    def _ask(self, place: str | None, messages: list[dict[str, str]], usable: Callable[[str], bool]) -> CallRecord:
        if place is not None and (rec := self.book.recorded(place)) is not None:
            return rec
        with self._slots:
            with self._lock:
                self.in_flight += 1
            try:
                c = self.client.complete(messages, max_output_tokens=self.max_output_tokens)
            except ModelError as e:
                inp, out, reasoning = getattr(e, "billed", (0, 0, 0))
                rec = CallRecord(place or "", self.name, None, str(e), inp, out, reasoning,
                                 getattr(e, "cost_usd", 0.0), e.attempts)
            else:
                billed_in = c.billed_input_tokens or (0 if c.cached else c.input_tokens)
                billed_out = c.billed_output_tokens or (0 if c.cached else c.output_tokens)
                billed_r = c.billed_reasoning_tokens or (0 if c.cached else c.reasoning_tokens)
                rec = CallRecord(place or "", self.name, c.text, "", billed_in, billed_out, billed_r,
                                 0.0 if c.cached else c.cost_usd, c.attempts, c.seconds,
                                 discarded=not usable(c.text))
            finally:
                with self._lock:
                    self.in_flight -= 1
        return self.book.record(rec) if place is not None else rec

    def observe(self, candidate_id: str, source: str, record: dict[str, Any]) -> None:
        """Nothing to do: a model hears of outcomes through the next prompt's history."""

    def ideas(self, ctx: Context, k: int, place: str | None = None) -> list[Idea]:
        best = [{"source": b["source"], "ms": b["ms"], "speedup_eager": b.get("speedup_eager"),
                 "speedup_compile": b.get("speedup_compile")} for b in ctx.best]
        msgs = prompts.idea_prompt(ctx.problem.source, _facts(ctx), best, ctx.history, k, target=ctx.target,
                                   profile_text=ctx.profile)
        rec = self._ask(place, msgs, lambda t: bool(prompts.parse_ideas(t, k)))
        found = prompts.parse_ideas(rec.text or "", k)
        if not found:
            why = f"model call failed: {rec.error}" if rec.text is None else "reply held no usable ideas"
            return [Idea("", self.name, {"failed": why})]
        return [Idea(t, self.name, {}) for t in found]

    def implement(self, ctx: Context, idea: Idea, seed: dict[str, Any] | None, index: int,
                  place: str | None = None) -> Implementation:
        conventions = CONVENTIONS.read_text() if CONVENTIONS.is_file() else ""
        msgs = prompts.implementation_prompt(ctx.problem.source, idea.text, seed["source"] if seed else None,
                                             _facts(ctx), conventions, target=ctx.target)
        if index:  # distinct implementations of one idea: ask for a different take
            msgs[-1] = {**msgs[-1], "content": msgs[-1]["content"] + f"\n\n(Variant {index + 1}: choose a different "
                        "implementation strategy or parameters than the obvious one.)"}
        return self._code(place, msgs)

    def repair(self, ctx: Context, source: str, failure: str, report: str, place: str | None = None) -> Implementation:
        return self._code(place, prompts.repair_prompt(ctx.problem.source, source, failure, report, target=ctx.target))

    def _code(self, place: str | None, messages: list[dict[str, str]]) -> Implementation:
        rec = self._ask(place, messages, lambda t: prompts.extract_code(t) is not None)
        code = prompts.extract_code(rec.text) if rec.text else None
        if code:
            return Implementation(code, self.name)
        why = f"model call failed: {rec.error}" if rec.text is None else "reply held no usable ModelNew file"
        return Implementation(None, self.name, error=why)
