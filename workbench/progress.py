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
        self.round_of: dict[str, int] = {}
        # per round: verdicts and never-made candidates (overlapping rounds: the next one's come early)
        self.judged_in: dict[int, int] = {}
        self.failed_in: dict[int, int] = {}

    def update(self, ev: dict[str, Any]) -> bool:
        """Take one search event; True when the total changed."""
        before = self.total
        t = ev.get("type")
        if t == "candidate":
            r = self.round_of[ev.get("candidate", "")] = int(ev.get("round") or 0)
            if ev.get("failed"):
                self.failed_in[r] = self.failed_in.get(r, 0) + 1
                self.total -= 1  # never made: nothing to judge
        elif t == "verdict":
            self.judged += 1
            r = self.round_of.get(ev.get("candidate", ""), 0)
            self.judged_in[r] = self.judged_in.get(r, 0) + 1
        elif t == "round":
            r = int(ev.get("round", 0))
            self.total = sum(n for k, n in self.judged_in.items() if k <= r) + \
                sum(self.per_round - self.failed_in.get(k, 0) for k in range(r + 1, self.rounds + 1))
        elif t == "end":
            self.total = self.judged
        self.total = max(self.total, self.judged)
        return self.total != before
