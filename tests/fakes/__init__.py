"""Local HTTP servers that speak the OpenAI and Gemini wire formats, for testing the real SDKs
without the network. Each serves a script: a queue of steps, one per request (a reply, an HTTP
error, a delay, a truncated body), and records every request it receives. They bind 127.0.0.1
on a free port and run in a daemon thread; use them as context managers:

    with FakeOpenAIServer([HttpError(429, retry_after="0"), Reply("hi")]) as server:
        client = make_client("openai:gpt-5", base_url=server.base_url)
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Iterable
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

    def __init__(self, script: Iterable[Step] = (), default: Step | None = None) -> None:
        self._script: deque[Step] = deque(script)
        self.default = default  # served once the script runs out; None -> HTTP 500
        self.requests: list[Received] = []
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

    # -- scripting ------------------------------------------------------------------------
    def push(self, *steps: Step) -> None:
        with self._lock:
            self._script.extend(steps)

    def _next_step(self) -> Step | None:
        with self._lock:
            return self._script.popleft() if self._script else self.default

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
        step = self._next_step()
        if step is None:
            self._send(handler, 500, self.error_body(500, "script exhausted"))
        elif isinstance(step, Reply):
            self._send(handler, 200, self.reply_body(step, request))
        elif isinstance(step, HttpError):
            headers = {"Retry-After": step.retry_after} if step.retry_after is not None else {}
            self._send(handler, step.status, self.error_body(step.status, step.message), headers)
        elif isinstance(step, Delay):
            if self._stop.wait(step.seconds):
                return
            self._send(handler, 200, self.reply_body(step.then, request))
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
