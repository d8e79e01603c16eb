"""The harness's request policy for OpenAI-compatible endpoints; HTTP itself is aiohttp's.

aiohttp does the protocol (keep-alive pool, chunked bodies, TLS, proxies and ``CONNECT``
tunnels). What is ours:

* :class:`AdaptiveLimiter` -- bounds the requests in flight. The bound starts at
  ``params.parallelism``; repeated HTTP 429s halve it (at most once per "epoch": answers to
  requests sent before the last decrease do not count again), and every ``limit`` successes
  add one back (AIMD, like TCP congestion control), so a rate-limited endpoint is not hammered
  and full speed comes back once it stops refusing.
* :class:`ChatClient` -- sends request bodies with retries and parses the answers. Retried
  (with exponential backoff and jitter, or the server's ``Retry-After`` plus up to 10%): HTTP
  408, 429 and 5xx, timeouts, refused/reset/dropped connections, and 200 answers whose body is
  not an OpenAI-compatible response. Other 4xx answers and an untrusted TLS certificate fail
  at once, with the server's error message (OpenAI-style ``{"error": {"message": ...}}`` or
  the plain body, one line, truncated). A backing-off request holds no limiter slot. A kept-
  alive connection the server closed meanwhile is sent again at once, once, and not counted
  as a failed attempt (aiohttp does that only for idempotent methods, not for POST).

The API key only ever goes into the ``Authorization`` header of the request; it is never
printed, logged or stored (request logs and the cache hold the body, not the headers), and
its value is scrubbed from every response snippet and error message.

Proxies: ``HTTP_PROXY``/``HTTPS_PROXY``/``NO_PROXY`` are honoured, as aiohttp's
``trust_env=True`` reads them (urllib's parsing), except that loopback is never proxied. They
are resolved once per client, not per request (``trust_env`` would read the environment and
``~/.netrc`` again for every request).

aiohttp is imported when the first request is sent, so importing this module (which
``launcher.plan`` does, through the adapter config) stays cheap.
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import email.utils
import http
import ipaddress
import json
import random
import ssl
import sys
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from launcher import __version__
from launcher.harness.errors import EndpointError

if TYPE_CHECKING:
    import aiohttp

Message = dict[str, Any]
MAX_RETRY_AFTER = 120.0
MAX_BODY_BYTES = 256 * 1024 * 1024
ERROR_MESSAGE_CHARS = 300  # of the server's message in an error line
USER_AGENT = f"eval-launcher-harness/{__version__}"

# Set by ChatClient._exchange for each request it sends; the connector appends to it when the
# request opens a new connection (so a dropped connection that did not is a reused one).
_FRESH: contextvars.ContextVar[list[bool]] = contextvars.ContextVar("fresh")

# Kinds of failed attempts (keys of the error counters in the request stats).
HTTP_429 = "http_429"
HTTP_5XX = "http_5xx"
HTTP_408 = "http_408"
HTTP_4XX = "http_4xx"
TLS = "tls"
TIMEOUT = "timeout"
CONNECTION = "connection"
BAD_RESPONSE = "bad_response"


# -- proxies ----------------------------------------------------------------------------------


def proxy_for(url: str) -> str | None:
    """The proxy URL the environment sets for ``url``'s scheme, unless NO_PROXY covers its host
    or the host is loopback."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    proxy = urllib.request.getproxies().get(parts.scheme)
    if not proxy or host == "localhost" or _is_loopback(host):
        return None
    if urllib.request.proxy_bypass(host):
        return None
    return proxy if "://" in proxy else f"http://{proxy}"


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    failed-request log). The aiohttp session is opened by the first request (on the running
    loop) and closed by ``await close()``.
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
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.proxy = proxy_for(url) if proxy is None else (proxy or None)
        if self.proxy is not None and urlsplit(self.proxy).scheme not in ("http", "https"):
            raise ValueError(f"unsupported proxy {self.proxy!r} (http:// or https:// only)")
        self.url = url
        self.model_id = model_id
        self.endpoint_type = endpoint_type
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.observer = observer
        self.limiter = limiter or AdaptiveLimiter(parallelism)
        self.opened = 0  # connections opened (for stats and tests)
        self.reconnects = 0  # reused connections found closed by the server (sent again)
        self._api_key = api_key or ""
        self._headers = {
            "User-Agent": USER_AGENT,
            "Content-Type": "application/json",
            "Accept": "application/json",
        }
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        # Read SSL_CERT_FILE/SSL_CERT_DIR now (aiohttp's own default context is made at import).
        self._ssl: ssl.SSLContext | bool = (
            ssl.create_default_context() if parts.scheme == "https" else True
        )
        self._session: aiohttp.ClientSession | None = None

    def __repr__(self) -> str:  # never show the headers (the key)
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
            status, headers, data = await self._exchange(body)
            return self._judge(status, headers, data, epoch, started, attempt)
        except _Failed as e:
            e.latency = time.monotonic() - started
            raise
        finally:
            self.limiter.release()

    def _open_session(self) -> aiohttp.ClientSession:
        import aiohttp

        client = self

        class Connector(aiohttp.TCPConnector):
            """Counts the connections it opens and tells the request that opened one (a
            TraceConfig would do the same at about 15% more CPU per request)."""

            async def _create_connection(self, *args: Any, **kwargs: Any) -> Any:
                client.opened += 1
                fresh = _FRESH.get(None)
                if fresh is not None:
                    fresh.append(True)
                return await super()._create_connection(*args, **kwargs)

        self._session = aiohttp.ClientSession(
            headers=self._headers,
            # Unbounded: the limiter bounds the requests in flight (and idle connections).
            connector=Connector(limit=0, ssl=self._ssl),
            timeout=aiohttp.ClientTimeout(total=None),  # ours: asyncio.timeout per attempt
            trust_env=False,  # the proxy is resolved once, see proxy_for()
            cookie_jar=aiohttp.DummyCookieJar(),  # an API needs none; saves work per request
            raise_for_status=False,
        )
        return self._session

    async def _exchange(self, body: bytes) -> tuple[int, Mapping[str, str], bytes]:
        import aiohttp

        session = self._session or self._open_session()
        try:
            async with asyncio.timeout(self.timeout):
                for resend in (False, True):
                    fresh: list[bool] = []  # gets an item if this request opens a connection
                    _FRESH.set(fresh)
                    try:
                        async with session.post(self.url, data=body,
                                                proxy=self.proxy) as response:
                            if (response.content_length or 0) > MAX_BODY_BYTES:
                                raise _Failed(BAD_RESPONSE, "response body too large",
                                              response.status)
                            return response.status, response.headers, await response.read()
                    except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                        # Closed by the server while idle in the pool: once more, fresh.
                        if resend or fresh:
                            raise
                        self.reconnects += 1
                raise AssertionError("unreachable")
        except TimeoutError:
            raise _Failed(TIMEOUT, f"timed out after {self.timeout:g}s") from None
        except aiohttp.ClientConnectorCertificateError as e:  # retrying cannot help
            raise _Failed(TLS, self._scrub(f"TLS certificate not trusted: {_describe(e)}"),
                          retry=False) from None
        except (aiohttp.ClientError, OSError) as e:
            raise _Failed(CONNECTION, self._scrub(f"connection error: {_describe(e)}")) from None

    def _judge(
        self, status: int, headers: Mapping[str, str], data: bytes, epoch: int, started: float,
        attempt: int,
    ) -> Completion:
        if status == 200:
            try:
                completion = parse_completion(
                    data, self.endpoint_type, time.monotonic() - started, attempt + 1
                )
            except ValueError as e:
                raise _Failed(BAD_RESPONSE, self._scrub(str(e)), 200,
                              snippet=self._scrub(_snippet(data))) from None
            self.limiter.succeeded()
            return completion
        snippet = self._scrub(_snippet(data))
        message = self._scrub(http_error(status, data))
        retry_after = _retry_after(headers.get("Retry-After"))
        if status == 429:
            self.limiter.rate_limited(epoch)
            raise _Failed(HTTP_429, message, status, retry_after=retry_after, snippet=snippet)
        if status >= 500 or status == 408:
            kind = HTTP_5XX if status >= 500 else HTTP_408
            raise _Failed(kind, message, status, retry_after=retry_after, snippet=snippet)
        raise _Failed(HTTP_4XX, message, status, retry=False, snippet=snippet)

    def _scrub(self, text: str) -> str:
        """``text`` without the API key's value (an endpoint may echo it in an error)."""
        return text.replace(self._api_key, "***") if self._api_key else text

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:  # a minimum: up to 10% more, so retries do not bunch up
            wait = min(max(retry_after, 0.0), MAX_RETRY_AFTER)
            return wait + random.uniform(0, min(wait * 0.1, 1.0))
        ceiling = min(self.backoff_max, self.backoff_base * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


def http_error(status: int, data: bytes) -> str:
    """One line for an HTTP error answer: ``HTTP 422 Unprocessable Content: <message>``, the
    message being the OpenAI-style ``error.message`` (or ``error``, ``message``, ``detail``) of a
    JSON body, else the body's text, truncated to ERROR_MESSAGE_CHARS."""
    try:
        line = f"HTTP {status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        line = f"HTTP {status}"
    message = _server_message(data)
    return f"{line}: {message}" if message else line


def _server_message(data: bytes) -> str:
    text = data[: ERROR_MESSAGE_CHARS * 8].decode("utf-8", "replace")
    try:
        doc = json.loads(data)
    except ValueError:
        doc = None
    if isinstance(doc, dict):
        error = doc.get("error")
        for value in (error.get("message") if isinstance(error, dict) else error,
                      doc.get("message"), doc.get("detail")):
            if isinstance(value, str) and value.strip():
                text = value
                break
    return _one_line(text, ERROR_MESSAGE_CHARS)


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
    return _one_line(str(e), 500) or type(e).__name__


def _one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def _snippet(data: bytes, limit: int = 200) -> str:
    return _one_line(data[: limit * 4].decode("utf-8", "replace"), limit)
