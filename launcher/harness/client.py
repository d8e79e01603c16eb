"""An asyncio OpenAI-compatible client on the standard library.

Three layers, all on one event loop:

* :class:`ConnectionPool` -- a minimal HTTP/1.1 client on ``asyncio`` streams: keep-alive
  connections reused LIFO, ``Content-Length``, chunked and read-to-close bodies, https through
  :mod:`ssl`. A kept-alive socket the server closed meanwhile is replaced silently, once.
* :class:`AdaptiveLimiter` -- bounds the requests in flight. The bound starts at
  ``params.parallelism``; repeated HTTP 429s halve it (at most once per "epoch": answers to
  requests sent before the last decrease do not count again), and every ``limit`` successes
  add one back (AIMD, like TCP congestion control), so a rate-limited endpoint is not hammered
  and full speed comes back once it stops refusing.
* :class:`ChatClient` -- sends request bodies with retries and parses the answers. Retried
  (with exponential backoff and jitter, or the server's ``Retry-After`` plus up to 10%): HTTP
  408, 429 and 5xx, timeouts, refused/reset/dropped connections, and 200 answers whose body is
  not an OpenAI-compatible response. Other 4xx answers and an untrusted TLS certificate fail
  at once. A backing-off request holds no limiter slot.

The API key only ever goes into the ``Authorization`` header of the request; it is never
printed, logged or stored (request logs and the cache hold the body, not the headers).

Proxies: ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` are honoured (loopback never proxied).

Why no aiohttp/httpx: measured on loopback against the reference endpoint (2000 requests, 64
in flight, 50 ms latency; docs/benchmarks.md), this client took 1.69-1.70 s at about 0.5 s of
CPU, aiohttp 3.14 1.73 s at about 1.1 s, httpx 0.28 21 s (CPU-bound). A dependency would be
slower here and would have to be vendored into the offline image build.
"""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import email.utils
import ipaddress
import json
import random
import ssl
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote, urlsplit

import attrs

from launcher import __version__
from launcher.harness.errors import EndpointError

Message = dict[str, Any]
MAX_RETRY_AFTER = 120.0
MAX_BODY_BYTES = 256 * 1024 * 1024
STREAM_LIMIT = 1024 * 1024
USER_AGENT = f"eval-launcher-harness/{__version__}"

# Kinds of failed attempts (keys of the error counters in the request stats).
HTTP_429 = "http_429"
HTTP_5XX = "http_5xx"
HTTP_408 = "http_408"
HTTP_4XX = "http_4xx"
TLS = "tls"
TIMEOUT = "timeout"
CONNECTION = "connection"
BAD_RESPONSE = "bad_response"


# -- HTTP/1.1 ---------------------------------------------------------------------------------


@attrs.frozen
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


class ProtocolError(Exception):
    """The server's bytes are not HTTP/1.1 we understand."""


class _Stale(Exception):
    """A reused keep-alive connection was closed by the server before it answered."""


class _Conn:
    __slots__ = ("reader", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def usable(self) -> bool:
        # The server may have closed an idle keep-alive connection meanwhile.
        return not (self.writer.is_closing() or self.reader.at_eof())

    def close(self) -> None:
        with contextlib.suppress(Exception):  # already gone
            self.writer.close()


class ConnectionPool:
    """HTTP/1.1 connections to one origin, reused LIFO. Use from one event loop only.

    Honours ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` (as urllib reads them; ``proxy``
    overrides, "" for none): an http URL is requested through the proxy with its absolute URI,
    an https URL through a ``CONNECT`` tunnel. ``user:password@`` in the proxy URL becomes
    ``Proxy-Authorization: Basic``.
    """

    def __init__(self, url: str, *, max_idle: int = 64, proxy: str | None = None) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.https = parts.scheme == "https"
        self.host = parts.hostname
        default_port = 443 if self.https else 80
        self.port = parts.port or default_port
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.host_header = host if self.port == default_port else f"{host}:{self.port}"
        self.authority = f"{host}:{self.port}"  # the CONNECT target (always with the port)
        self.max_idle = max_idle
        self._idle: list[_Conn] = []
        self._ssl: ssl.SSLContext | None = ssl.create_default_context() if self.https else None
        self.opened = 0  # connections opened (for stats and tests)
        self.reconnects = 0  # reused connections found closed by the server (sent again)
        if proxy is None:
            proxy = _proxy_for(parts.scheme, self.host)
        self.proxy: tuple[str, int] | None = None
        self._proxy_auth = b""
        self.request_target = self.path
        if proxy:
            p = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
            if p.scheme != "http" or not p.hostname:
                raise ValueError(f"unsupported proxy {p.scheme}://{p.hostname} (http:// only)")
            self.proxy = (p.hostname, p.port or 80)
            if p.username is not None:
                token = base64.b64encode(
                    f"{unquote(p.username)}:{unquote(p.password or '')}".encode()
                )
                self._proxy_auth = b"Proxy-Authorization: Basic %s\r\n" % token
            if not self.https:  # plain http via a proxy: absolute URI, no tunnel
                self.request_target = f"http://{self.host_header}{self.path}"

    @property
    def extra_headers(self) -> bytes:
        """Headers every request needs for the hop (proxy credentials for plain http)."""
        return self._proxy_auth if self.proxy and not self.https else b""

    async def _open(self) -> _Conn:
        if self.proxy is None:
            reader, writer = await asyncio.open_connection(
                self.host, self.port, ssl=self._ssl,
                server_hostname=self.host if self.https else None, limit=STREAM_LIMIT,
            )
        else:
            reader, writer = await asyncio.open_connection(
                self.proxy[0], self.proxy[1], limit=STREAM_LIMIT
            )
            if self.https:
                try:
                    await self._tunnel(reader, writer)
                except BaseException:
                    writer.close()
                    raise
        self.opened += 1
        return _Conn(reader, writer)

    async def _tunnel(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        target = self.authority
        writer.write(b"CONNECT %s HTTP/1.1\r\nHost: %s\r\n%s\r\n"
                     % (target.encode(), target.encode(), self._proxy_auth))
        head = await reader.readuntil(b"\r\n\r\n")
        _, status = _parse_status_line(head.split(b"\r\n", 1)[0])
        if status != 200:
            raise ConnectionRefusedError(f"proxy {self.proxy[0]}:{self.proxy[1]} refused the "
                                         f"tunnel to {target}: HTTP {status}")  # type: ignore[index]
        assert self._ssl is not None
        await writer.start_tls(self._ssl, server_hostname=self.host)

    def _take(self) -> _Conn | None:
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    def _give_back(self, conn: _Conn) -> None:
        if len(self._idle) < self.max_idle and conn.usable():
            self._idle.append(conn)
        else:
            conn.close()

    async def post(self, head: bytes, body: bytes) -> HttpResponse:
        """Send ``head`` (request line + headers up to, not incl., Content-Length) and ``body``.

        Raises OSError (connection), asyncio.IncompleteReadError / ProtocolError (dropped or
        garbled answer); the caller wraps the call in a timeout.
        """
        message = b"%sContent-Length: %d\r\n\r\n%s" % (head, len(body), body)
        conn = self._take()
        if conn is not None:
            try:
                return await self._exchange(conn, message, reused=True)
            except _Stale:  # closed by the server while idle: once more on a fresh connection
                self.reconnects += 1
        return await self._exchange(await self._open(), message, reused=False)

    async def _exchange(self, conn: _Conn, message: bytes, *, reused: bool) -> HttpResponse:
        ok = False
        try:
            conn.writer.write(message)
            try:
                if conn.writer.transport.get_write_buffer_size():  # not all sent at once
                    await conn.writer.drain()
                head = await conn.reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError) as e:
                if reused and not getattr(e, "partial", b""):
                    raise _Stale() from e
                raise
            response = await self._read_response(conn, head)
            ok = True
            return response
        except asyncio.LimitOverrunError as e:
            raise ProtocolError("response headers too large") from e
        finally:
            if not ok:
                conn.close()

    async def _read_response(self, conn: _Conn, head: bytes) -> HttpResponse:
        reader = conn.reader
        while True:
            status_line, _, raw_headers = head.partition(b"\r\n")
            version, status = _parse_status_line(status_line)
            headers = _parse_headers(raw_headers)
            if not 100 <= status < 200:
                break
            head = await reader.readuntil(b"\r\n\r\n")  # after an interim answer
        keep_alive = _keep_alive(version, headers)
        if status in (204, 304):
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = await _read_chunked(reader)
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError as e:
                raise ProtocolError("bad Content-Length") from e
            if length < 0 or length > MAX_BODY_BYTES:
                raise ProtocolError(f"Content-Length {length} out of range")
            body = await reader.readexactly(length)
        else:  # the body runs to the end of the connection
            body = await reader.read(MAX_BODY_BYTES)
            keep_alive = False
        if keep_alive:
            self._give_back(conn)
        else:
            conn.close()
        return HttpResponse(status, headers, body)

    def close(self) -> None:
        while self._idle:
            self._idle.pop().close()


def _proxy_for(scheme: str, host: str) -> str | None:
    """The proxy URL the environment sets for ``scheme``, unless NO_PROXY covers ``host``."""
    proxy = urllib.request.getproxies().get(scheme)
    if not proxy or host == "localhost" or _is_loopback(host):
        return None  # loopback never goes through a proxy
    if urllib.request.proxy_bypass(host):
        return None
    return proxy


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _parse_status_line(line: bytes) -> tuple[str, int]:
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
        raise ProtocolError(f"not an HTTP status line: {line[:80]!r}")
    try:
        return parts[0].decode("ascii"), int(parts[1])
    except ValueError as e:
        raise ProtocolError(f"bad status line: {line[:80]!r}") from e


def _parse_headers(raw: bytes) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in raw.decode("latin-1").split("\r\n"):
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise ProtocolError(f"bad header line: {line[:80]!r}")
        key = name.strip().lower()
        value = value.strip()
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    return headers


def _keep_alive(version: str, headers: Mapping[str, str]) -> bool:
    connection = headers.get("connection", "").lower()
    if version == "HTTP/1.0":
        return "keep-alive" in connection
    return "close" not in connection


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        line = await reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";", 1)[0].strip(), 16)
        except ValueError as e:
            raise ProtocolError(f"bad chunk size line: {line[:40]!r}") from e
        if size == 0:
            while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                pass
            return b"".join(parts)
        total += size
        if total > MAX_BODY_BYTES:
            raise ProtocolError("chunked body too large")
        chunk = await reader.readexactly(size + 2)
        if chunk[-2:] != b"\r\n":
            raise ProtocolError("chunk not terminated by CRLF")
        parts.append(chunk[:-2])


# -- adaptive concurrency -------------------------------------------------------------------


class AdaptiveLimiter:
    """A semaphore whose size adapts to HTTP 429s (AIMD). Use from one event loop only.

    ``acquire()`` returns the current epoch; pass it to ``rate_limited(epoch)`` when that
    request got a 429. ``trigger`` 429s within one epoch multiply the limit by ``factor`` (down
    to ``minimum``) and start a new epoch; ``limit`` successes in a row add one (up to
    ``maximum``).
    """

    def __init__(
        self, maximum: int, *, minimum: int = 1, factor: float = 0.5, trigger: int = 2
    ) -> None:
        self.maximum = max(1, maximum)
        self.minimum = max(1, min(minimum, self.maximum))
        self.factor = factor
        self.trigger = max(1, trigger)
        self.limit = float(self.maximum)
        self.in_flight = 0
        self.epoch = 0
        self.decreases = 0
        self.lowest = self.maximum
        self._hits = 0
        self._successes = 0
        self._waiters: collections.deque[asyncio.Future[int]] = collections.deque()

    @property
    def current(self) -> int:
        return int(self.limit)

    async def acquire(self) -> int:
        if self.in_flight < int(self.limit) and not self._waiters:
            self.in_flight += 1
            return self.epoch
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            return await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release()  # the slot was handed over as we were cancelled
            raise

    def release(self) -> None:
        self.in_flight -= 1
        self._wake()

    def _wake(self) -> None:
        while self._waiters and self.in_flight < int(self.limit):
            fut = self._waiters.popleft()
            if not fut.done():
                self.in_flight += 1
                fut.set_result(self.epoch)

    def succeeded(self) -> None:
        if self.limit >= self.maximum:
            return
        self._successes += 1
        if self._successes >= int(self.limit):
            self._successes = 0
            self.limit = min(float(self.maximum), self.limit + 1)
            self._wake()

    def rate_limited(self, epoch: int) -> None:
        if epoch != self.epoch:
            return  # sent before the last decrease: already accounted for
        self._hits += 1
        if self._hits < self.trigger:
            return
        self._hits = 0
        self._successes = 0
        self.epoch += 1
        new = max(float(self.minimum), self.limit * self.factor)
        if int(new) < int(self.limit):
            self.decreases += 1
        self.limit = new
        self.lowest = min(self.lowest, int(new))


# -- the OpenAI-compatible client -------------------------------------------------------------


@attrs.frozen
class Completion:
    """One successful answer."""

    text: str  # the model's text as sent (reasoning included)
    body: bytes  # the raw response body (what the cache stores)
    usage: dict[str, int]
    finish_reason: str | None = None
    latency: float | None = None  # of the successful attempt; None when replayed
    attempts: int = 1


@attrs.frozen
class Attempt:
    """What an observer is told after every attempt (see ``ChatClient(observer=...)``)."""

    ok: bool
    kind: str | None  # None on success, else one of the kinds above
    status: int | None
    latency: float
    attempt: int  # 0 for the first try
    message: str = ""  # the error, one line
    response_snippet: str = ""


class _Failed(Exception):
    """A failed attempt: retried (after a backoff) if ``retry`` and attempts are left."""

    latency = 0.0

    def __init__(
        self, kind: str, message: str, status: int | None = None, *, retry: bool = True,
        retry_after: float | None = None, snippet: str = "",
    ) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message
        self.status = status
        self.retry = retry
        self.retry_after = retry_after
        self.snippet = snippet


def parse_completion(
    data: bytes, endpoint_type: str, latency: float | None = None, attempts: int = 1
) -> Completion:
    """Parse an OpenAI-compatible response body; ValueError when it is not one."""
    try:
        doc = json.loads(data)
        choice = doc["choices"][0]
        if endpoint_type == "completions":
            text = choice.get("text")
        else:
            text = (choice.get("message") or {}).get("content")
    except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
        raise ValueError(f"not an OpenAI-compatible response: {_snippet(data)}") from e
    if isinstance(text, list):  # content parts
        text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
    usage = doc.get("usage") if isinstance(doc, dict) else None
    counts = {}
    if isinstance(usage, dict):
        for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
            value = usage.get(name)
            if isinstance(value, int) and not isinstance(value, bool):
                counts[name] = value
    finish = choice.get("finish_reason") if isinstance(choice, dict) else None
    return Completion(
        text=text if isinstance(text, str) else "",
        body=data,
        usage=counts,
        finish_reason=sys.intern(finish) if isinstance(finish, str) else None,
        latency=latency,
        attempts=attempts,
    )


def completion_prompt(messages: Sequence[Message]) -> str:
    """The ``prompt`` a completions endpoint gets for chat-style ``messages``."""
    return "\n\n".join(str(m.get("content", "")) for m in messages)


def build_body(
    model_id: str,
    messages: Sequence[Message],
    *,
    endpoint_type: str = "chat",
    sampling: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The request body: model, sampling params, then ``messages`` (chat) or ``prompt``."""
    body: dict[str, Any] = {"model": model_id, **(sampling or {})}
    if endpoint_type == "completions":
        body["prompt"] = completion_prompt(messages)
    else:
        body["messages"] = list(messages)
    return body


def encode_body(body: Mapping[str, Any]) -> bytes:
    """Canonical JSON (sorted keys, no spaces): what is sent and what the cache key hashes."""
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


class ChatClient:
    """Send requests to one OpenAI-compatible endpoint. Use from one event loop only.

    ``await complete(body, context)`` sends one encoded body (see :func:`encode_body`) and
    returns the :class:`Completion`, retrying as the module doc says; it raises EndpointError
    when it cannot. ``observer(attempt, context)`` is called after every attempt (stats, the
    failed-request log).
    """

    def __init__(
        self,
        url: str,
        model_id: str,
        *,
        api_key: str | None = None,
        endpoint_type: str = "chat",
        timeout: float = 60.0,
        max_retries: int = 5,
        parallelism: int = 8,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        observer: Callable[[Attempt, Any], None] | None = None,
        limiter: AdaptiveLimiter | None = None,
        proxy: str | None = None,
    ) -> None:
        self.pool = ConnectionPool(url, max_idle=max(1, parallelism), proxy=proxy)
        self.url = url
        self.model_id = model_id
        self.endpoint_type = endpoint_type
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.observer = observer
        self.limiter = limiter or AdaptiveLimiter(parallelism)
        lines = [
            f"POST {self.pool.request_target} HTTP/1.1",
            f"Host: {self.pool.host_header}",
            f"User-Agent: {USER_AGENT}",
            "Content-Type: application/json",
            "Accept: application/json",
            "Connection: keep-alive",
        ]
        if api_key:
            lines.append(f"Authorization: Bearer {api_key}")
        self._head = ("\r\n".join(lines) + "\r\n").encode("latin-1") + self.pool.extra_headers

    def __repr__(self) -> str:  # never show the request head (the key)
        return f"ChatClient(url={self.url!r}, model_id={self.model_id!r})"

    async def complete(self, body: bytes, context: Any = None) -> Completion:
        attempt = 0
        while True:
            try:
                completion = await self._attempt(body, attempt)
            except _Failed as e:
                self._observe(Attempt(False, e.kind, e.status, e.latency, attempt, e.message,
                                      e.snippet), context)
                if not e.retry:
                    raise EndpointError(f"{self.url}: {e.message}") from None
                if attempt >= self.max_retries:
                    raise EndpointError(
                        f"{self.url}: {e.message} (gave up after {attempt + 1} attempts)"
                    ) from None
                await asyncio.sleep(self._delay(attempt, e.retry_after))
                attempt += 1
                continue
            self._observe(Attempt(True, None, 200, completion.latency or 0.0, attempt), context)
            return completion

    def _observe(self, attempt: Attempt, context: Any) -> None:
        if self.observer is not None:
            self.observer(attempt, context)

    async def _attempt(self, body: bytes, attempt: int) -> Completion:
        """One exchange; its latency counts from when it got a limiter slot."""
        epoch = await self.limiter.acquire()
        started = time.monotonic()
        try:
            return self._judge(await self._exchange(body), epoch, started, attempt)
        except _Failed as e:
            e.latency = time.monotonic() - started
            raise
        finally:
            self.limiter.release()

    async def _exchange(self, body: bytes) -> HttpResponse:
        try:
            async with asyncio.timeout(self.timeout):
                return await self.pool.post(self._head, body)
        except TimeoutError:
            raise _Failed(TIMEOUT, f"timed out after {self.timeout:g}s") from None
        except ssl.SSLCertVerificationError as e:  # not transient: retrying cannot help
            raise _Failed(TLS, f"TLS certificate not trusted: {_describe(e)}",
                          retry=False) from None
        except (OSError, asyncio.IncompleteReadError, ProtocolError) as e:
            raise _Failed(CONNECTION, f"connection error: {_describe(e)}") from None

    def _judge(
        self, response: HttpResponse, epoch: int, started: float, attempt: int
    ) -> Completion:
        status = response.status
        if status == 200:
            try:
                completion = parse_completion(
                    response.body, self.endpoint_type, time.monotonic() - started, attempt + 1
                )
            except ValueError as e:
                raise _Failed(BAD_RESPONSE, str(e), 200, snippet=_snippet(response.body)) from None
            self.limiter.succeeded()
            return completion
        snippet = _snippet(response.body)
        retry_after = _retry_after(response.headers.get("retry-after"))
        if status == 429:
            self.limiter.rate_limited(epoch)
            raise _Failed(HTTP_429, f"HTTP 429 {snippet}", status, retry_after=retry_after,
                          snippet=snippet)
        if status >= 500 or status == 408:
            kind = HTTP_5XX if status >= 500 else HTTP_408
            raise _Failed(kind, f"HTTP {status} {snippet}", status, retry_after=retry_after,
                          snippet=snippet)
        raise _Failed(HTTP_4XX, f"HTTP {status} {snippet}", status, retry=False, snippet=snippet)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:  # a minimum: up to 10% more, so retries do not bunch up
            wait = min(max(retry_after, 0.0), MAX_RETRY_AFTER)
            return wait + random.uniform(0, min(wait * 0.1, 1.0))
        ceiling = min(self.backoff_max, self.backoff_base * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def close(self) -> None:
        self.pool.close()


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _describe(e: BaseException) -> str:
    return str(e) or type(e).__name__


def _snippet(data: bytes, limit: int = 200) -> str:
    text = " ".join(data[: limit * 4].decode("utf-8", "replace").split())
    return text if len(text) <= limit else text[:limit] + "..."
