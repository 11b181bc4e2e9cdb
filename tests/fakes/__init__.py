"""Local HTTP servers that speak the OpenAI and Gemini wire formats, for testing the real SDKs
without the network. Each serves a script: a queue of steps, one per request (a reply, an HTTP
error, a delay, a truncated body), and records every request it receives. They bind 127.0.0.1
on a free port and run in a daemon thread. Instead of a script, a `responder` may choose each
step from the request (a scripted model that answers idea prompts with ideas and code prompts
with code). `latency_s` delays every answer (a slow model); `api_key` makes every request
without that key a 401; `billed` lists the usage of every complete reply sent, what a
provider would bill. GET requests (model listings, the clients' credential check) are
answered without a step. Use them as context managers:

    with FakeOpenAIServer([HttpError(429, retry_after="0"), Reply("hi")]) as server:
        client = make_client("openai:gpt-5", base_url=server.base_url)
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Reply:
    """A normal answer. `output_tokens` are the visible ones; `reasoning_tokens` come on top
    (each server reports them the way its API does)."""

    text: str
    input_tokens: int = 11
    output_tokens: int = 22
    reasoning_tokens: int = 0
    finish_reason: str | None = None  # the API's usual "stop" / "STOP" when None


@dataclass
class HttpError:
    status: int
    message: str = "injected fault"
    retry_after: str | None = None  # Retry-After header value


@dataclass
class Delay:
    """Wait (longer than the client's timeout, in tests), then send `then`."""

    seconds: float
    then: Reply = field(default_factory=lambda: Reply("late reply"))


@dataclass
class Truncated:
    """A 200 whose JSON body is cut off part-way (as a dropped connection leaves it)."""

    text: str = "this reply was cut"


Step = Reply | HttpError | Delay | Truncated


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any  # the parsed JSON, or the raw text if it was not JSON


class FakeServer:
    """The scripted server; subclasses render replies and errors in their API's format."""

    def __init__(self, script: Iterable[Step] = (), default: Step | None = None,
                 responder: Callable[[Received], Step] | None = None, latency_s: float = 0.0,
                 api_key: str | None = None) -> None:
        self._script: deque[Step] = deque(script)
        self.default = default  # served once the script runs out; None -> HTTP 500
        self.responder = responder
        self.latency_s = latency_s
        self.api_key = api_key
        self.requests: list[Received] = []
        self.billed: list[tuple[int, int, int]] = []  # (input, output incl. reasoning, reasoning) per reply
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- subclass hooks -------------------------------------------------------------------
    def path_ok(self, path: str) -> bool:
        raise NotImplementedError

    def reply_body(self, reply: Reply, request: Received) -> dict[str, Any]:
        raise NotImplementedError

    def error_body(self, status: int, message: str) -> dict[str, Any]:
        raise NotImplementedError

    def key_of(self, request: Received) -> str | None:
        raise NotImplementedError

    def listing_body(self, path: str) -> dict[str, Any] | None:
        """The body for a GET of `path`, or None for a 404."""
        raise NotImplementedError

    def totals(self) -> tuple[int, int, int]:
        """What the server billed: input, output (reasoning included) and reasoning tokens."""
        with self._lock:
            return tuple(sum(b[i] for b in self.billed) for i in range(3))  # type: ignore[return-value]

    # -- scripting ------------------------------------------------------------------------
    def push(self, *steps: Step) -> None:
        with self._lock:
            self._script.extend(steps)

    def _next_step(self, request: Received) -> Step | None:
        with self._lock:
            if self._script:
                return self._script.popleft()
        if self.responder is not None:
            return self.responder(request)
        return self.default

    @property
    def base_url(self) -> str:
        assert self._httpd is not None, "server not started"
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    # -- lifecycle ------------------------------------------------------------------------
    def __enter__(self) -> FakeServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._httpd.daemon_threads = True
        self._httpd.block_on_close = False  # a delayed handler must not hold up shutdown
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()  # wakes handlers sleeping in a Delay
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- one request ----------------------------------------------------------------------
    def _refused(self, handler: BaseHTTPRequestHandler, request: Received) -> bool:
        if self.api_key is not None and self.key_of(request) != self.api_key:
            self._send(handler, 401, self.error_body(401, "invalid API key"))
            return True
        return False

    def _handle_get(self, handler: BaseHTTPRequestHandler) -> None:
        request = Received(handler.path, {k.lower(): v for k, v in handler.headers.items()}, None)
        with self._lock:
            self.requests.append(request)
        if self._refused(handler, request):
            return
        body = self.listing_body(handler.path.split("?")[0])
        if body is None:
            self._send(handler, 404, self.error_body(404, f"no route {handler.path}"))
        else:
            self._send(handler, 200, body)

    def _reply(self, handler: BaseHTTPRequestHandler, reply: Reply, request: Received) -> None:
        with self._lock:
            self.billed.append((reply.input_tokens, reply.output_tokens + reply.reasoning_tokens,
                                reply.reasoning_tokens))
        self._send(handler, 200, self.reply_body(reply, request))

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        raw = handler.rfile.read(length).decode("utf-8", "replace")
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw
        request = Received(handler.path, {k.lower(): v for k, v in handler.headers.items()}, body)
        with self._lock:
            self.requests.append(request)

        if not self.path_ok(handler.path.split("?")[0]):
            self._send(handler, 404, self.error_body(404, f"no route {handler.path}"))
            return
        if self._refused(handler, request):
            return
        if self.latency_s and self._stop.wait(self.latency_s):
            return
        step = self._next_step(request)
        if step is None:
            self._send(handler, 500, self.error_body(500, "script exhausted"))
        elif isinstance(step, Reply):
            self._reply(handler, step, request)
        elif isinstance(step, HttpError):
            headers = {"Retry-After": step.retry_after} if step.retry_after is not None else {}
            self._send(handler, step.status, self.error_body(step.status, step.message), headers)
        elif isinstance(step, Delay):
            if self._stop.wait(step.seconds):
                return
            self._reply(handler, step.then, request)
        elif isinstance(step, Truncated):
            full = json.dumps(self.reply_body(Reply(step.text), request)).encode()
            self._send_bytes(handler, 200, full[: len(full) // 2])

    def _send(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        body: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        self._send_bytes(handler, status, json.dumps(body).encode(), headers)

    @staticmethod
    def _send_bytes(
        handler: BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        headers: dict[str, str] | None = None,
    ) -> None:
        try:
            handler.send_response(status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(data)))
            for name, value in (headers or {}).items():
                handler.send_header(name, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timed out) first


def _make_handler(server: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the http.server naming)
            server._handle(self)

        def do_GET(self) -> None:  # noqa: N802
            server._handle_get(self)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # keep test output clean

    return Handler


from .gemini_server import FakeGeminiServer  # noqa: E402  (they build on FakeServer above)
from .openai_server import FakeOpenAIServer  # noqa: E402

__all__ = [
    "Delay",
    "FakeGeminiServer",
    "FakeOpenAIServer",
    "FakeServer",
    "HttpError",
    "Received",
    "Reply",
    "Step",
    "Truncated",
]
