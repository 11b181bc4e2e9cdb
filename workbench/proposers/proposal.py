"""What every proposer (the offline tuner, or a language model) takes and gives to the search."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from workbench.problem import Problem


@dataclass
class Idea:
    text: str
    model: str
    data: dict[str, Any] = field(default_factory=dict)  # proposer-private (the tuner's assignment)
    usage: dict[str, Any] = field(default_factory=dict)  # tokens and cost of the call that made it


@dataclass
class Implementation:
    source: str | None
    model: str
    usage: dict[str, Any] = field(default_factory=dict)
    error: str = ""  # why there is no source (a reply without code, no untried variant...)


@dataclass
class Context:
    """What a proposer is conditioned on: the problem, the device, the best kernels, all outcomes."""
    problem: Problem
    facts: dict[str, Any]
    round: int
    best: list[dict[str, Any]]  # {"id", "source", "ms", "speedup_eager", "speedup_compile"}
    history: list[dict[str, Any]]  # {"round", "idea", "model", "results": [{"candidate", "outcome"}], "speedup"}
    tried: set[str]  # hashes of every source evaluated so far
    target: str = "cuda"  # what the kernels run on: prompts fit it
    profile: str = ""  # profiler counters of the best kernels, as the idea prompt shows them


class Proposer(Protocol):
    name: str
    # True for a proposer without a model (the tuner): nothing to reach or bill, no prompt to put
    # profiles in, and instant, so its implementations are made in order, each seeing the ones before.
    # False: a model, whose calls the search runs in parallel and checks before it starts.
    offline: bool

    def ideas(self, ctx: Context, k: int) -> list[Idea]: ...

    def implement(self, ctx: Context, idea: Idea, seed: dict[str, Any] | None, index: int) -> Implementation: ...

    def repair(self, ctx: Context, source: str, failure: str, report: str) -> Implementation: ...

    def observe(self, candidate_id: str, source: str, record: dict[str, Any]) -> None:
        """A verdict of a candidate, for proposers that learn from them."""
