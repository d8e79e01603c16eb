"""The harness's request policy for OpenAI-compatible endpoints; HTTP itself is aiohttp's.

aiohttp does the protocol (keep-alive pool, chunked bodies, TLS, proxies and ``CONNECT``
tunnels). What is ours:

* the requests in flight are bounded by :class:`launcher.harness.limiter.AdaptiveLimiter`
  (AIMD on HTTP 429s); answers are read by :mod:`launcher.harness.replies`.
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
import contextvars
import ipaddress
import json
import random
import ssl
import time
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from launcher import __version__
from launcher.harness import replies
from launcher.harness.errors import EndpointError
from launcher.harness.limiter import AdaptiveLimiter
from launcher.harness.replies import Completion, parse_completion

if TYPE_CHECKING:
    import aiohttp

Message = dict[str, Any]
MAX_RETRY_AFTER = 120.0
MAX_BODY_BYTES = 256 * 1024 * 1024
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


# -- the OpenAI-compatible client -------------------------------------------------------------


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
            raise _Failed(TLS, self._scrub(f"TLS certificate not trusted: {replies.describe(e)}"),
                          retry=False) from None
        except (aiohttp.ClientError, OSError) as e:
            message = f"connection error: {replies.describe(e)}"
            raise _Failed(CONNECTION, self._scrub(message)) from None

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
                              snippet=self._scrub(replies.snippet(data))) from None
            self.limiter.succeeded()
            return completion
        snippet = self._scrub(replies.snippet(data))
        message = self._scrub(replies.http_error(status, data))
        retry_after = replies.retry_after(headers.get("Retry-After"))
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
