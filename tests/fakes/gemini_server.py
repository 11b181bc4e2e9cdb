"""A scripted server for POST /v1beta/models/{model}:generateContent, in the Gemini wire
format (JSON in camelCase)."""

from __future__ import annotations

import re
from typing import Any

from . import FakeServer, Received, Reply

ROUTE = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):generateContent$")

STATUS_NAMES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


class FakeGeminiServer(FakeServer):
    """`base_url` is the host root; the SDK appends /v1beta/models/..."""

    def path_ok(self, path: str) -> bool:
        return ROUTE.match(path) is not None

    def reply_body(self, reply: Reply, request: Received) -> dict[str, Any]:
        match = ROUTE.match(request.path.split("?")[0])
        model = match.group("model") if match else "unknown"
        # candidatesTokenCount excludes thoughts; Gemini reports those separately.
        return {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": reply.text}]},
                    "finishReason": reply.finish_reason or "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": reply.input_tokens,
                "candidatesTokenCount": reply.output_tokens,
                "thoughtsTokenCount": reply.reasoning_tokens,
                "totalTokenCount": reply.input_tokens + reply.output_tokens + reply.reasoning_tokens,
            },
            "modelVersion": model,
        }

    def key_of(self, request: Received) -> str | None:
        return request.headers.get("x-goog-api-key")

    def listing_body(self, path: str) -> dict[str, Any] | None:
        match = re.match(r"^/v1beta/models/(?P<model>[^/:]+)$", path)
        if not match:
            return None
        return {"name": f"models/{match.group('model')}", "displayName": match.group("model"),
                "supportedGenerationMethods": ["generateContent"]}

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        return {"error": {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}}
