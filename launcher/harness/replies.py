"""What an OpenAI-compatible endpoint's answer says: the completion of a 200, or one line for an
error answer (the server's own message, truncated), its ``Retry-After``, and short one-line
snippets of bodies for logs and error messages.
"""

from __future__ import annotations

import email.utils
import http
import json
import sys
import time

import attrs

ERROR_MESSAGE_CHARS = 300  # of the server's message in an error line


@attrs.frozen
class Completion:
    """One successful answer."""

    text: str  # the model's text as sent (reasoning included)
    body: bytes  # the raw response body (what the cache stores)
    usage: dict[str, int]
    finish_reason: str | None = None
    latency: float | None = None  # of the successful attempt; None when replayed
    attempts: int = 1


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
        raise ValueError(f"not an OpenAI-compatible response: {snippet(data)}") from e
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
    return one_line(text, ERROR_MESSAGE_CHARS)


def retry_after(value: str | None) -> float | None:
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


def describe(e: BaseException) -> str:
    return one_line(str(e), 500) or type(e).__name__


def one_line(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit] + "..."


def snippet(data: bytes, limit: int = 200) -> str:
    return one_line(data[: limit * 4].decode("utf-8", "replace"), limit)
