from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from launcher.harness.client import ChatClient, complete_all
from launcher.harness.errors import EndpointError


class Scripted(ThreadingHTTPServer):
    """Answers POSTs from a script of (status, headers, body); records every request."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.script: list[tuple[int, dict[str, str], Any]] = []
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.lock = threading.Lock()
        self.delay = 0.0
        self.in_flight = 0
        self.max_in_flight = 0

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # e.g. a broken pipe after the client timed out

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/v1/chat/completions"


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Scripted

    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        srv = self.server
        with srv.lock:
            srv.requests.append((dict(self.headers), body))
            step = srv.script.pop(0) if srv.script else (200, {}, None)
            srv.in_flight += 1
            srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
        time.sleep(srv.delay)
        status, headers, payload = step
        if payload is None:
            text = body["messages"][-1]["content"].upper()
            payload = {"choices": [{"message": {"role": "assistant", "content": text}}]}
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        with srv.lock:
            srv.in_flight -= 1
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def server() -> Iterator[Scripted]:
    srv = Scripted()
    threading.Thread(target=srv.serve_forever, args=(0.05,), daemon=True).start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _client(url: str, **kw: Any) -> ChatClient:
    kw.setdefault("backoff_base", 0.01)
    return ChatClient(url, "my-model", **kw)


def _msg(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def test_request_shape_and_auth_header(server: Scripted) -> None:
    client = _client(server.url, api_key="sk-secret", temperature=0.5, max_new_tokens=7)
    assert client.complete(_msg("hi")) == "HI"
    headers, body = server.requests[0]
    assert headers["Authorization"] == "Bearer sk-secret"
    assert body == {
        "model": "my-model",
        "temperature": 0.5,
        "top_p": 1.0,
        "max_tokens": 7,
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert "sk-secret" not in repr(client)


def test_no_auth_header_without_key(server: Scripted) -> None:
    _client(server.url).complete(_msg("x"))
    assert "Authorization" not in server.requests[0][0]


def test_retries_5xx_and_429_then_succeeds(server: Scripted) -> None:
    server.script = [(503, {}, {"error": "busy"}), (429, {"Retry-After": "0"}, {}), (502, {}, b"")]
    assert _client(server.url, max_retries=3).complete(_msg("ok")) == "OK"
    assert len(server.requests) == 4


def test_honours_retry_after(server: Scripted) -> None:
    server.script = [(429, {"Retry-After": "1"}, {})]
    start = time.monotonic()
    assert _client(server.url, max_retries=1).complete(_msg("a")) == "A"
    assert time.monotonic() - start >= 0.95


def test_gives_up_after_max_retries(server: Scripted) -> None:
    server.script = [(500, {}, {"error": "boom"})] * 5
    with pytest.raises(EndpointError, match=r"HTTP 500 .*gave up after 3 attempts"):
        _client(server.url, max_retries=2).complete(_msg("a"))
    assert len(server.requests) == 3


def test_client_errors_are_not_retried(server: Scripted) -> None:
    server.script = [(401, {}, {"error": {"message": "bad key"}})]
    with pytest.raises(EndpointError, match="HTTP 401"):
        _client(server.url, max_retries=5).complete(_msg("a"))
    assert len(server.requests) == 1


def test_timeout_is_retried(server: Scripted) -> None:
    server.delay = 0.5
    with pytest.raises(EndpointError, match="timed out"):
        _client(server.url, timeout=0.1, max_retries=1).complete(_msg("a"))
    assert len(server.requests) == 2


def test_unreachable_endpoint() -> None:
    client = _client("http://127.0.0.1:9/v1/chat/completions", max_retries=2)
    with pytest.raises(EndpointError, match="connection error.*gave up after 3 attempts"):
        client.complete(_msg("a"))


def test_malformed_response(server: Scripted) -> None:
    server.script = [(200, {}, {"no": "choices"})]
    with pytest.raises(EndpointError, match="not an OpenAI-compatible response"):
        _client(server.url).complete(_msg("a"))


def test_completions_endpoint_type(server: Scripted) -> None:
    server.script = [(200, {}, {"choices": [{"text": "42"}]})]
    client = _client(server.url, endpoint_type="completions")
    assert client.complete(_msg("q")) == "42"
    assert server.requests[0][1]["prompt"] == "q"


def test_complete_all_keeps_order_and_bounds_parallelism(server: Scripted) -> None:
    server.delay = 0.05
    prompts = [_msg(f"p{i}") for i in range(12)]
    seen: list[int] = []
    out = complete_all(_client(server.url), prompts, 3, lambda d, t: seen.append(d))
    assert out == [f"P{i}" for i in range(12)]
    assert server.max_in_flight == 3
    assert sorted(seen) == list(range(1, 13))


def test_complete_all_fails_fast(server: Scripted) -> None:
    server.script = [(400, {}, {"error": {"message": "too long"}})]
    with pytest.raises(EndpointError, match="HTTP 400"):
        complete_all(_client(server.url), [_msg("a")] * 50, 2)
    assert len(server.requests) < 50
