"""Model clients, one package: the shared call path (`base`), the OpenAI and Gemini clients
(each imports its SDK, only when a client of its kind is made), and `make_client` from a spec.

A spec is "<kind>:<model>" or "<kind>:<model>@<base-url>", e.g. "openai:gpt-5",
"openai:qwen3-coder@http://127.0.0.1:8000/v1", "gemini:gemini-2.5-pro@http://127.0.0.1:9000".
Keys come from each provider's usual variables: OPENAI_API_KEY; GEMINI_API_KEY or GOOGLE_API_KEY.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from workbench.models.base import Completion, ModelClient, ModelError, RetryingClient, cost_usd

KINDS = ("openai", "gemini")

__all__ = ["Completion", "ModelClient", "ModelError", "RetryingClient", "cost_usd", "make_client", "parse_spec"]


def parse_spec(spec: str) -> tuple[str, str, str | None]:
    """(kind, model, base_url or None) from a spec; a clear ValueError for anything else."""
    kind, sep, rest = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "tuner":
        raise ValueError("'tuner' is the offline proposer, not a model client")
    model, at, url = rest.partition("@")
    model, url = model.strip(), url.strip()
    if not sep or not model or (at and not url):
        raise ValueError(f"model spec {spec!r}: expected '<kind>:<model>' or '<kind>:<model>@<base-url>'")
    if kind not in KINDS:
        raise ValueError(f"model spec {spec!r}: unknown client kind {kind!r} ({', '.join(KINDS)})")
    if url and not url.startswith(("http://", "https://")):
        raise ValueError(f"model spec {spec!r}: the base URL after '@' must start with http:// or https://")
    return kind, model, url or None


def make_client(
    spec: str,
    *,
    base_url: str | None = None,
    cache_dir: str | Path | None = None,
    timeout_s: float = 300,
    max_attempts: int = 5,
    api_key: str | None = None,
    backoff_s: float = 1.0,
    max_backoff_s: float = 60.0,
) -> RetryingClient:
    """A client from a spec. A URL in the spec wins over `base_url` (the fallback for specs
    without one; None: the vendor's own). `cache_dir`: replies cached by request (None: none).
    `timeout_s`: the limit of each attempt; `max_attempts`: attempts per call, retries
    included; `backoff_s` / `max_backoff_s`: the first and the largest pause between them."""
    kind, model, url = parse_spec(spec)
    options: dict[str, Any] = dict(base_url=url or base_url, api_key=api_key, cache_dir=cache_dir,
                                   timeout_s=timeout_s, max_attempts=max_attempts, backoff_s=backoff_s,
                                   max_backoff_s=max_backoff_s)
    if kind == "openai":
        from workbench.models.openai import OpenAIClient

        return OpenAIClient(model, **options)
    from workbench.models.gemini import GeminiClient

    return GeminiClient(model, **options)
