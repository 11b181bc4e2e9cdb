"""A scripted server for POST /v1/chat/completions, in the OpenAI wire format."""

from __future__ import annotations

import time
from typing import Any

from . import FakeServer, Received, Reply


class FakeOpenAIServer(FakeServer):
    """`base_url` already ends in /v1, as the openai SDK expects."""

    @property
    def base_url(self) -> str:
        return super().base_url + "/v1"

    def path_ok(self, path: str) -> bool:
        return path == "/v1/chat/completions"

    def reply_body(self, reply: Reply, request: Received) -> dict[str, Any]:
        model = request.body.get("model", "unknown") if isinstance(request.body, dict) else "unknown"
        # completion_tokens includes reasoning tokens, as OpenAI reports them.
        completion = reply.output_tokens + reply.reasoning_tokens
        return {
            "id": f"chatcmpl-fake{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": reply.text},
                    "finish_reason": reply.finish_reason or "stop",
                }
            ],
            "usage": {
                "prompt_tokens": reply.input_tokens,
                "completion_tokens": completion,
                "total_tokens": reply.input_tokens + completion,
                "completion_tokens_details": {"reasoning_tokens": reply.reasoning_tokens},
            },
        }

    def key_of(self, request: Received) -> str | None:
        auth = request.headers.get("authorization", "")
        return auth[len("Bearer "):] if auth.startswith("Bearer ") else None

    def listing_body(self, path: str) -> dict[str, Any] | None:
        if path != "/v1/models":
            return None
        return {"object": "list", "data": [{"id": "fake", "object": "model", "created": 0, "owned_by": "fake"}]}

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": {"message": message, "type": "fake_error", "code": str(status)}}
