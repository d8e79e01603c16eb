"""A reference endpoint for testing the launcher end to end. It is NOT a model.

It serves the OpenAI-compatible API (``POST /v1/chat/completions``, ``POST /v1/completions``,
``GET /v1/models``, ``GET /health``) and answers the built-in tasks (HumanEval, GSM8K) and
custom-task JSONL files from their known solutions, right or deliberately wrong at a chosen
rate (``launcher.testing.oracle``). It never guesses: a prompt it cannot match to an item it
knows gets HTTP 422 with an OpenAI-style error naming the data it lacks.

Faults (``launcher.testing.faults``), to test retrying clients, hit completion routes only
(never ``/health``, ``/v1/models`` or ``/stats``), drawn per request after its body is read and
before it is validated:

* ``429``: HTTP 429, ``Retry-After: <retry_after>`` and an OpenAI-style error JSON;
* ``500``: HTTP 500 and an OpenAI-style error JSON;
* ``timeout``: no answer at all; the request is held until the client leaves or ``hang_s``
  passes (then the connection is closed without an answer);
* ``reset``: the TCP connection is aborted with ``SO_LINGER`` 0 (an RST), without an answer;
* ``garbage``: HTTP 200 whose body is truncated JSON (not parseable, not an OpenAI response).

Every completion answer (right, wrong, 422, or a 429/500/reset/garbage fault) is sent
``latency_ms`` after the request's first bytes arrived (a timer, so requests overlap; the
endpoint's own work is inside that time, as for a model server with a fixed service time, so
a client measured against it sees ``latency_ms`` plus only its own and the network's time);
a 400 for a malformed one goes out at once.

``GET /stats`` counts completion requests by outcome, each when it happens (``ok``, each fault
kind, ``bad_request``, ``unknown_prompt``, ``dropped`` when the client left before its answer
was due, ``after_eof`` for an answer written after the client closed its sending side) and, per
item, the ok answers sent (``humaneval/HumanEval/0``, ``gsm8k/12``, ``custom/<id or index>``);
``POST /stats/reset`` zeroes them. A client that half-closes after its request still gets the
answer, counted as ``after_eof``, not as an ok answer for its item: a killed client's kernel
sends the same FIN. So ``items`` counts answers that can have reached a live client.

HTTP is aiohttp's low-level server (``aiohttp.web.Server``: keep-alive, pipelining, chunked
bodies) with a small dispatch table here; ``launcher.testing.http_server`` subclasses its
protocol only to see a half-close and to answer parse errors (400, 431 for a header line over
64 KiB) in the OpenAI error shape. Bodies over 16 MiB get 413; other methods 405, other paths
404. ``ReferenceServer`` keeps the ``socketserver`` surface the tests use
(``server_address``, ``serve_forever()``, ``shutdown()``, ``server_close()``).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import struct
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any, cast

from aiohttp import web

from launcher.errors import LauncherError
from launcher.testing.faults import Faults, Stats, load_model
from launcher.testing.http_server import MAX_HEAD, Protocol, Server, reply, send_and_close, wake
from launcher.testing.openai_api import MODEL_ID, completion_response, error_body, last_user_text
from launcher.testing.oracle import Oracle, load_oracle

UNKNOWN_STATUS = 422
MAX_BODY = 16 * 1024 * 1024
GARBAGE = b'{"id": "chatcmpl-garbage", "object": "chat.completion", "choices": [{"message": {"ro'
COMPLETION_ROUTES = ("/v1/chat/completions", "/v1/completions")

Observer = Callable[[web.BaseRequest], None]


class ReferenceServer:
    """The endpoint bound to ``address`` at construction; ``serve_forever()`` runs it.

    Like ``socketserver``: ``server_address`` is the bound address (port 0 picks a free one),
    ``shutdown()`` (from another thread) stops ``serve_forever()`` and waits for it, and
    ``server_close()`` releases the socket. ``stats`` and ``faults`` may be read from any thread.
    ``observers`` are called with each request as it arrives, before it is answered, on the
    server's thread (tests use it to see headers).
    """

    def __init__(
        self,
        address: tuple[str, int],
        oracle: Oracle,
        latency_ms: float,
        verbose: bool = False,
        *,
        faults: Faults | None = None,
        api_key: str | None = None,
    ) -> None:
        self.oracle = oracle
        self.api_key = api_key  # when set, completions and /v1/models need "Bearer <it>"
        self.latency_s = max(0.0, latency_ms) / 1000.0
        self.verbose = verbose
        self.faults = faults or Faults()
        self.stats = Stats()
        self.observers: list[Observer] = []
        model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "eval-launcher"}
        self.models_body = json.dumps({"object": "list", "data": [model]}).encode()
        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=1024)
        self.server_address: tuple[Any, ...] = self.socket.getsockname()
        self.stopping = False
        self._hung: set[Protocol] = set()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._shutdown_requested = False
        self._done = threading.Event()

    # -- serving ---------------------------------------------------------------------------

    def serve_forever(self, poll_interval: float = 0.5, *, handle_signals: bool = False) -> None:
        """Serve until ``shutdown()`` (or SIGTERM/SIGINT with ``handle_signals``, main thread).

        ``poll_interval`` is accepted for ``socketserver`` compatibility and unused.
        """
        self._done.clear()
        try:
            asyncio.run(self._serve(handle_signals))
        finally:
            with self._lock:
                self._loop = None
            self._done.set()

    def shutdown(self) -> None:
        """Stop ``serve_forever()`` (from another thread) and wait until it has returned."""
        with self._lock:
            self._shutdown_requested = True
            loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:  # loop already closed
                return
            self._done.wait()

    def server_close(self) -> None:
        self.socket.close()

    async def _serve(self, handle_signals: bool) -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        with self._lock:
            if self._shutdown_requested:
                return
            self._loop, self._stop = loop, stop
        if handle_signals and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
        http = Server(self._handle, access_log=None, max_line_size=MAX_HEAD,
                       max_field_size=MAX_HEAD)
        server = await loop.create_server(http, sock=self.socket)
        try:
            await stop.wait()
        finally:
            self.stopping = True
            server.close()  # stop accepting (closes the listening socket)
            for proto in list(self._hung):  # hung requests end now, without an answer
                wake(proto.waiter)
            http.pre_shutdown()  # idle connections close; busy ones after their answer
            await http.shutdown(max(5.0, self.latency_s + 1.0))

    # -- requests --------------------------------------------------------------------------

    async def _handle(self, request: web.BaseRequest) -> web.StreamResponse:
        try:
            return await self._route(request)
        finally:
            proto = cast(Protocol, request.protocol)
            proto.request = proto.arrived = None

    async def _route(self, request: web.BaseRequest) -> web.StreamResponse:
        method, path = request.method, request.path.rstrip("/")
        if self.verbose:
            print(f"reference endpoint: {method} {request.path_qs}", file=sys.stderr, flush=True)
        for observe in self.observers:
            observe(request)
        asked = cast(Protocol, request.protocol).asked_version
        if asked is not None:
            major, minor = asked
            return reply(505, error_body(f"unsupported HTTP version HTTP/{major}.{minor}",
                                         "invalid_request_error"))
        if (request.content_length or 0) > MAX_BODY:
            return await send_and_close(request, reply(413, error_body(
                f"request body over {MAX_BODY} bytes", "invalid_request_error")))
        if self.api_key and path in (*COMPLETION_ROUTES, "/v1/models") and \
                request.headers.get("Authorization") != f"Bearer {self.api_key}":
            return reply(401, error_body("missing or wrong API key", "authentication_error"))
        if path in COMPLETION_ROUTES:
            if method != "POST":
                return _not_allowed(method, path, "POST")
            return await self._complete(request, path == "/v1/chat/completions")
        if path in ("/health", "/v1/models", "/stats"):
            if method not in ("GET", "HEAD"):
                return _not_allowed(method, path, "GET, HEAD")
            if path == "/health":
                return reply(200, self.stats.healthy())
            if path == "/v1/models":
                return reply(200, self.models_body)
            return reply(200, json.dumps(self.stats.snapshot()).encode())
        if path == "/stats/reset":
            if method != "POST":
                return _not_allowed(method, path, "POST")
            self.stats.reset()
            return reply(200, b'{"status": "reset"}')
        return reply(404, error_body(f"no route {method} {path}", "not_found_error"))

    async def _complete(self, request: web.BaseRequest, chat: bool) -> web.StreamResponse:
        proto = cast(Protocol, request.protocol)
        if request.headers.get("Expect", "").lower() == "100-continue" and (
            not request.content.is_eof()
        ):
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        raw = bytearray()
        while chunk := await request.content.readany():
            raw += chunk
            if len(raw) > MAX_BODY:  # a chunked body (a Content-Length was checked before)
                return await send_and_close(request, reply(413, error_body(
                    f"request body over {MAX_BODY} bytes", "invalid_request_error")))
        fault = self.faults.draw()
        if fault is not None:
            return await self._fault(request, proto, fault)
        try:
            body = json.loads(raw)
        except ValueError as e:
            return self._bad_request(f"request body is not valid JSON: {e}")
        if not isinstance(body, dict):
            return self._bad_request("request body must be a JSON object")
        text = last_user_text(body) if chat else body.get("prompt")
        if isinstance(text, list) and not chat:
            text = text[-1] if text else ""
        if not isinstance(text, str):
            field = "messages (with a user message)" if chat else "prompt"
            return self._bad_request(f"'{field}' is missing or malformed")
        if body.get("stream"):
            return self._bad_request("stream=true is not supported by the reference endpoint")
        found = self.oracle.lookup(text)
        if found is None:
            error = error_body(self.oracle.unknown_message(text), "invalid_request_error",
                               "unknown_prompt")
            return await self._answer(proto, UNKNOWN_STATUS, error, "unknown_prompt")
        data = json.dumps(completion_response(body, text, found.answer, chat)).encode("utf-8")
        return await self._answer(proto, 200, data, "ok", item=found.id)

    def _bad_request(self, message: str) -> web.Response:
        self.stats.count("bad_request")
        return reply(400, error_body(message, "invalid_request_error"))

    async def _answer(
        self,
        proto: Protocol,
        status: int,
        body: bytes,
        outcome: str,
        *,
        item: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.StreamResponse:
        """The answer after the latency, counted as it is written (``dropped`` if the client
        has gone, ``after_eof`` if it half-closed)."""
        if not await proto.pause(self.latency_s, since=proto.take_arrival()):
            self.stats.count("dropped")
            return web.Response()  # cannot be written: aiohttp ends the connection
        resp = reply(status, body, headers)
        if proto.eof:  # half-closed: maybe a live client, maybe a killed one (same FIN)
            self.stats.count("after_eof")
            if not proto._messages:  # nothing pipelined left to answer
                resp.force_close()
        else:
            self.stats.count(outcome, item)  # only ok answers carry an item
        if self.stopping:
            resp.force_close()
        return resp

    async def _fault(
        self, request: web.BaseRequest, proto: Protocol, kind: str
    ) -> web.StreamResponse:
        faults = self.faults
        if kind == "429":
            body = error_body("injected fault: rate limit reached, retry later",
                              "rate_limit_error", "rate_limit_exceeded")
            return await self._answer(proto, 429, body, "429",
                                      headers={"Retry-After": faults.retry_after_header()})
        if kind == "500":
            body = error_body("injected fault: internal server error", "server_error")
            return await self._answer(proto, 500, body, "500")
        if kind == "garbage":
            return await self._answer(proto, 200, GARBAGE, "garbage")
        if kind == "timeout":
            self.stats.count("timeout")
            self._hung.add(proto)
            try:
                await proto.pause(faults.hang_s)
            finally:
                self._hung.discard(proto)
            if proto.transport is not None:
                proto.force_close()  # closed without an answer
            return web.Response()
        # reset
        if not await proto.pause(self.latency_s, since=proto.take_arrival()):
            self.stats.count("dropped")
            return web.Response()
        self.stats.count("reset")
        transport = request.transport
        if transport is not None:
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport.abort()
        return web.Response()



def _not_allowed(method: str, path: str, allow: str) -> web.Response:
    body = error_body(f"method {method} not allowed on {path}", "invalid_request_error")
    return reply(405, body, {"Allow": allow})



def make_server(
    host: str,
    port: int,
    accuracy: float,
    latency_ms: float,
    dataset_dir: str | None,
    *,
    verbose: bool = False,
    faults: Faults | None = None,
    custom: Iterable[str] = (),
    api_key: str | None = None,
) -> ReferenceServer:
    """A bound (not yet serving) server; call ``serve_forever()`` (port 0 picks a free one).
    ``custom``: JSONL files of custom-task items it should know too; ``api_key``: the key
    requests must carry (none: any)."""
    oracle = load_oracle(accuracy, dataset_dir, custom=custom)
    return ReferenceServer((host, port), oracle, latency_ms, verbose, faults=faults,
                           api_key=api_key)


def serve(
    host: str,
    port: int,
    accuracy: float,
    latency_ms: float,
    dataset_dir: str | None,
    **options: Any,
) -> None:
    """Serve until SIGINT/SIGTERM (blocking); ``options`` are ``make_server``'s keywords."""
    server = make_server(host, port, accuracy, latency_ms, dataset_dir, **options)
    counts = ", ".join(f"{n} {task}" for task, n in server.oracle.counts.items())
    bound_host, bound_port = server.server_address[:2]
    print(
        f"reference endpoint (not a model) on http://{bound_host}:{bound_port}/v1"
        f" model '{MODEL_ID}', accuracy {accuracy}, latency {latency_ms} ms; knows {counts}",
        flush=True,
    )
    if server.faults.rate > 0:
        print(f"reference endpoint: injecting faults: {server.faults.describe()}", flush=True)
    for note in server.oracle.missing:
        print(f"reference endpoint: {note}", flush=True)
    try:
        server.serve_forever(handle_signals=True)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        print("reference endpoint stopped", file=sys.stderr, flush=True)


def key_from(name: str | None) -> str | None:
    """``--api-key-env NAME``: the value of $NAME, which must be set."""
    if not name:
        return None
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"error: --api-key-env {name}: the variable {name} is not set")
    return value


def main(argv: list[str] | None = None) -> None:
    """``python -m launcher.testing.reference_endpoint --port 8000`` (the CLI's options)."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m launcher.testing.reference_endpoint")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--accuracy", type=float, default=1.0)
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--dataset-dir", default=None)
    parser.add_argument("--dataset", action="append", default=[])
    parser.add_argument("--fail-rate", type=float, default=0.0)
    parser.add_argument("--fault", action="append", default=[])
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--retry-after", type=float, default=0.0)
    parser.add_argument("--hang-s", type=float, default=600.0)
    parser.add_argument("--startup-delay-s", type=float, default=0.0)  # a model loading
    parser.add_argument("--exit-before-ready", type=int, default=None)  # ... that crashes
    parser.add_argument("--api-key-env", default=None)  # requests must carry $NAME's value
    args = parser.parse_args(argv)
    load_model(args.startup_delay_s, args.exit_before_ready)
    try:
        serve(
            args.host, args.port, args.accuracy, args.latency_ms, args.dataset_dir,
            faults=Faults(args.fail_rate, args.fault, args.seed, args.retry_after, args.hang_s),
            custom=args.dataset, api_key=key_from(args.api_key_env),
        )
    except LauncherError as e:
        print(f"error: {e.message}", file=sys.stderr)
        sys.exit(e.exit_code)


if __name__ == "__main__":
    main()
