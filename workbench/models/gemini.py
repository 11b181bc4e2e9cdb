"""`GeminiClient`: Google Gemini through the `google-genai` SDK (the Gemini Developer API;
`base_url` points it at another host that speaks the same API)."""

from __future__ import annotations

import json
import os

from google import genai
from google.genai import errors as genai_errors
from google.genai import types

from .base import (
    Failure,
    MalformedReply,
    ModelError,
    RawReply,
    RetryingClient,
    is_retryable_status,
    parse_retry_after,
)


def _transport_errors() -> tuple[type[Exception], ...]:
    """The HTTP library's timeout and connection errors. google-genai raises them unwrapped,
    from httpx or its fork httpx2, whichever is installed."""
    found: list[type[Exception]] = []
    for module_name in ("httpx", "httpx2"):
        try:
            module = __import__(module_name)
        except ImportError:
            continue
        found.append(module.TransportError)  # timeouts, connect/read errors, protocol errors
    return tuple(found)


TRANSPORT_ERRORS = _transport_errors()
API_VERSION = "v1beta"  # the Gemini API version that has thinking and system instructions


def to_contents(messages: list[dict[str, str]]) -> tuple[str | None, list[types.Content]]:
    """System messages become the system instruction; the rest are turns, with the
    assistant's role called "model" as Gemini names it."""
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system") or None
    contents = [
        types.Content(
            role="model" if m["role"] == "assistant" else "user",
            parts=[types.Part(text=m["content"])],
        )
        for m in messages
        if m["role"] != "system"
    ]
    return system, contents


class GeminiClient(RetryingClient):
    kind = "gemini"
    default_base_url = "https://generativelanguage.googleapis.com/"

    def _make_sdk(self) -> genai.Client:
        key = self.api_key or os.environ.get("GEMINI_API_KEY") or os.environ.get("GOOGLE_API_KEY")
        if not key:
            raise ModelError(f"{self.name}: GEMINI_API_KEY (or GOOGLE_API_KEY) is not set")
        return genai.Client(
            vertexai=False,
            api_key=key,
            http_options=types.HttpOptions(
                base_url=self.base_url,
                # Pinned: SDK defaults moved between v1beta and v1 across releases.
                api_version=API_VERSION,
                timeout=max(1, round(self.timeout_s * 1000)),  # milliseconds
                retry_options=None,  # no SDK retries: ours are the only ones
            ),
        )

    def _probe(self) -> None:
        self._client().models.get(model=self.model)  # GET models/{model}: needs the key, no tokens

    def _send(
        self, messages: list[dict[str, str]], temperature: float | None, max_output_tokens: int | None
    ) -> RawReply:
        system, contents = to_contents(messages)
        config = types.GenerateContentConfig(
            system_instruction=system,
            temperature=temperature,
            max_output_tokens=max_output_tokens,
        )
        response = self._client().models.generate_content(
            model=self.model, contents=contents, config=config
        )

        usage = response.usage_metadata
        visible = (usage.candidates_token_count or 0) if usage else 0
        thoughts = (usage.thoughts_token_count or 0) if usage else 0
        prompt = (usage.prompt_token_count or 0) if usage else 0
        if not response.candidates:
            blocked = getattr(response.prompt_feedback, "block_reason", None)
            raise MalformedReply(f"reply has no candidates (block reason: {blocked})",
                                 billed=RawReply("", self.model, prompt, visible + thoughts, thoughts))
        candidate = response.candidates[0]
        parts = (candidate.content.parts if candidate.content else None) or []
        # Thought summaries are not the answer.
        text = "".join(p.text for p in parts if p.text and not p.thought)
        reason = candidate.finish_reason
        return RawReply(
            text=text,
            model=response.model_version or self.model,
            input_tokens=prompt,
            output_tokens=visible + thoughts,  # thoughts are billed as output
            reasoning_tokens=thoughts,
            finish_reason=getattr(reason, "name", None) or (str(reason) if reason else None),
        )

    def _classify(self, exc: Exception) -> Failure | None:
        if isinstance(exc, ModelError):  # missing key: retrying cannot help
            return Failure(False, str(exc))
        if isinstance(exc, genai_errors.APIError):
            headers = getattr(getattr(exc, "response", None), "headers", None) or {}
            return Failure(
                retryable=is_retryable_status(exc.code),
                reason=f"HTTP {exc.code} {exc.status or ''}: {exc.message or exc}".strip(),
                status=exc.code,
                retry_after_s=parse_retry_after(headers.get("retry-after")),
            )
        if isinstance(exc, TRANSPORT_ERRORS):
            kind = "timed out" if "Timeout" in type(exc).__name__ else "connection error"
            return Failure(True, f"{kind}: {type(exc).__name__}: {exc}")
        # A cut-off or invalid body: a transport hiccup more often than not, so try again.
        if isinstance(exc, (json.JSONDecodeError, MalformedReply)):
            return Failure(True, f"malformed reply: {type(exc).__name__}: {exc}")
        return None
