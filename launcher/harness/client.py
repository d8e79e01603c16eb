"""A small OpenAI-compatible client on the standard library (``http.client``).

``ChatClient.complete(messages) -> str`` sends one request and retries transient failures
(HTTP 408/429/5xx, timeouts, connection errors) with exponential backoff and jitter, honouring
``Retry-After``. Other 4xx answers fail at once. ``complete_all`` runs many requests on a thread
pool bounded by ``parallelism`` and stops everything at the first unrecoverable failure.

The API key only ever goes into the ``Authorization`` header; it is never printed or logged.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import random
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait
from typing import Any
from urllib.parse import urlsplit

from launcher import __version__
from launcher.harness.errors import EndpointError

Message = dict[str, Any]
RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})
MAX_RETRY_AFTER = 120.0
_STALE = (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError)


class _Retryable(Exception):
    def __init__(self, reason: str, retry_after: float | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after


class ChatClient:
    """Send chat (or completions) requests to one OpenAI-compatible endpoint. Thread-safe."""

    def __init__(
        self,
        url: str,
        model_id: str,
        *,
        api_key: str | None = None,
        endpoint_type: str = "chat",
        timeout: float = 60.0,
        max_retries: int = 5,
        temperature: float = 0.0,
        top_p: float = 1.0,
        max_new_tokens: int = 1024,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.url = url
        self.model_id = model_id
        self.endpoint_type = endpoint_type
        self.timeout = timeout
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self._sampling = {"temperature": temperature, "top_p": top_p, "max_tokens": max_new_tokens}
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._headers = {
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": f"eval-launcher-harness/{__version__}",
        }
        if api_key:
            self._headers["Authorization"] = f"Bearer {api_key}"
        self._local = threading.local()
        self._cancelled = threading.Event()

    def __repr__(self) -> str:  # never show headers (the key)
        return f"ChatClient(url={self.url!r}, model_id={self.model_id!r})"

    def cancel(self) -> None:
        """Make pending and future calls fail fast (used when the run is aborted)."""
        self._cancelled.set()

    def complete(self, messages: Sequence[Message]) -> str:
        """Return the model's text for ``messages``; raise EndpointError when it cannot."""
        body = json.dumps(self._body(messages)).encode("utf-8")
        attempt = 0
        while True:
            if self._cancelled.is_set():
                raise EndpointError("cancelled")
            try:
                return self._parse(self._post(body))
            except _Retryable as e:
                if attempt >= self.max_retries:
                    raise EndpointError(
                        f"{self.url}: {e.reason} (gave up after {attempt + 1} attempts)"
                    ) from None
                delay = self._delay(attempt, e.retry_after)
                attempt += 1
                if self._cancelled.wait(delay):
                    raise EndpointError("cancelled") from None

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- internals -------------------------------------------------------------------------

    def _body(self, messages: Sequence[Message]) -> dict[str, Any]:
        body: dict[str, Any] = {"model": self.model_id, **self._sampling}
        if self.endpoint_type == "completions":
            body["prompt"] = "\n\n".join(str(m.get("content", "")) for m in messages)
        else:
            body["messages"] = list(messages)
        return body

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
        ceiling = min(self.backoff_max, self.backoff_base * (2**attempt))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def _connection(self) -> tuple[http.client.HTTPConnection, bool]:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            return conn, True
        if self._https:
            conn = http.client.HTTPSConnection(
                self._host, self._port, timeout=self.timeout, context=ssl.create_default_context()
            )
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        self._local.conn = conn
        return conn, False

    def _post(self, body: bytes) -> bytes:
        """One HTTP exchange (plus one silent reconnect if a kept-alive socket went stale)."""
        for _ in range(2):
            conn, reused = self._connection()
            try:
                conn.request("POST", self._path, body=body, headers=self._headers)
                resp = conn.getresponse()
                data = resp.read()
            except _STALE as e:
                self.close()
                if reused:
                    continue
                raise _Retryable(f"connection error: {_describe(e)}") from None
            except (TimeoutError, OSError, http.client.HTTPException) as e:
                self.close()
                kind = "timed out" if isinstance(e, TimeoutError) else "connection error"
                raise _Retryable(f"{kind}: {_describe(e)}") from None
            if resp.will_close:
                self.close()
            if resp.status == 200:
                return data
            snippet = _snippet(data)
            if resp.status in RETRY_STATUSES or resp.status >= 500:
                raise _Retryable(
                    f"HTTP {resp.status} {snippet}", _retry_after(resp.getheader("Retry-After"))
                )
            raise EndpointError(f"{self.url}: HTTP {resp.status} {snippet}")
        raise _Retryable("connection closed by the server")  # pragma: no cover

    def _parse(self, data: bytes) -> str:
        try:
            choice = json.loads(data)["choices"][0]
            if self.endpoint_type == "completions":
                text = choice.get("text")
            else:
                text = (choice.get("message") or {}).get("content")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError):
            raise EndpointError(
                f"{self.url}: not an OpenAI-compatible response: {_snippet(data)}"
            ) from None
        if isinstance(text, list):  # content parts
            text = "".join(p.get("text", "") for p in text if isinstance(p, dict))
        return text if isinstance(text, str) else ""


def complete_all(
    client: ChatClient,
    prompts: Sequence[Sequence[Message]],
    parallelism: int,
    on_done: Callable[[int, int], None] | None = None,
) -> list[str]:
    """Complete every prompt (in order) with at most ``parallelism`` requests in flight.

    ``on_done(done, total)`` is called after each response. The first EndpointError cancels
    the rest and is raised.
    """
    results: list[str] = [""] * len(prompts)
    done = 0
    lock = threading.Lock()

    def one(i: int) -> None:
        nonlocal done
        results[i] = client.complete(prompts[i])
        with lock:
            done += 1
            if on_done is not None:
                on_done(done, len(prompts))

    pool = ThreadPoolExecutor(max_workers=max(1, parallelism), thread_name_prefix="request")
    try:
        futures = [pool.submit(one, i) for i in range(len(prompts))]
        wait(futures, return_when=FIRST_EXCEPTION)
        failed = [f for f in futures if f.done() and f.exception() is not None]
        if failed:
            client.cancel()
            error = failed[0].exception()
            assert error is not None
            raise error
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    return results


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
    text = " ".join(data.decode("utf-8", "replace").split())
    return text if len(text) <= limit else text[:limit] + "..."
