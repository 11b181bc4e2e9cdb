"""How many candidates a search will judge, revised as it runs.

The plan is the seeds plus rounds x ideas x implementations. A round can propose fewer: a tuner
whose space is used up (softmax's cluster_registers has 21 points; the H200 run of `make run`
exhausted it in round 3), a model call that failed. Counting only the plan left the bar at 50%
with minutes of ETA when the search ended, so each failed candidate and each finished round
revises the total: judged so far plus what the remaining rounds can still bring.
"""
from __future__ import annotations

from typing import Any


class CandidateCount:
    def __init__(self, n_seeds: int, rounds: int, ideas: int, impls: int):
        self.per_round = ideas * impls
        self.rounds = rounds
        self.judged = 0
        self.total = n_seeds + rounds * self.per_round

    def update(self, ev: dict[str, Any]) -> bool:
        """Take one search event; True when the total changed."""
        before = self.total
        t = ev.get("type")
        if t == "verdict":
            self.judged += 1
        elif t == "candidate" and ev.get("failed"):
            self.total -= 1  # never made: nothing to judge
        elif t == "round":
            self.total = self.judged + max(0, self.rounds - int(ev.get("round", 0))) * self.per_round
        elif t == "end":
            self.total = self.judged
        self.total = max(self.total, self.judged)
        return self.total != before
