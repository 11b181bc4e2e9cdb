"""The OpenAI and Gemini clients, through their real SDKs, against local fake servers."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from workbench.prompts import extract_code
from workbench.models.base import (
    RETRY_AFTER_CEILING_S,
    Completion,
    ModelClient,
    ModelError,
    RetryingClient,
    cost_usd,
    price_per_mtok,
)
from workbench.models import make_client

try:
    from tests.fakes import (
        Delay,
        FakeGeminiServer,
        FakeOpenAIServer,
        HttpError,
        Reply,
        Truncated,
    )
except ImportError:  # tests/ itself on sys.path (pytest's rootdir-less import mode)
    from fakes import (
        Delay,
        FakeGeminiServer,
        FakeOpenAIServer,
        HttpError,
        Reply,
        Truncated,
    )

KEY = "test-key-not-real"
MESSAGES = [
    {"role": "system", "content": "You write CUDA."},
    {"role": "user", "content": "Make softmax fast."},
    {"role": "assistant", "content": "Which sizes?"},
    {"role": "user", "content": "4096 x 65536."},
]
FAST = dict(backoff_s=0.01, max_backoff_s=0.05)  # keep retry sleeps short in tests


@dataclass
class Backend:
    kind: str
    model: str
    server_cls: type
    stop_reason: str

    @property
    def spec(self) -> str:
        return f"{self.kind}:{self.model}"

    def client(self, server: Any, **options: Any) -> RetryingClient:
        settings: dict[str, Any] = dict(api_key=KEY, timeout_s=5.0, max_attempts=3, **FAST)
        settings.update(options)
        client = make_client(self.spec, base_url=server.base_url, **settings)
        assert isinstance(client, RetryingClient)
        return client


OPENAI = Backend("openai", "gpt-5", FakeOpenAIServer, "stop")
GEMINI = Backend("gemini", "gemini-2.5-pro", FakeGeminiServer, "STOP")


@pytest.fixture(params=[OPENAI, GEMINI], ids=lambda b: b.kind)
def backend(request: pytest.FixtureRequest) -> Backend:
    return request.param


def test_normal_reply_counts_tokens_and_cost(backend: Backend) -> None:
    reply = Reply("hello kernel", input_tokens=1000, output_tokens=300, reasoning_tokens=200)
    with backend.server_cls([reply]) as server:
        client = backend.client(server)
        out = client.complete(MESSAGES, max_output_tokens=4096)

    assert isinstance(client, ModelClient)
    assert client.name == backend.spec
    assert out.text == "hello kernel"
    assert out.model == backend.model
    assert (out.input_tokens, out.output_tokens, out.reasoning_tokens) == (1000, 500, 200)
    # gpt-5 and gemini-2.5-pro both list at $1.25 in / $10 out per million tokens.
    assert out.cost_usd == pytest.approx((1000 * 1.25 + 500 * 10.0) / 1e6)
    assert out.finish_reason == backend.stop_reason
    assert out.cached is False and out.attempts == 1 and out.seconds > 0
    assert len(server.requests) == 1


def test_openai_request_on_the_wire() -> None:
    with FakeOpenAIServer([Reply("a"), Reply("b"), Reply("c")]) as server:
        OPENAI.client(server).complete(MESSAGES, max_output_tokens=256)
        OPENAI.client(server).complete(MESSAGES, temperature=0.7)
        make_client("openai:gpt-4o", base_url=server.base_url, api_key=KEY).complete(
            MESSAGES, temperature=0.2, max_output_tokens=64
        )
    reasoning, with_temp, classic = (r.body for r in server.requests)
    assert server.requests[0].path == "/v1/chat/completions"
    assert server.requests[0].headers["authorization"] == f"Bearer {KEY}"
    assert reasoning["model"] == "gpt-5" and reasoning["messages"] == MESSAGES
    # Reasoning models: max_completion_tokens, and no temperature unless one is given.
    assert reasoning["max_completion_tokens"] == 256
    assert "max_tokens" not in reasoning and "temperature" not in reasoning
    assert with_temp["temperature"] == 0.7
    assert classic["max_tokens"] == 64 and classic["temperature"] == 0.2
    assert "max_completion_tokens" not in classic


def test_gemini_request_on_the_wire() -> None:
    with FakeGeminiServer([Reply("a")]) as server:
        GEMINI.client(server).complete(MESSAGES, temperature=0.3, max_output_tokens=512)
    (req,) = server.requests
    assert req.path.startswith("/v1beta/models/gemini-2.5-pro:generateContent")
    assert req.headers["x-goog-api-key"] == KEY
    body = req.body
    assert body["systemInstruction"]["parts"][0]["text"] == "You write CUDA."
    assert [c["role"] for c in body["contents"]] == ["user", "model", "user"]
    assert [c["parts"][0]["text"] for c in body["contents"]] == [
        "Make softmax fast.", "Which sizes?", "4096 x 65536."
    ]
    assert body["generationConfig"] == {"temperature": 0.3, "maxOutputTokens": 512}


def test_rate_limit_is_retried_after_retry_after(backend: Backend) -> None:
    with backend.server_cls([HttpError(429, retry_after="0.4"), Reply("ok")]) as server:
        client = backend.client(server)
        started = time.monotonic()
        out = client.complete(MESSAGES)
        elapsed = time.monotonic() - started
    assert out.text == "ok" and out.attempts == 2
    assert len(server.requests) == 2 and client.total_attempts == 2
    assert elapsed >= 0.4  # the server's Retry-After beat our 0.01 s backoff


@pytest.mark.parametrize("status", [500, 503])
def test_server_error_then_success(backend: Backend, status: int) -> None:
    with backend.server_cls([HttpError(status), Reply("ok")]) as server:
        out = backend.client(server).complete(MESSAGES)
    assert out.text == "ok" and out.attempts == 2 and len(server.requests) == 2


def test_timeout_then_success(backend: Backend) -> None:
    with backend.server_cls([Delay(3.0), Reply("in time")]) as server:
        client = backend.client(server, timeout_s=0.5)
        started = time.monotonic()
        out = client.complete(MESSAGES)
        elapsed = time.monotonic() - started
    assert out.text == "in time" and out.attempts == 2
    assert 0.5 <= elapsed < 2.5  # gave up on the slow reply instead of waiting it out
    assert len(server.requests) == 2


def test_persistent_server_error_gives_up_after_max_attempts(backend: Backend) -> None:
    with backend.server_cls(default=HttpError(500)) as server:
        client = backend.client(server, max_attempts=4)
        with pytest.raises(ModelError) as err:
            client.complete(MESSAGES)
    assert err.value.attempts == 4 and err.value.status == 500 and err.value.retryable
    assert len(server.requests) == 4
    assert "500" in str(err.value) and backend.spec in str(err.value)


@pytest.mark.parametrize("status", [400, 401, 404])
def test_client_errors_are_not_retried(backend: Backend, status: int) -> None:
    with backend.server_cls([HttpError(status)], default=Reply("should not be reached")) as server:
        with pytest.raises(ModelError) as err:
            backend.client(server).complete(MESSAGES)
    assert err.value.status == status and err.value.attempts == 1
    assert not err.value.retryable
    assert len(server.requests) == 1


def test_truncated_json_is_retried(backend: Backend) -> None:
    with backend.server_cls([Truncated(), Reply("whole")]) as server:
        out = backend.client(server).complete(MESSAGES)
    assert out.text == "whole" and out.attempts == 2


def test_persistent_truncated_json_is_a_model_error(backend: Backend) -> None:
    with backend.server_cls(default=Truncated()) as server:
        with pytest.raises(ModelError, match="malformed"):
            backend.client(server, max_attempts=2).complete(MESSAGES)
    assert len(server.requests) == 2


def test_connection_refused_is_retried_then_fails(backend: Backend) -> None:
    with socket.socket() as s:  # a port with nobody listening
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    class Nowhere:
        base_url = f"http://127.0.0.1:{port}" + ("/v1" if backend.kind == "openai" else "")

    with pytest.raises(ModelError, match="connection") as err:
        backend.client(Nowhere, max_attempts=2).complete(MESSAGES)
    assert err.value.attempts == 2 and err.value.retryable


def test_garbage_reply_is_returned_and_has_no_code(backend: Backend) -> None:
    garbage = "I am sorry, as a large language model I cannot ☃ {{{ ]]"
    with backend.server_cls([Reply(garbage)]) as server:
        out = backend.client(server).complete(MESSAGES)
    assert out.text == garbage
    assert extract_code(out.text) is None


def test_cache_hit_needs_no_server(backend: Backend, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with backend.server_cls([Reply("first", input_tokens=7, output_tokens=9)]) as server:
        base_url = server.base_url
        first = backend.client(server, cache_dir=cache).complete(MESSAGES, temperature=0.5)
    assert first.cached is False and len(server.requests) == 1

    # The server is gone: only the cache can answer.
    class Gone:
        pass

    Gone.base_url = base_url  # type: ignore[attr-defined]
    replay = backend.client(Gone, cache_dir=cache, api_key=None, max_attempts=1)
    again = replay.complete(MESSAGES, temperature=0.5)
    assert again.cached is True and again.attempts == 0
    assert (again.text, again.input_tokens, again.output_tokens) == ("first", 7, 9)
    assert again.cost_usd == first.cost_usd
    assert replay.total_attempts == 0

    # A different request (temperature) is a miss and does go to the (absent) network.
    with pytest.raises(ModelError):
        backend.client(Gone, cache_dir=cache, max_attempts=1).complete(MESSAGES, temperature=0.9)

    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].suffix == ".json"  # no temporary files left behind
    stored = json.loads(files[0].read_text())
    assert stored["request"]["messages"] == MESSAGES
    assert KEY not in files[0].read_text()


def test_cache_key_covers_the_whole_request(tmp_path: Path) -> None:
    with FakeOpenAIServer(default=Reply("r")) as server:
        client = OPENAI.client(server, cache_dir=tmp_path)
        client.complete(MESSAGES)
        client.complete(MESSAGES)  # hit
        client.complete(MESSAGES, max_output_tokens=10)  # miss
        client.complete(MESSAGES[:2])  # miss
        OPENAI.client(server, cache_dir=tmp_path).complete(MESSAGES)  # hit from a new client
        mini = make_client("openai:gpt-5-mini", base_url=server.base_url, api_key=KEY, cache_dir=tmp_path)
        mini.complete(MESSAGES)  # miss: another model
    assert len(server.requests) == 4
    assert len(list(tmp_path.glob("*.json"))) == 4


def test_corrupt_cache_entry_is_a_miss(tmp_path: Path) -> None:
    with FakeOpenAIServer(default=Reply("fresh")) as server:
        client = OPENAI.client(server, cache_dir=tmp_path)
        client.complete(MESSAGES)
        (entry,) = tmp_path.glob("*.json")
        entry.write_text("{not json")
        out = client.complete(MESSAGES)
    assert out.cached is False and out.text == "fresh" and len(server.requests) == 2


def test_missing_key_fails_without_a_request(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("GEMINI_API_KEY", "GOOGLE_API_KEY", "OPENAI_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    with FakeGeminiServer([Reply("x")]) as server:
        with pytest.raises(ModelError, match="GEMINI_API_KEY"):
            GEMINI.client(server, api_key=None).complete(MESSAGES)
    assert server.requests == []
    with pytest.raises(ModelError, match="OPENAI_API_KEY"):
        make_client("openai:gpt-5", max_attempts=3).complete(MESSAGES)
    # the pre-search check says it once, naming the model once
    with pytest.raises(ModelError) as e:
        make_client("openai:gpt-5").check()
    assert str(e.value) == "openai:gpt-5: OPENAI_API_KEY is not set"


def test_key_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "env-openai-key")
    monkeypatch.delenv("GEMINI_API_KEY", raising=False)
    monkeypatch.setenv("GOOGLE_API_KEY", "env-google-key")
    with FakeOpenAIServer([Reply("x")]) as o, FakeGeminiServer([Reply("y")]) as g:
        make_client("openai:gpt-5", base_url=o.base_url).complete(MESSAGES)
        make_client("gemini:gemini-2.5-flash", base_url=g.base_url).complete(MESSAGES)
    assert o.requests[0].headers["authorization"] == "Bearer env-openai-key"
    assert g.requests[0].headers["x-goog-api-key"] == "env-google-key"


def test_prices() -> None:
    assert price_per_mtok("gpt-5-mini-2025-08-07") == price_per_mtok("gpt-5-mini")
    assert price_per_mtok("gpt-5-2025-08-07") == price_per_mtok("gpt-5") != price_per_mtok("gpt-5-mini")
    assert price_per_mtok("my-local-llama") is None
    assert cost_usd("my-local-llama", 10**6, 10**6) == 0.0
    assert cost_usd("gemini-2.5-flash", 2 * 10**6, 10**6) == pytest.approx(2 * 0.30 + 2.50)


def test_unknown_model_costs_nothing() -> None:
    with FakeOpenAIServer([Reply("x", input_tokens=10**6)]) as server:
        out = make_client("openai:local-coder", base_url=server.base_url, api_key=KEY).complete(MESSAGES)
    assert out.cost_usd == 0.0 and out.input_tokens == 10**6


def test_backoff_grows_with_jitter_and_caps() -> None:
    client = make_client("openai:gpt-5", api_key=KEY, backoff_s=1.0, max_backoff_s=8.0)
    assert isinstance(client, RetryingClient)
    for attempt, full in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 8.0)]:
        delays = [client._backoff(attempt, None) for _ in range(200)]
        assert all(full / 2 <= d <= full for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert client._backoff(1, 5.0) >= 5.0  # Retry-After wins over a shorter backoff
    assert client._backoff(1, 20.0) >= 20.0  # ... even above our own cap
    assert client._backoff(1, 10_000.0) <= RETRY_AFTER_CEILING_S  # but not forever


@pytest.mark.parametrize("spec", ["tuner", "tuner:default", "openai", "openai:", "mistral:large", ""])
def test_make_client_rejects_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError):
        make_client(spec)


def test_completion_round_trips_through_a_dict() -> None:
    c = Completion("t", "m", 1, 2, reasoning_tokens=1, cost_usd=0.5, seconds=1.5, finish_reason="stop")
    assert Completion.from_dict(json.loads(json.dumps(c.to_dict()))) == c


def test_messages_are_validated() -> None:
    client = make_client("openai:gpt-5", api_key=KEY)
    with pytest.raises(ValueError):
        client.complete([{"role": "tool", "content": "x"}])
    with pytest.raises(ValueError):
        client.complete([{"role": "system", "content": "only a system prompt"}])


def test_importing_the_base_pulls_in_no_sdk() -> None:
    code = (
        "import sys, workbench.proposers.base, workbench.models, workbench.proposers.llm, workbench.search, workbench.prompts;"
        "bad = [m for m in ('openai', 'google.genai') if m in sys.modules];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
