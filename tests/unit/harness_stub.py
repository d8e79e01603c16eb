"""A scripted OpenAI-compatible stub server on loopback for the harness client tests.

Raw HTTP/1.1 on threads (one per connection, keep-alive), so a test can inject any fault: a
status with headers, a reset (RST), a hang, a garbage 200, chunked or read-to-close bodies.
Each POST takes the next action from ``script`` (default: 200 with the last user message
upper-cased) and is recorded; ``ok_counts`` counts 200 answers per prompt text.
"""

from __future__ import annotations

import contextlib
import json
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

Action = Any  # "reset" | "hang" | "garbage" | "chunked" | "close" | "http10" | "idle_close"
#              | (status, headers, body) | callable(body) -> action


def prompt_of(body: dict[str, Any]) -> str:
    if "messages" in body:
        return str(body["messages"][-1]["content"])
    return str(body.get("prompt", ""))


def ok_payload(body: dict[str, Any], text: str | None = None) -> dict[str, Any]:
    if text is None:
        text = prompt_of(body).upper()
    if "messages" in body:
        choice: dict[str, Any] = {"message": {"role": "assistant", "content": text},
                                  "finish_reason": "stop", "index": 0}
    else:
        choice = {"text": text, "finish_reason": "stop", "index": 0}
    return {"choices": [choice],
            "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}


def read_headers(rfile: Any) -> dict[str, str]:
    """Read HTTP header lines up to the blank line."""
    headers: dict[str, str] = {}
    while True:
        line = rfile.readline()
        if line in (b"\r\n", b"\n", b""):
            return headers
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip()] = value.strip()


class StubServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.ssl_context = ssl_context
        self.request_lines: list[str] = []
        self.script: list[Action] = []
        self.default: Action | None = None  # used when the script is empty
        self.requests: list[tuple[dict[str, str], dict[str, Any]]] = []
        self.ok_counts: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.delay = 0.0
        self.in_flight = 0
        self.max_in_flight = 0
        self.connections = 0
        self.answer: Callable[[dict[str, Any]], str] | None = None  # text for 200 answers
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)

    def start(self) -> StubServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()

    def wait_idle(self, timeout: float = 10.0) -> None:
        """Wait until no request is being answered (e.g. those of a client that was killed)."""
        deadline = time.monotonic() + timeout
        while self.in_flight:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.in_flight} requests still in flight")
            time.sleep(0.01)

    def handle_error(self, request: object, client_address: object) -> None:
        pass  # a client that went away

    @property
    def base(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        host = "localhost" if self.ssl_context else "127.0.0.1"  # the test cert's name
        return f"{scheme}://{host}:{self.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{self.base}/v1/chat/completions"

    def next_action(self, body: dict[str, Any]) -> Action:
        with self.lock:
            action = self.script.pop(0) if self.script else self.default
        if callable(action):
            action = action(body)
        return action


class _Handler(socketserver.StreamRequestHandler):
    server: StubServer

    def setup(self) -> None:
        if self.server.ssl_context is not None:
            self.request = self.server.ssl_context.wrap_socket(self.request, server_side=True)
            self.connection = self.request
        super().setup()

    def finish(self) -> None:
        super().finish()
        if self.server.ssl_context is not None:  # the server closes only the unwrapped socket
            self.request.close()

    def handle(self) -> None:
        srv = self.server
        with srv.lock:
            srv.connections += 1
        while True:
            line = self.rfile.readline()
            if not line:
                return
            headers = read_headers(self.rfile)
            length = int(headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            try:
                body = json.loads(raw)
            except ValueError:
                body = {}
            with srv.lock:
                srv.request_lines.append(line.decode("latin-1").strip())
                srv.requests.append((headers, body))
                srv.in_flight += 1
                srv.max_in_flight = max(srv.max_in_flight, srv.in_flight)
            try:
                action = srv.next_action(body)
                if srv.delay:
                    time.sleep(srv.delay)
                keep = self._act(action, body)
            finally:
                with srv.lock:
                    srv.in_flight -= 1
            if not keep:
                return

    def _send(self, status: int, headers: dict[str, str], data: bytes,
              extra: bytes = b"") -> None:
        head = f"HTTP/1.1 {status} X\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.wfile.write(head.encode() + extra + b"\r\n" + data)
        self.wfile.flush()

    def _act(self, action: Action, body: dict[str, Any]) -> bool:
        srv = self.server
        if action is None or action == "idle_close":
            text = srv.answer(body) if srv.answer else None
            data = json.dumps(ok_payload(body, text)).encode()
            with srv.lock:
                srv.ok_counts[prompt_of(body)] += 1
            self._send(200, {"Content-Length": str(len(data)),
                             "Content-Type": "application/json"}, data)
            return action is None
        if action == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            return False
        if action == "hang":
            self.connection.settimeout(10)
            try:
                while self.connection.recv(4096):
                    pass
            except OSError:
                pass
            return False
        if action == "garbage":
            data = b'{"choices": [{"message": {"content": "trunc'
            self._send(200, {"Content-Length": str(len(data))}, data)
            return True
        if action in ("chunked", "close", "http10"):
            data = json.dumps(ok_payload(body)).encode()
            with srv.lock:
                srv.ok_counts[prompt_of(body)] += 1
            if action == "chunked":
                half = len(data) // 2
                chunks = b"%x;ext=1\r\n%s\r\n%x\r\n%s\r\n0\r\nX-Trailer: 1\r\n\r\n" % (
                    half, data[:half], len(data) - half, data[half:])
                self._send(200, {"Transfer-Encoding": "chunked"}, chunks)
                return True
            if action == "close":
                self._send(200, {"Connection": "close"}, data)
                return False
            self.wfile.write(b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n" + data)
            self.wfile.flush()
            return False
        status, headers, payload = action
        if payload is None:
            payload = ok_payload(body)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        if status == 200:
            with srv.lock:
                srv.ok_counts[prompt_of(body)] += 1
        self._send(status, {**headers, "Content-Length": str(len(data))}, data)
        return True


class ConnectProxy(socketserver.ThreadingTCPServer):
    """A minimal HTTP CONNECT proxy: records each CONNECT line and its headers, then pipes."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.connects: list[tuple[str, dict[str, str]]] = []
        threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True).start()

    def handle_error(self, request: object, client_address: object) -> None:
        pass

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.shutdown()
        self.server_close()


class _ProxyHandler(socketserver.StreamRequestHandler):
    server: ConnectProxy

    def handle(self) -> None:
        line = self.rfile.readline().decode("latin-1").strip()
        headers = read_headers(self.rfile)
        self.server.connects.append((line, headers))
        method, target, _ = line.split(" ", 2)
        host, _, port = target.rpartition(":")
        upstream = socket.create_connection(("127.0.0.1" if host == "localhost" else host,
                                             int(port)))
        self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        self.wfile.flush()

        def pipe(src: socket.socket, dst: socket.socket) -> None:
            try:
                while data := src.recv(65536):
                    dst.sendall(data)
            except OSError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    dst.shutdown(socket.SHUT_WR)

        t = threading.Thread(target=pipe, args=(upstream, self.connection), daemon=True)
        t.start()
        pipe(self.connection, upstream)
        t.join(5)
        upstream.close()
