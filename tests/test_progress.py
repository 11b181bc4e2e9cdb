"""The search's expected candidate count follows what the rounds really propose (the H200 run of
`make run` ended at 21 of a planned 42 because the tuner used up its 21-point space)."""
from workbench.progress import CandidateCount


def test_count_shrinks_when_rounds_propose_less():
    c = CandidateCount(n_seeds=2, rounds=5, ideas=4, impls=2)
    assert c.total == 42
    for _ in range(2):
        c.update({"type": "verdict"})
    c.update({"type": "round", "round": 0})
    assert c.total == 2 + 5 * 8
    for i in range(8):
        c.update({"type": "verdict"})
    c.update({"type": "round", "round": 1})
    assert c.total == 10 + 4 * 8
    c.update({"type": "candidate", "failed": True, "error": "the space is exhausted"})
    assert c.total == 10 + 4 * 8 - 1
    for i in range(3):
        c.update({"type": "verdict"})
    c.update({"type": "round", "round": 3})  # round 2 proposed only 3; rounds 4 and 5 remain
    assert c.total == 13 + 2 * 8
    c.update({"type": "round", "round": 5})
    assert c.total == 13 and c.judged == 13
    assert not c.update({"type": "end"})  # already exact


def test_count_never_drops_below_what_was_judged():
    c = CandidateCount(n_seeds=1, rounds=1, ideas=1, impls=1)
    for _ in range(4):  # repairs judge more than planned
        c.update({"type": "verdict"})
    assert c.total == 4


def test_count_with_overlapping_rounds():
    """The tuner's rounds overlap: round 2's candidates are made and judged before round 1 closes."""
    c = CandidateCount(n_seeds=2, rounds=3, ideas=2, impls=2)
    for cid, r in [("r0-a", 0), ("r0-b", 0)] + [(f"r1-{i}", 1) for i in range(4)]:
        c.update({"type": "candidate", "candidate": cid, "round": r})
        c.update({"type": "verdict", "candidate": cid})
    for i in range(4):  # round 2 starts early: one never made, two judged
        c.update({"type": "candidate", "candidate": f"r2-{i}", "round": 2, "failed": i == 3})
    for i in range(2):
        c.update({"type": "verdict", "candidate": f"r2-{i}"})
    c.update({"type": "round", "round": 1})
    assert c.total == 6 + (4 - 1) + 4  # rounds 0-1 judged, round 2 less its failure, round 3 in full
    c.update({"type": "verdict", "candidate": "r2-2"})
    c.update({"type": "round", "round": 2})
    assert c.total == 9 + 4
