"""The common protocol of model clients: one reply (`Completion`), the `ModelClient` protocol,
retries with backoff that count every attempt and every billed token, and a response cache.

This module imports no SDK and nothing from openai.py / gemini.py (they import it);
`workbench.models.make_client` picks the subclass.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

# List prices in USD per million tokens (input, output), as published by OpenAI and Google in
# 2025. Reasoning ("thinking") tokens are billed as output. Gemini 2.5 Pro costs more above
# 200k prompt tokens; our prompts stay far below that, so the lower tier is used. Models not
# listed cost 0.0 (local or OpenAI-compatible servers, or a model newer than this table).
PRICES_PER_MTOK: dict[str, tuple[float, float]] = {
    "gpt-5": (1.25, 10.00),
    "gpt-5-mini": (0.25, 2.00),
    "gpt-5-nano": (0.05, 0.40),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "o1": (15.00, 60.00),
    "o3": (2.00, 8.00),
    "o3-mini": (1.10, 4.40),
    "o4-mini": (1.10, 4.40),
    "gemini-2.5-pro": (1.25, 10.00),
    "gemini-2.5-flash": (0.30, 2.50),
    "gemini-2.5-flash-lite": (0.10, 0.40),
    "gemini-2.0-flash": (0.10, 0.40),
}


def price_per_mtok(model: str) -> tuple[float, float] | None:
    """The (input, output) price of `model`: an exact match, else the longest listed name that
    `model` extends with a dash (dated snapshots such as "gpt-5-2025-08-07"), else None."""
    if model in PRICES_PER_MTOK:
        return PRICES_PER_MTOK[model]
    matches = [name for name in PRICES_PER_MTOK if model.startswith(name + "-")]
    return PRICES_PER_MTOK[max(matches, key=len)] if matches else None


def cost_usd(model: str, input_tokens: int, output_tokens: int) -> float:
    """What a call cost at list price; 0.0 for models not in `PRICES_PER_MTOK`."""
    price = price_per_mtok(model)
    if price is None:
        return 0.0
    return (input_tokens * price[0] + output_tokens * price[1]) / 1e6


@dataclass
class Completion:
    """One model reply. `output_tokens` counts every billed output token, reasoning included;
    `reasoning_tokens` is the part of it spent thinking (0 if the API does not say)."""

    text: str
    model: str
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    seconds: float = 0.0  # wall time of the call, retries and pauses included
    cached: bool = False  # served from the response cache, no network
    finish_reason: str | None = None
    attempts: int = 1  # network attempts this call made (0 when cached)
    # Tokens of every attempt whose body reported usage, retried ones included: what was billed.
    billed_input_tokens: int = 0
    billed_output_tokens: int = 0
    billed_reasoning_tokens: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Completion:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


class ModelError(RuntimeError):
    """A model call that failed for good: a non-retryable error, or retries used up."""

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        attempts: int = 0,
        retryable: bool = False,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts
        self.retryable = retryable  # whether the last failure was of a retryable kind
        self.billed = (0, 0, 0)  # (input, output, reasoning) tokens of attempts that reported usage
        self.cost_usd = 0.0


@runtime_checkable
class ModelClient(Protocol):
    name: str  # "openai:gpt-5", "gemini:gemini-2.5-pro"

    def complete(
        self,
        messages: list[dict],
        *,
        temperature: float | None = None,
        max_output_tokens: int | None = None,
    ) -> Completion: ...


@dataclass(frozen=True)
class Failure:
    """How one failed attempt is handled: retried or not, and what it was."""

    retryable: bool
    reason: str
    status: int | None = None
    retry_after_s: float | None = None


@dataclass
class RawReply:
    """What a client's one network call returns, before cost and timing are added."""

    text: str
    model: str
    input_tokens: int
    output_tokens: int
    reasoning_tokens: int = 0
    finish_reason: str | None = None


class MalformedReply(Exception):
    """The server answered 200 but not with a usable reply (no choices, no candidates).
    `billed` carries the usage the body still reported, so a discarded reply is counted."""

    def __init__(self, message: str, billed: RawReply | None = None) -> None:
        super().__init__(message)
        self.billed = billed


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (a number; HTTP dates are rare from these APIs)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


RETRYABLE_STATUS = frozenset({408, 409, 429})  # plus every 5xx
RETRY_AFTER_CEILING_S = 120.0


def is_retryable_status(status: int | None) -> bool:
    return status is not None and (status in RETRYABLE_STATUS or status >= 500)


class ResponseCache:
    """Completions stored as JSON files named by the sha256 of the whole request, so a run can
    be replayed without the network. Unreadable entries count as misses."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    @staticmethod
    def key(request: dict[str, Any]) -> str:
        canonical = json.dumps(request, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(canonical.encode("utf-8")).hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> Completion | None:
        try:
            data = json.loads(self.path(key).read_text(encoding="utf-8"))
            return Completion.from_dict(data["completion"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def put(self, key: str, request: dict[str, Any], completion: Completion) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        payload = {"request": request, "completion": completion.to_dict()}
        # Write to a temporary file in the same directory, then rename: readers (and a run
        # killed mid-write) never see a half-written entry.
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{key[:16]}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(payload, f, ensure_ascii=False, indent=1)
            os.replace(tmp, self.path(key))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise


def check_messages(messages: list[dict]) -> list[dict[str, str]]:
    """Messages as plain {"role", "content"} dicts; a clear error for anything else."""
    clean: list[dict[str, str]] = []
    for i, m in enumerate(messages):
        role, content = (m.get("role"), m.get("content")) if isinstance(m, dict) else (None, None)
        if role not in ("system", "user", "assistant") or not isinstance(content, str):
            raise ValueError(f"message {i}: need role system|user|assistant and str content")
        clean.append({"role": role, "content": content})
    if not any(m["role"] != "system" for m in clean):
        raise ValueError("messages need at least one user or assistant message")
    return clean


class RetryingClient(ABC):
    """The shared call path: cache lookup, attempts with backoff, cost, cache store.
    Subclasses supply one network call (`_send`) and how to judge its exceptions (`_classify`).
    SDK retries are switched off in subclasses, so every attempt is made and counted here."""

    kind: ClassVar[str]
    default_base_url: ClassVar[str]

    def __init__(
        self,
        model: str,
        *,
        base_url: str | None = None,
        api_key: str | None = None,
        cache_dir: str | Path | None = None,
        timeout_s: float = 300,
        max_attempts: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.model = model
        self.name = f"{self.kind}:{model}"
        self._sdk: Any = None
        self._sdk_lock = threading.Lock()
        self.base_url = base_url
        self.api_key = api_key
        self.cache = ResponseCache(cache_dir) if cache_dir is not None else None
        self.timeout_s = timeout_s
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._lock = threading.Lock()
        self.total_attempts = 0  # network attempts over this client's life, retries included

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, base_url={self.base_url!r})"

    def request(
        self, messages: list[dict], temperature: float | None, max_output_tokens: int | None
    ) -> dict[str, Any]:
        """Everything that determines a reply; its hash is the cache key. No API key."""
        return {
            "kind": self.kind,
            "model": self.model,
            "base_url": self.base_url or self.default_base_url,
            "messages": check_messages(messages),
            "temperature": temperature,
            "max_output_tokens": max_output_tokens,
        }

    def complete(
        self,
        messages: list[dict],
        *,
        temperature: float | None = None,
        max_output_tokens: int | None = None,
    ) -> Completion:
        request = self.request(messages, temperature, max_output_tokens)
        key = ResponseCache.key(request)
        if self.cache is not None:
            hit = self.cache.get(key)
            if hit is not None:
                return replace(hit, cached=True, attempts=0)

        started = time.monotonic()
        billed = [0, 0, 0]
        try:
            reply, attempts = self._attempt(request["messages"], temperature, max_output_tokens, billed)
        except ModelError as e:
            e.billed = (billed[0], billed[1], billed[2])
            e.cost_usd = cost_usd(self.model, billed[0], billed[1])
            raise
        completion = Completion(
            text=reply.text,
            model=reply.model or self.model,
            input_tokens=reply.input_tokens,
            output_tokens=reply.output_tokens,
            reasoning_tokens=reply.reasoning_tokens,
            # Price by the name we asked for: servers answer with dated snapshot names. Every
            # attempt that reported usage is priced, retried ones too.
            cost_usd=cost_usd(self.model, billed[0], billed[1]),
            seconds=time.monotonic() - started,
            cached=False,
            finish_reason=reply.finish_reason,
            attempts=attempts,
            billed_input_tokens=billed[0],
            billed_output_tokens=billed[1],
            billed_reasoning_tokens=billed[2],
        )
        if self.cache is not None:
            self.cache.put(key, request, completion)
        return completion

    def _attempt(
        self,
        messages: list[dict[str, str]],
        temperature: float | None,
        max_output_tokens: int | None,
        billed: list[int],
    ) -> tuple[RawReply, int]:
        for attempt in range(1, self.max_attempts + 1):
            with self._lock:
                self.total_attempts += 1
            try:
                reply = self._send(messages, temperature, max_output_tokens)
                _add_usage(billed, reply)
                return reply, attempt
            except Exception as exc:  # judged below; unknown kinds become non-retryable
                if isinstance(exc, MalformedReply) and exc.billed is not None:
                    _add_usage(billed, exc.billed)
                failure = self._classify(exc)
                if failure is None:
                    failure = Failure(False, f"{type(exc).__name__}: {exc}")
                last_try = attempt == self.max_attempts
                if not failure.retryable or last_try:
                    why = "gave up after" if failure.retryable else "not retryable, after"
                    raise ModelError(
                        f"{self.name}: {failure.reason} ({why} {attempt} attempt(s))",
                        status=failure.status,
                        attempts=attempt,
                        retryable=failure.retryable,
                    ) from exc
                self._sleep(self._backoff(attempt, failure.retry_after_s))
        raise AssertionError("unreachable")

    def _backoff(self, attempt: int, retry_after_s: float | None) -> float:
        """Exponential backoff with jitter (half fixed, half random, so concurrent callers
        spread out), capped at `max_backoff_s`. A server's Retry-After is honoured even above
        that cap, up to `RETRY_AFTER_CEILING_S`, so a bogus header cannot stall a run."""
        delay = min(self.max_backoff_s, self.backoff_s * 2 ** (attempt - 1))
        delay = delay * (0.5 + 0.5 * random.random())
        if retry_after_s is not None:
            delay = max(delay, min(retry_after_s, RETRY_AFTER_CEILING_S))
        return delay

    def _client(self) -> Any:
        """The SDK client, made on the first cache miss, so a replay from the cache needs no key."""
        with self._sdk_lock:
            if self._sdk is None:
                self._sdk = self._make_sdk()
            return self._sdk

    def check(self) -> str | None:
        """Reach the endpoint once without spending tokens (list or get models) before a search
        spends minutes elsewhere. Raises ModelError when the key is missing or refused or the
        host cannot be reached; returns a warning for anything else (an endpoint without a
        model listing still works for completions), None when all is well."""
        try:
            self._probe()
        except ModelError:  # already says which model and why (a missing key)
            raise
        except Exception as exc:
            failure = self._classify(exc) or Failure(False, f"{type(exc).__name__}: {exc}")
            if failure.status in (401, 403) or (failure.status is None and "connection error" in failure.reason):
                raise ModelError(f"{self.name}: {failure.reason}", status=failure.status, attempts=1) from exc
            return f"{self.name}: could not check the endpoint ({failure.reason}); trying completions anyway"
        return None

    @abstractmethod
    def _probe(self) -> None:
        """One cheap request that needs the key (a model listing), no retries."""

    @abstractmethod
    def _make_sdk(self) -> Any:
        """A new SDK client for this endpoint, with the SDK's own retries off."""

    @abstractmethod
    def _send(
        self, messages: list[dict[str, str]], temperature: float | None, max_output_tokens: int | None
    ) -> RawReply:
        """One network call, no retries."""

    @abstractmethod
    def _classify(self, exc: Exception) -> Failure | None:
        """How to handle an exception from `_send`; None for kinds the client does not know."""


def _add_usage(billed: list[int], reply: RawReply) -> None:
    billed[0] += reply.input_tokens
    billed[1] += reply.output_tokens
    billed[2] += reply.reasoning_tokens
