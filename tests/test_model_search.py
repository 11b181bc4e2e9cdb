"""The model search end to end with the real openai and google-genai SDKs against local fake
servers (127.0.0.1) that play the model, with latency and faults injected; the judge is the
stand-in of tests/model_play.py, so these measure the search itself: its concurrency, its
failures, its replay, its resume and its accounting."""
from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

import workbench.models.base as models_base
try:
    from tests.fakes import FakeGeminiServer, FakeOpenAIServer, HttpError, Reply, Truncated
    from tests.model_play import PROBLEM, FakePool, fake_judge, prompt_text, scripted_model
except ImportError:  # tests/ itself on sys.path
    from fakes import FakeGeminiServer, FakeOpenAIServer, HttpError, Reply, Truncated
    from model_play import PROBLEM, FakePool, fake_judge, prompt_text, scripted_model
from workbench.search import Search, SearchParams


@pytest.fixture(autouse=True)
def quick_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(models_base.RetryingClient, "_backoff", lambda self, attempt, retry_after: 0.01)


def params(models: list[str], **kw: Any) -> SearchParams:
    base = dict(problem=PROBLEM, models=models, rounds=1, ideas=4, impls=2, seeds=1, repairs=1, target="cpu",
                compile_baseline=False, profile_kernels=0, call_timeout_s=30.0)
    return SearchParams(**{**base, **kw})


def test_a_round_costs_three_calls_of_latency(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """K=4 ideas x M=2 implementations, repairs on: one idea call, eight implementation calls at
    once, four repairs at once: three calls' time, not the 1 + 8 + 4 = 13 of calls in sequence."""
    fake_judge(monkeypatch)
    latency = 2.0
    with FakeOpenAIServer(responder=scripted_model(), latency_s=latency) as server:
        s = Search(params([f"openai:gpt-x@{server.base_url}"]), run_id="pipe", runs_dir=tmp_path)
        started = time.monotonic()
        s.run()
        elapsed = time.monotonic() - started
        posts = [r for r in server.requests if r.body is not None]
    r1 = [c for c in s.state.candidates.values() if c.round == 1]
    assert len([c for c in r1 if not c.repair_of]) == 8 and len([c for c in r1 if c.repair_of]) == 4
    assert len(posts) == 13  # 1 idea call + 8 implementations + 4 repairs (BROKEN and WRONG ideas, 2 each)
    assert 3 * latency <= elapsed <= 3 * latency + 2.0, f"round took {elapsed:.1f} s"


def test_concurrency_caps_calls_in_flight(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake_judge(monkeypatch)
    latency = 0.5
    with FakeOpenAIServer(responder=scripted_model(), latency_s=latency) as server:
        s = Search(params([f"openai:gpt-x@{server.base_url}"], concurrency=2, repairs=0), run_id="cap",
                   runs_dir=tmp_path)
        started = time.monotonic()
        s.run()
        elapsed = time.monotonic() - started
    # 1 idea call, then 8 implementation calls two at a time: 5 latencies
    assert 5 * latency <= elapsed <= 5 * latency + 1.5, elapsed


def test_a_refused_key_fails_before_the_judge_and_exits_non_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                 capsys: pytest.CaptureFixture[str]):
    import workbench.search as search
    import workbench.store as store
    from workbench.__main__ import main

    def no_judge(*a: Any, **k: Any) -> Any:
        raise AssertionError("the judge ran before the models were checked")

    monkeypatch.setattr(search, "measure_facts", no_judge)
    monkeypatch.setattr(search, "time_reference", no_judge)
    monkeypatch.setattr(store, "RUNS_DIR", tmp_path)
    monkeypatch.setenv("OPENAI_API_KEY", "a-wrong-key")
    with FakeOpenAIServer(responder=scripted_model(), api_key="the-right-key") as server:
        code = main(["search", PROBLEM, "--target", "cpu", "--model", f"openai:gpt-x@{server.base_url}",
                     "--rounds", "1", "--no-compile"])
    err = capsys.readouterr().err
    assert code == 1
    assert "openai:gpt-x" in err and "401" in err and "cannot be used" in err
    assert all(r.body is None for r in server.requests)  # only the credential check, no completion


def test_models_that_produce_nothing_exit_non_zero(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]):
    import workbench.store as store
    from workbench.__main__ import main

    fake_judge(monkeypatch)
    monkeypatch.setattr(store, "RUNS_DIR", tmp_path)
    with FakeOpenAIServer(default=HttpError(500, "the model is down")) as server:
        code = main(["search", PROBLEM, "--target", "cpu", "--model", f"openai:gpt-x@{server.base_url}",
                     "--rounds", "1", "--ideas", "2", "--impls", "1", "--no-compile", "--call-attempts", "2",
                     "--profile-kernels", "0"])
    captured = capsys.readouterr()
    assert code == 1
    assert "models produced no candidate" in captured.err and "the model is down" in captured.err
    assert "NOTE: model openai:gpt-x" in captured.err  # reported on the terminal at its first failure
    assert "retries" in captured.out  # the totals are printed
    from workbench.store import RunStore, list_runs

    failures = [RunStore(r.dir).state.model_failures() for r in list_runs(tmp_path)][0]
    assert failures and all("the model is down" in f.error for f in failures)  # what the report lists


def candidate_sources(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((run_dir / "candidates").glob("*.py"))}


def test_replay_reproduces_every_candidate_with_the_servers_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake_judge(monkeypatch)
    with FakeOpenAIServer(responder=scripted_model(name="o")) as oa, \
            FakeGeminiServer(responder=scripted_model(name="g")) as gm:
        monkeypatch.setenv("GEMINI_API_KEY", "test-key")
        specs = [f"openai:gpt-x@{oa.base_url}", f"gemini:gemini-x@{gm.base_url}"]
        first = Search(params(specs, rounds=2), run_id="recorded", runs_dir=tmp_path)
        first.run()
    # both servers are gone: any network call would now fail and show as a failed call
    fake_judge(monkeypatch, FakePool())
    again = Search(params(specs, rounds=2), run_id="replayed", runs_dir=tmp_path, replay="recorded")
    again.run()
    before, after = candidate_sources(tmp_path / "recorded"), candidate_sources(tmp_path / "replayed")
    assert len(before) > 20 and before == after  # byte for byte, every candidate, repairs included
    totals = again.state.totals()["overall"]
    assert totals["failed_calls"] == 0 and totals["replayed_calls"] == totals["calls"] == len(first.state.calls)
    assert totals["input_tokens"] == 0  # nothing billed by a replay
    assert json.loads((tmp_path / "replayed" / "params.json").read_text())["replay_of"] == "recorded"


class Killed(BaseException):
    """A kill: not an Exception, so no handler on the way takes it for a failed call."""


def test_a_killed_ensemble_resumes_asking_every_model_for_its_ideas(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Killed during the second model's round-2 idea call: the resumed run asks that model
    again, and repeats no call that had been answered."""
    from workbench.models.gemini import GeminiClient

    fake_judge(monkeypatch)
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    real_send = GeminiClient._send
    idea_calls = {"n": 0, "kill": True}

    def send(self: Any, messages: list[dict[str, str]], *a: Any) -> Any:
        if "Propose exactly" in messages[-1]["content"]:
            idea_calls["n"] += 1
            if idea_calls["n"] == 2 and idea_calls["kill"]:
                raise Killed
        return real_send(self, messages, *a)

    monkeypatch.setattr(GeminiClient, "_send", send)
    with FakeOpenAIServer(responder=scripted_model(name="o")) as oa, \
            FakeGeminiServer(responder=scripted_model(name="g")) as gm:
        specs = [f"openai:gpt-x@{oa.base_url}", f"gemini:gemini-x@{gm.base_url}"]
        with pytest.raises(Killed):
            Search(params(specs, rounds=2), run_id="ens", runs_dir=tmp_path).run()
        oa_before, gm_before = len(oa.requests), len(gm.requests)
        idea_calls["kill"] = False
        s = Search(params(specs, rounds=2), run_id="ens", runs_dir=tmp_path)
        s.run()
        asked_again = [prompt_text(r) for r in oa.requests[oa_before:] if r.body]
        gemini_again = [prompt_text(r) for r in gm.requests[gm_before:] if r.body]
    assert sum("Propose exactly" in t for t in gemini_again) == 1  # the killed call, asked again
    r2 = [i for i in s.state.ideas.values() if i.round == 2]
    assert {i.model for i in r2} == set(specs) and len(r2) == 4  # each model gave its 2 ideas
    assert not any("Propose exactly" in t for t in asked_again)  # openai's round-2 ideas were not asked twice
    assert [e["id"] for e in s.store.events("start")] == ["start-0", "start-1"]
    assert all(c.verdict for c in s.state.candidates.values() if not c.failed)


def test_totals_match_what_the_servers_billed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake_judge(monkeypatch)
    monkeypatch.setenv("GEMINI_API_KEY", "test-key")
    faults = [HttpError(429, retry_after="0"), HttpError(500), Truncated(),
              Reply("I would rather not write code today.", input_tokens=700, output_tokens=50)]
    with FakeOpenAIServer(faults, responder=scripted_model(name="o")) as oa, \
            FakeGeminiServer([HttpError(503)], responder=scripted_model(name="g")) as gm:
        specs = [f"openai:gpt-5@{oa.base_url}", f"gemini:gemini-2.5-pro@{gm.base_url}"]
        s = Search(params(specs, ideas=2, impls=2, repairs=0), run_id="bill", runs_dir=tmp_path)
        s.run()
        billed = {specs[0]: oa.totals(), specs[1]: gm.totals()}
    totals = s.state.totals()
    for spec in specs:
        t = totals["per_model"][spec]
        assert (t["input_tokens"], t["output_tokens"], t["reasoning_tokens"]) == billed[spec]
    oa_t, gm_t = totals["per_model"][specs[0]], totals["per_model"][specs[1]]
    assert oa_t["retries"] == 3 and gm_t["retries"] == 1  # 429, 500 and the cut body; the 503
    assert oa_t["discarded_replies"] == 1  # the reply without code
    # both list at $1.25 in and $10 out per million tokens
    assert totals["overall"]["cost_usd"] == pytest.approx(
        sum(b[0] * 1.25 + b[1] * 10.0 for b in billed.values()) / 1e6)
    best = json.loads((s.store.dir / "best.json").read_text())
    assert best["totals"]["overall"]["input_tokens"] == sum(b[0] for b in billed.values())
    assert s.store.events("end")[-1]["totals"] == json.loads(json.dumps(totals))


def test_the_output_cap_and_call_limits_reach_the_wire(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    fake_judge(monkeypatch)
    with FakeOpenAIServer(responder=scripted_model()) as server:
        Search(params([f"openai:gpt-5@{server.base_url}"], ideas=1, impls=1, max_output_tokens=1234),
               run_id="cap", runs_dir=tmp_path).run()
    posts = [r.body for r in server.requests if r.body]
    assert posts and all(b["max_completion_tokens"] == 1234 for b in posts)


def test_cpu_prompts_ask_for_cpp_and_history_lists_every_implementation(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch):
    fake_judge(monkeypatch)
    with FakeOpenAIServer(responder=scripted_model()) as server:
        Search(params([f"openai:gpt-x@{server.base_url}"], rounds=2), run_id="h", runs_dir=tmp_path).run()
        texts = [prompt_text(r) for r in server.requests if r.body]
    systems = [r.body["messages"][0]["content"] for r in server.requests if r.body]
    assert all("CUDA" not in t and "cuda" not in t for t in texts + systems)
    assert any("cpp_sources" in t for t in texts)
    round2 = [t for t in texts if "Propose exactly" in t][1]
    history = round2.split("## Ideas tried so far", 1)[1].split("## Your task", 1)[0]
    assert history.count("  -> r1-") == 12  # 8 implementations and 4 repairs, each with its outcome
    assert "build error: kernel.cpp:31:15: error: expected ';'" in history
    assert "incorrect: mismatch: 1048576 of 1048576 elements" in history
    assert "correct, " in history and "ms" in history
    assert "-> outcome:" not in history  # no blank entries


@pytest.mark.slow
def test_a_model_search_through_the_real_cpu_judge(tmp_path: Path):
    """The scripted model's compiler error and mismatch go to the real judge, come back in the
    repair prompts, and the repaired files are judged; build seconds are recorded. Each new C++
    source is a real build (~20 s on a 2-core box)."""
    ideas = ["Block the loop in cache-sized chunks", "BROKEN: a variant that does not compile",
             "WRONG: a variant that drops the offset"]
    with FakeOpenAIServer(responder=scripted_model(ideas)) as server:
        s = Search(params([f"openai:gpt-x@{server.base_url}"], ideas=3, impls=1, trials=2, samples=10, screen=False),
                   run_id="real", runs_dir=tmp_path)
        s.run()
        texts = [prompt_text(r) for r in server.requests if r.body]
    cands = s.state.candidates
    assert cands["r1-i0-m0"].verdict.status == "correct", cands["r1-i0-m0"].verdict.reasons
    assert cands["r1-i1-m0"].verdict.status == "build_error"
    assert cands["r1-i2-m0"].verdict.status == "incorrect"
    assert cands["r1-i1-m0-fix1"].verdict.status == cands["r1-i2-m0-fix1"].verdict.status == "correct"
    repairs = [t for t in texts if "What the evaluator reported" in t]
    assert len(repairs) == 2
    assert any("build_error" in t and "error" in t.split("What the evaluator reported", 1)[1] for t in repairs)
    assert any("incorrect" in t and "mismatch" in t for t in repairs)
    judged = [c.verdict for c in cands.values() if c.verdict and not c.verdict.copied_from]
    assert judged and all(v.build_cached is not None for v in judged)  # every verdict carries its build record
    assert all(v.build_seconds > 0 for v in judged if v.build_cached is False)  # a real build took time


def test_replay_from_the_command_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]):
    import workbench.store as store
    from workbench.__main__ import main

    fake_judge(monkeypatch)
    monkeypatch.setattr(store, "RUNS_DIR", tmp_path)
    with FakeOpenAIServer(responder=scripted_model()) as server:
        assert main(["search", PROBLEM, "--target", "cpu", "--model", f"openai:gpt-x@{server.base_url}",
                     "--rounds", "1", "--ideas", "2", "--impls", "1", "--no-compile", "--profile-kernels", "0",
                     "--run-id", "cli-recorded"]) == 0
    assert main(["search", "--replay", "cli-recorded", "--run-id", "cli-replayed"]) == 0
    assert candidate_sources(tmp_path / "cli-recorded") == candidate_sources(tmp_path / "cli-replayed")
    assert "NOTE: model" not in capsys.readouterr().err  # no call failed: none needed the network
    assert main(["search"]) == 2
