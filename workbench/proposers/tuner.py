"""The offline proposer: no network, no key. Ideas are moves in the space that kernels mark
as tunable (`#define X 256  // tune: 128, 256, 512` or `X = 4  # tune: 1, 2, 4`) and switches
among the problem's seed variants; each idea's implementations are that move alone and the
move plus one random neighbour step. Sources already evaluated are never proposed again.
"""
from __future__ import annotations

import hashlib
import random
import re
from dataclasses import dataclass
from typing import Any

from workbench.proposers.proposal import Context, Idea, Implementation

_C_TUNE = re.compile(r"^(?P<pre>[ \t]*#define[ \t]+(?P<name>\w+)[ \t]+)(?P<value>[^\s/]+)(?P<post>[ \t]*//[ \t]*tune:[ \t]*(?P<opts>[^\n]*))$", re.M)
_PY_TUNE = re.compile(r"^(?P<pre>(?P<name>[A-Za-z_]\w*)[ \t]*=[ \t]*)(?P<value>[^\s#]+)(?P<post>[ \t]*#[ \t]*tune:[ \t]*(?P<opts>[^\n]*))$", re.M)


def source_hash(source: str) -> str:
    return hashlib.sha256(source.encode()).hexdigest()[:16]


@dataclass
class Tunable:
    name: str
    value: str
    options: list[str]


def tunables(source: str) -> dict[str, Tunable]:
    """The marked tunables of a kernel file, by name (first definition wins)."""
    found: dict[str, Tunable] = {}
    for rx in (_C_TUNE, _PY_TUNE):
        for m in rx.finditer(source):
            opts = [o.strip() for o in m.group("opts").split(",") if o.strip()]
            if m.group("name") not in found and opts:
                found[m.group("name")] = Tunable(m.group("name"), m.group("value"), opts)
    return found


def apply(source: str, assign: dict[str, str]) -> str:
    """Rewrite the values of marked tunables; only marked lines change."""
    def sub(m: re.Match[str]) -> str:
        name = m.group("name")
        return f"{m.group('pre')}{assign[name]}{m.group('post')}" if name in assign else m.group(0)

    return _PY_TUNE.sub(sub, _C_TUNE.sub(sub, source))


class Tuner:
    name = "tuner"

    def __init__(self, seed: int = 0):
        self.seed = seed

    def _rng(self, *salt: Any) -> random.Random:
        return random.Random(hashlib.sha256(repr((self.seed, *salt)).encode()).digest())

    def ideas(self, ctx: Context, k: int) -> list[Idea]:
        moves: list[Idea] = []
        for path in ctx.problem.seeds():  # untried seed variants first: whole new kernels
            src = path.read_text()
            if source_hash(src) not in ctx.tried:
                moves.append(Idea(f"Switch to the seed variant {path.stem}", self.name,
                                  {"kind": "variant", "path": str(path)}))
        tune_moves: list[Idea] = []
        for b in ctx.best:
            for t in tunables(b["source"]).values():
                for v in t.options:
                    if v != t.value and source_hash(apply(b["source"], {t.name: v})) not in ctx.tried:
                        tune_moves.append(Idea(f"In {b['id']}, set {t.name} from {t.value} to {v}", self.name,
                                               {"kind": "tune", "seed": b["id"], "assign": {t.name: v}}))
        self._rng(ctx.round, "order").shuffle(tune_moves)
        # Spread the round over different parameters before a second value of any one.
        seen: set[tuple[str, ...]] = set()
        first, rest = [], []
        for m in tune_moves:
            key = (m.data["seed"], *m.data["assign"])
            (rest if key in seen else first).append(m)
            seen.add(key)
        return (moves + first + rest)[:k]

    def implement(self, ctx: Context, idea: Idea, seed: dict[str, Any] | None, index: int) -> Implementation:
        if idea.data.get("kind") == "variant":
            from pathlib import Path

            src = Path(idea.data["path"]).read_text()
            if index == 0:
                return Implementation(src, self.name)
            base = src
        else:
            if seed is None:
                return Implementation(None, self.name, error="the tuner needs the seed kernel it tunes")
            base = apply(seed["source"], idea.data["assign"])
            if index == 0:
                return Implementation(base, self.name)
        # Further implementations: the move plus one random step on another tunable.
        rng = self._rng(idea.text, index)
        marks = list(tunables(base).values())
        for _ in range(20):
            if not marks:
                break
            t = rng.choice(marks)
            src = apply(base, {t.name: rng.choice(t.options)})
            if source_hash(src) not in ctx.tried and src != base:
                return Implementation(src, self.name)
        return Implementation(None, self.name, error="no untried neighbour of this move")

    def repair(self, ctx: Context, source: str, failure: str, report: str) -> Implementation:
        return Implementation(None, self.name, error="the tuner does not repair kernels")
