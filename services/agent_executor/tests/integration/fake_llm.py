"""A small local OpenAI-compatible chat-completions endpoint, scriptable per test.

It runs in a thread (not on a test's event loop) so that workers in other processes
can call it too, and a reply held back by a delay never blocks the test itself.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

PLACEHOLDER_API_KEY = "sk-test-placeholder"


@dataclass(frozen=True)
class Reply:
    """One scripted answer. status != 200 sends an OpenAI-style error body."""

    status: int = 200
    delay_s: float = 0.0
    body: dict[str, Any] | None = None
    raw: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


class FakeLLM:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self._requests: list[dict[str, Any]] = []
        # Set on reset/close so that replies held back by a delay return at once.
        self._release = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                fake._handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep pytest output clean

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        # A client that gave up (timeout, killed worker) is expected; don't print it.
        self._server.handle_error = lambda request, client_address: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def script(self, marker: str, *replies: Reply) -> None:
        """Answer the next requests whose prompt contains `marker` with `replies`, in order."""
        with self._lock:
            self._scripts[marker].extend(replies)

    def calls(self, marker: str) -> int:
        """How many requests arrived whose prompt contains `marker`."""
        with self._lock:
            return sum(1 for r in self._requests if marker in _prompt(r))

    def reset(self) -> None:
        self._release.set()
        with self._lock:
            self._scripts.clear()
            self._requests.clear()
            self._release = threading.Event()

    def close(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def _next_reply(self, body: dict[str, Any]) -> tuple[Reply, threading.Event]:
        prompt = _prompt(body)
        with self._lock:
            self._requests.append(body)
            for marker, replies in self._scripts.items():
                if marker in prompt and replies:
                    return replies.popleft(), self._release
            return Reply(), self._release

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        if handler.path.rstrip("/") != "/v1/chat/completions":
            _send(
                handler, 404, {"error": {"message": "not found", "type": "invalid_request_error"}}
            )
            return
        if not handler.headers.get("Authorization", "").startswith("Bearer "):
            _send(handler, 401, {"error": {"message": "missing API key", "type": "auth_error"}})
            return
        length = int(handler.headers.get("Content-Length", "0"))
        body = json.loads(handler.rfile.read(length) or b"{}")
        reply, release = self._next_reply(body)
        if reply.delay_s:
            release.wait(reply.delay_s)
        if reply.raw is not None:
            _send_bytes(handler, reply.status, reply.raw, reply.headers)
        elif reply.status != 200:
            error = reply.body or {
                "error": {"message": f"scripted HTTP {reply.status}", "type": "server_error"}
            }
            _send(handler, reply.status, error, reply.headers)
        else:
            _send(handler, 200, reply.body or _completion(body), reply.headers)


def _prompt(body: dict[str, Any]) -> str:
    return " ".join(str(m.get("content", "")) for m in body.get("messages", []))


def _completion(body: dict[str, Any]) -> dict[str, Any]:
    """A realistic chat.completion whose content echoes the user's prompt."""
    prompt = _prompt(body)
    content = f"Echo: {body['messages'][-1]['content']}"
    prompt_tokens = len(prompt.split()) + 7
    completion_tokens = len(content.split())
    return {
        "id": f"chatcmpl-{uuid.uuid4().hex[:24]}",
        "object": "chat.completion",
        "created": int(time.time()),
        "model": f"{body.get('model', 'gpt-4o-mini')}-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
        "system_fingerprint": "fp_testbed",
    }


def _send(
    handler: BaseHTTPRequestHandler,
    status: int,
    payload: dict[str, Any],
    headers: dict[str, str] | None = None,
) -> None:
    _send_bytes(handler, status, json.dumps(payload).encode(), headers)


def _send_bytes(
    handler: BaseHTTPRequestHandler,
    status: int,
    data: bytes,
    headers: dict[str, str] | None = None,
) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(data)
