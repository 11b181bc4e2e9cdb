"""`OpenAIClient`: the Chat Completions API through the `openai` SDK. Works with OpenAI itself
and with any server that speaks its API (pass `base_url`)."""

from __future__ import annotations

import json
import os
from typing import Any

import openai

from .base import (
    Failure,
    MalformedReply,
    ModelError,
    RawReply,
    RetryingClient,
    is_retryable_status,
    parse_retry_after,
)

# Reasoning models reject `max_tokens` and non-default temperatures.
REASONING_PREFIXES = ("o1", "o3", "o4", "gpt-5")


def is_reasoning_model(model: str) -> bool:
    return model.startswith(REASONING_PREFIXES)


class OpenAIClient(RetryingClient):
    kind = "openai"
    default_base_url = "https://api.openai.com/v1"

    def _make_sdk(self) -> openai.OpenAI:
        key = self.api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            if self.base_url is None:
                raise ModelError(f"{self.name}: OPENAI_API_KEY is not set")
            key = "unused"  # many local OpenAI-compatible servers want no key
        return openai.OpenAI(
            api_key=key,
            base_url=self.base_url,
            timeout=self.timeout_s,
            max_retries=0,  # our retry loop is the only one, and it counts attempts
        )

    def _probe(self) -> None:
        self._client().models.list()  # GET /models: needs the key, costs no tokens

    def _send(
        self, messages: list[dict[str, str]], temperature: float | None, max_output_tokens: int | None
    ) -> RawReply:
        params: dict[str, Any] = {"model": self.model, "messages": messages}
        if temperature is not None:  # never sent unless asked for: reasoning models refuse it
            params["temperature"] = temperature
        if max_output_tokens is not None:
            limit = "max_completion_tokens" if is_reasoning_model(self.model) else "max_tokens"
            params[limit] = max_output_tokens
        response = self._client().chat.completions.create(**params)

        usage = response.usage
        if not getattr(response, "choices", None):
            raise MalformedReply("reply has no choices", billed=RawReply(
                "", self.model, (usage.prompt_tokens or 0) if usage else 0,
                (usage.completion_tokens or 0) if usage else 0))
        choice = response.choices[0]
        details = getattr(usage, "completion_tokens_details", None) if usage else None
        return RawReply(
            text=choice.message.content or "",
            model=response.model or self.model,
            input_tokens=(usage.prompt_tokens or 0) if usage else 0,
            output_tokens=(usage.completion_tokens or 0) if usage else 0,
            reasoning_tokens=(getattr(details, "reasoning_tokens", None) or 0) if details else 0,
            finish_reason=choice.finish_reason,
        )

    def _classify(self, exc: Exception) -> Failure | None:
        if isinstance(exc, ModelError):  # missing key: retrying cannot help
            return Failure(False, str(exc))
        if isinstance(exc, openai.APIStatusError):
            retry_after = parse_retry_after(exc.response.headers.get("retry-after"))
            return Failure(
                retryable=is_retryable_status(exc.status_code),
                reason=f"HTTP {exc.status_code} {type(exc).__name__}: {exc.message}",
                status=exc.status_code,
                retry_after_s=retry_after,
            )
        if isinstance(exc, openai.APITimeoutError):
            return Failure(True, f"timed out after {self.timeout_s:g} s")
        if isinstance(exc, openai.APIConnectionError):
            return Failure(True, f"connection error: {exc}")
        # A cut-off or invalid body: a transport hiccup more often than not, so try again.
        if isinstance(exc, (openai.APIResponseValidationError, json.JSONDecodeError, MalformedReply)):
            return Failure(True, f"malformed reply: {type(exc).__name__}: {exc}")
        return None
