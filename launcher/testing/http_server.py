"""aiohttp plumbing of the reference endpoint: its ``web.Server`` and connection protocol.

The protocol is aiohttp's, plus what the endpoint's counts and faults need: ``eof`` (the client
half-closed while whole requests were pending: our side stays open to answer them), a
``waiter`` woken when the connection goes, and parse errors (aiohttp's 400s; 431 for a header
line over ``MAX_HEAD``) answered as OpenAI-style error JSON. Answers say HTTP/1.1 unless the
request was HTTP/1.0; a request in another version is flagged (``asked_version``) for a 505.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, cast

from aiohttp import web
from aiohttp.abc import AbstractStreamWriter
from aiohttp.http import HttpVersion, HttpVersion10, HttpVersion11, RawRequestMessage
from aiohttp.http_exceptions import LineTooLong
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import ERROR

from launcher.testing.openai_api import error_body

MAX_HEAD = 64 * 1024  # longest request or header line
JSON = "application/json"


def reply(status: int, body: bytes, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=body, content_type=JSON, headers=headers)


async def send_and_close(request: web.BaseRequest, resp: web.Response) -> web.Response:
    """Send ``resp`` and close, without reading (or lingering over) the request body."""
    resp.force_close()
    await resp.prepare(request)
    await resp.write_eof()
    cast(Protocol, request.protocol).force_close()
    return resp


class Protocol(web.RequestHandler):
    """aiohttp's connection protocol, plus: ``eof`` (the client half-closed while complete
    requests were pending: our side stays open to answer them), ``waiter`` (woken when the
    connection goes) and OpenAI-shaped errors for requests aiohttp's parser rejects."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.eof = False
        self.request: web.BaseRequest | None = None  # the one being handled
        self.asked_version: HttpVersion | None = None  # of that request, if not HTTP/1.x
        self.waiter: asyncio.Future[None] | None = None
        self.arrived: float | None = None  # loop time of the first bytes of a new request

    def data_received(self, data: bytes) -> None:
        if self.request is None and not self._messages and self.arrived is None:
            self.arrived = self._loop.time()  # nothing else in progress: a new request starts
        super().data_received(data)

    def take_arrival(self) -> float | None:
        """When the request being answered arrived (once; None for a pipelined one)."""
        arrived, self.arrived = self.arrived, None
        return arrived

    def eof_received(self) -> bool:  # type: ignore[override]
        pending = [payload for _, payload in self._messages]
        if self.request is not None:
            pending.append(self.request.content)
        if pending and all(p.is_eof() for p in pending):  # whole requests, not a cut one
            self.eof = True
            return True  # answer, then close (see _answer)
        return False  # the transport closes

    def resume_reading(self, resume_parser: bool = True) -> None:
        # aiohttp's body reader calls this after every read, paused or not; unpaused, it would
        # only re-feed the parser an empty buffer (one data_received call per request saved).
        if self._reading_paused:
            super().resume_reading(resume_parser)

    async def pause(self, seconds: float, since: float | None = None) -> bool:
        """Wait until ``seconds`` after ``since`` (loop time; default now), or until the
        connection goes; whether the client is still there."""
        loop = asyncio.get_running_loop()
        if since is not None:
            seconds -= loop.time() - since
        if seconds > 0:
            waiter = self.waiter = loop.create_future()
            timer = loop.call_later(seconds, wake, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
                self.waiter = None
        return self.transport is not None and not self.transport.is_closing()

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        wake(self.waiter)

    def handle_error(
        self,
        request: web.BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        if status >= 500:  # a bug here, not a bad request: keep aiohttp's log of it
            super().handle_error(request, status, exc, message)
        if isinstance(exc, LineTooLong):
            status = 431
        kind = "invalid_request_error" if status < 500 else "server_error"
        resp = reply(status, error_body(message or f"HTTP {status}", kind))
        resp.force_close()
        return resp


def wake(waiter: asyncio.Future[None] | None) -> None:
    if waiter is not None and not waiter.done():
        waiter.set_result(None)


class Server(web.Server):
    """``web.Server`` with our protocol; answers are HTTP/1.1 unless the request was 1.0
    (aiohttp would echo any version, and say 1.0 for a request it could not parse)."""

    def __init__(self, handler: Callable[[web.BaseRequest], Any], **kwargs: Any) -> None:
        super().__init__(handler, request_factory=self._request, **kwargs)

    def __call__(self) -> Protocol:
        return Protocol(self, loop=self._loop, **self._kwargs)

    def _request(
        self,
        message: RawRequestMessage,
        payload: StreamReader,
        protocol: web.RequestHandler,
        writer: AbstractStreamWriter,
        task: asyncio.Task[None],
    ) -> web.BaseRequest:
        proto = cast(Protocol, protocol)
        if message is ERROR:  # for handle_error
            message = message._replace(version=HttpVersion11)
            return web.BaseRequest(message, payload, protocol, writer, task, self._loop)
        version = message.version
        proto.asked_version = None
        if version != HttpVersion11 and version != HttpVersion10:
            message = message._replace(version=HttpVersion11)
            proto.asked_version = version  # answered 505 by the handler
        request = proto.request = web.BaseRequest(
            message, payload, protocol, writer, task, self._loop)
        return request
