"""A search against a local fake OpenAI server that plays the model with the problem's own seed
kernels (tunables varied), so the whole loop runs on a real device without a provider: ideas,
implementations, judging, profiler feedback. At the end it prints the profile section of the
last idea prompt the server received (what the model was told about the best kernels).

    python -m tests.fakes.play_search softmax --rounds 2 [--target cuda] [--run-id ID]
"""
from __future__ import annotations

import argparse
import hashlib
import re
import sys

from tests.fakes import FakeOpenAIServer, Received, Reply, Step
from workbench.problem import load_problem
from workbench.proposers.tuner import apply, tunables
from workbench.store import problem_path


def player(seed_sources: list[str]):
    """Ideas: numbered tunings; implementations: a seed with tunables picked by the idea's hash."""
    def respond(request: Received) -> Step:
        text = request.body["messages"][-1]["content"] if isinstance(request.body, dict) else ""
        if "Propose exactly" in text:
            k = int(re.search(r"Propose exactly (\d+)", text).group(1))
            n = text.count("-> r")  # vary with the history so rounds differ
            return Reply("\n".join(f"{i}. Retune the block and unroll sizes of the best kernel (take {n + i})."
                                   for i in range(1, k + 1)), input_tokens=len(text) // 4, output_tokens=60)
        h = int(hashlib.sha256(text[-600:].encode()).hexdigest(), 16)
        src = seed_sources[h % len(seed_sources)]
        marks = list(tunables(src).values())
        assign = {t.name: t.options[(h >> (4 * i)) % len(t.options)] for i, t in enumerate(marks)}
        return Reply(f"```python\n{apply(src, assign)}```", input_tokens=len(text) // 4, output_tokens=len(src) // 4)

    return respond


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tests.fakes.play_search")
    ap.add_argument("problem")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--target", default=None)
    ap.add_argument("--run-id", default=None)
    a = ap.parse_args(argv)
    from workbench.search import Search, SearchParams

    problem = load_problem(problem_path(a.problem))
    seeds = [p.read_text() for p in problem.seeds()]
    if not seeds:
        print(f"error: {problem.name} has no seed kernels to play with", file=sys.stderr)
        return 2
    with FakeOpenAIServer(responder=player(seeds)) as server:
        kw = {"target": a.target} if a.target else {}
        params = SearchParams(problem=a.problem, models=[f"openai:scripted@{server.base_url}"], rounds=a.rounds,
                              ideas=2, impls=2, seeds=2, **kw)
        search = Search(params, run_id=a.run_id,
                        on_event=lambda ev: print(f"{ev['type']}: {ev.get('candidate') or ev.get('round', '')} "
                                                  f"{ev.get('status', '')} {ev.get('ms') or ''}", flush=True)
                        if ev["type"] in ("verdict", "round", "profile") else None)
        store = search.run()
        ideas = [r.body["messages"][-1]["content"] for r in server.requests
                 if isinstance(r.body, dict) and "Propose exactly" in r.body["messages"][-1]["content"]]
    print(f"run {store.dir}")
    last = ideas[-1] if ideas else ""
    section = last.split("## Profile of the best kernels", 1)
    print("profile section of the last idea prompt:")
    print("## Profile of the best kernels" + section[1].split("\n## ", 1)[0] if len(section) > 1 else "(none)")
    return 0 if len(section) > 1 else 1


if __name__ == "__main__":
    sys.exit(main())
