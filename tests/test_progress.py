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
