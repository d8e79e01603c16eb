"""A reference endpoint for testing the launcher end to end. It is NOT a model.

It serves the OpenAI-compatible API (``POST /v1/chat/completions``, ``POST /v1/completions``,
``GET /v1/models``, ``GET /health``) and answers the built-in tasks (HumanEval, GSM8K) from
their known reference solutions, right or deliberately wrong at a chosen rate:

* it recognises an item by finding which known item text (HumanEval ``prompt``, GSM8K
  ``question``) is contained in the last user message, whatever the prompt template around it
  (the longest contained text wins);
* the item at dataset index ``i`` is answered correctly iff
  ``floor((i+1)*A) - floor(i*A) == 1`` (exact, with ``Fraction(str(A))``), so of the first ``n``
  items exactly ``floor(n*A)`` are right: A=1.0 all, A=0.0 none, A=0.5 and n=10 five;
* a right HumanEval answer is the prompt plus the canonical solution in a ```python block, a
  wrong one the prompt with ``raise NotImplementedError`` as body; a right GSM8K answer is the
  reference reasoning ending ``The answer is <target>.``, a wrong one ends with target+1;
* custom-task items (``--dataset FILE.jsonl``, the custom task's JSONL format) are recognised
  by their ``question``; a right answer is the letter of the right choice (rows with
  ``choices``) or the answer itself (the first, if it is a list), a wrong one another letter or
  ``I do not know.``;
* it never guesses: a prompt it cannot match to an item it knows gets HTTP 422 with an
  OpenAI-style error whose message says what it knows and which data it lacks (e.g. GSM8K
  without ``--dataset-dir``), and names the flag that loads it; the harness fails the task with
  that line instead of scoring wrong answers.

Faults, to test retrying clients (completion routes only; never ``/health``, ``/v1/models`` or
``/stats``): each completion request fails with probability ``fail_rate``, drawn per request
(before its body is even validated) from one ``random.Random(seed)`` in arrival order, so a
retried request may well succeed; the kind is picked uniformly from ``faults``:

* ``429``: HTTP 429, ``Retry-After: <retry_after>`` and an OpenAI-style error JSON;
* ``500``: HTTP 500 and an OpenAI-style error JSON;
* ``timeout``: no answer at all; the connection stays open until the client closes it or
  ``hang_s`` passes (then it is closed without an answer);
* ``reset``: the TCP connection is closed abruptly (``SO_LINGER`` 0, so an RST) without an answer;
* ``garbage``: HTTP 200 whose body is truncated JSON (not parseable, not an OpenAI response).

Every completion answer (right, wrong, or a 429/500/reset/garbage fault) waits ``latency_ms``
first; a 400 for a malformed completion request goes out at once.

``GET /stats`` counts completion requests by outcome, each when it happens (``ok``, each fault
kind, ``bad_request`` for a 400, ``unknown_prompt`` for a 422, ``dropped`` when the client left
before its answer was due, ``after_eof`` for an answer written after the client closed its
sending side) and, per item, the ok answers sent (key ``humaneval/HumanEval/0``, ``gsm8k/12``,
``custom/<id or row index>``); ``POST /stats/reset`` zeroes them. A client that half-closes
after its request still gets the answer, but it is counted as ``after_eof``, not as an ok answer
for its item: a killed client's kernel sends the same FIN, and the answer then goes to a dead
socket. So ``items`` counts answers that can have reached a live client, which is what a test of
"no success is requested twice" needs.

The server is a small HTTP/1.1 server on asyncio (keep-alive, pipelining, ``Content-Length``
bodies, ``Expect: 100-continue``; 400 on a malformed request, 413 on a body over 16 MiB, 404,
405): the latency is a timer, not a sleeping thread, so thousands of requests a second overlap
on one thread. ``ReferenceServer`` keeps the ``socketserver`` surface the tests use
(``server_address``, ``serve_forever()``, ``shutdown()``, ``server_close()``).
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import re
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterable
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import attrs

from launcher.errors import ConfigError, LauncherError
from launcher.harness.datasets import load_gsm8k, load_humaneval, load_jsonl, resolve_gsm8k
from launcher.harness.tasks.gsm8k import INSTRUCTION as GSM8K_INSTRUCTION
from launcher.harness.tasks.gsm8k import target_of

MODEL_ID = "reference"
UNKNOWN_STATUS = 422
MAX_BODY = 16 * 1024 * 1024
MAX_HEAD = 64 * 1024
FAULT_KINDS = ("429", "500", "timeout", "reset", "garbage")
DEFAULT_FAULTS = ("429", "500")
OUTCOMES = ("ok", *FAULT_KINDS, "bad_request", "unknown_prompt", "dropped", "after_eof")
GARBAGE = b'{"id": "chatcmpl-garbage", "object": "chat.completion", "choices": [{"message": {"ro'
COMPLETION_ROUTES = ("/v1/chat/completions", "/v1/completions")
_WINDOW = 3  # words per recognition anchor
_ids = random.Random()  # response ids (uuid4 would cost a getrandom call per response)


def is_correct(index: int, accuracy: Fraction) -> bool:
    """Whether the item at ``index`` gets the right answer under ``accuracy``."""
    return math.floor((index + 1) * accuracy) - math.floor(index * accuracy) == 1


def humaneval_answer(problem: dict[str, Any], correct: bool) -> str:
    body = problem["canonical_solution"] if correct else "    raise NotImplementedError\n"
    return "```python\n" + problem["prompt"] + body + "\n```"


def custom_answer(row: dict[str, Any], correct: bool) -> str:
    """A custom-task row's answer: its choice letter (or text), right or not."""
    answer = row.get("answer")
    first = str(answer[0] if isinstance(answer, list) and answer else answer)
    choices = row.get("choices")
    if isinstance(choices, list) and choices:
        letters = [chr(ord("A") + i) for i in range(len(choices))]
        right = first.strip().upper() if first.strip().upper() in letters else next(
            (letter for letter, text in zip(letters, choices, strict=False)
             if str(text).strip() == first.strip()), "A")
        if correct:
            return right
        return next(letter for letter in letters if letter != right)
    return first if correct else "I do not know."


def gsm8k_answer(row: dict[str, Any], correct: bool) -> str:
    reasoning = re.sub(r"<<[^>]*>>", "", row["answer"].split("####")[0]).strip()
    target = target_of(row["answer"])
    given = target if correct else str(Decimal(target) + 1)
    return f"{reasoning}\nThe answer is {given}."


@attrs.frozen
class Known:
    task: str
    index: int
    key: str  # the item text looked for in prompts
    answer: str
    id: str = ""  # the stats key: "humaneval/HumanEval/0", "gsm8k/12"


class Oracle:
    """Known items and their (right or wrong) answers; ``answer(text)`` is thread-safe.

    Finding which key a prompt contains would take ~1.5k substring scans per new prompt, so
    each key with enough words is indexed by one run of ``_WINDOW`` interior words (one that no
    other key has taken, if it can): an interior word is whitespace-delimited in the key, so it
    is a whole token of any text containing the key, and only keys whose anchor occurs among
    the text's token runs are checked. Keys too short for an anchor are always checked. The
    result equals a scan of all keys longest first (ties: HumanEval, then GSM8K, by index).
    """

    def __init__(
        self,
        accuracy: float,
        humaneval: list[dict[str, Any]],
        gsm8k: list[dict[str, Any]] | None,
        custom: list[dict[str, Any]] | None = None,
        missing: tuple[str, ...] = (),
    ) -> None:
        if not 0.0 <= accuracy <= 1.0:
            raise ConfigError(f"accuracy must be between 0 and 1, got {accuracy}")
        self.accuracy = Fraction(str(accuracy))
        known = [
            Known(
                "humaneval", i, p["prompt"].strip(), humaneval_answer(p, self._ok(i)),
                f"humaneval/{p.get('task_id', i)}",
            )
            for i, p in enumerate(humaneval)
        ]
        known += [
            Known("gsm8k", i, r["question"].strip(), gsm8k_answer(r, self._ok(i)), f"gsm8k/{i}")
            for i, r in enumerate(gsm8k or [])
        ]
        known += [
            Known("custom", i, str(r["question"]).strip(), custom_answer(r, self._ok(i)),
                  f"custom/{r.get('id', i)}")
            for i, r in enumerate(custom or [])
        ]
        # Longest keys first: if one item's text contains another's, the longer one wins.
        self.known = sorted(known, key=lambda k: -len(k.key))
        self.counts = {"humaneval": len(humaneval), "gsm8k": len(gsm8k or []),
                       "custom": len(custom or [])}
        self.missing = missing  # what it could not load, each with the flag that loads it
        self._anchors, self._unanchored = _anchor_index(self.known)
        self.lookup = lru_cache(maxsize=8192)(self._scan)

    def _ok(self, index: int) -> bool:
        return is_correct(index, self.accuracy)

    def _scan(self, text: str) -> Known | None:
        words = text.split()
        ranks = [r for r in self._unanchored if self.known[r].key in text]
        get = self._anchors.get
        for window in zip(*(words[i:] for i in range(_WINDOW)), strict=False):
            for rank in get(window, ()):
                if self.known[rank].key in text:
                    ranks.append(rank)
        return self.known[min(ranks)] if ranks else None

    def answer(self, text: str) -> str | None:
        """The answer to a prompt, or None when it names no item this oracle knows."""
        found = self.lookup(text)
        return found.answer if found else None

    def unknown_message(self, text: str) -> str:
        """Why a prompt got no answer: the missing data first (GSM8K's if the prompt is the
        gsm8k task's), then what it knows."""
        missing = list(self.missing)
        if GSM8K_MISSING in missing and GSM8K_INSTRUCTION in text:
            missing = [GSM8K_MISSING]
        counts = ", ".join(f"{n} {task}" for task, n in self.counts.items())
        known = f"the reference endpoint (not a model) knows no such prompt ({counts} items)"
        return "; ".join([*missing, known])


def _anchor_index(known: list[Known]) -> tuple[dict[tuple[str, ...], list[int]], list[int]]:
    """Anchor each key on its first interior word window that no other key uses yet."""
    anchors: dict[tuple[str, ...], list[int]] = {}
    unanchored: list[int] = []
    for rank, item in enumerate(known):
        interior = item.key.split()[1:-1]
        windows = zip(*(interior[i:] for i in range(_WINDOW)), strict=False)
        first = None
        for window in windows:
            first = first or window
            if window not in anchors:
                anchors[window] = [rank]
                break
        else:
            if first is None:
                unanchored.append(rank)
            else:
                anchors[first].append(rank)
    return anchors, unanchored


GSM8K_MISSING = (
    "GSM8K data is not loaded: restart it with --dataset-dir DIR, a folder holding GSM8K's"
    " test.jsonl (the same folder as the task's dataset_dir)"
)
CUSTOM_MISSING = "custom-task questions are known only from --dataset FILE.jsonl (repeatable)"


def load_oracle(
    accuracy: float, dataset_dir: str | None, log: Any = print, custom: Iterable[str] = ()
) -> Oracle:
    """The oracle for HumanEval, GSM8K (if it can be found) and the custom JSONL files."""
    humaneval = load_humaneval()
    gsm8k: list[dict[str, Any]] | None = None
    missing: list[str] = []
    try:
        gsm8k = load_gsm8k(resolve_gsm8k(dataset_dir))
    except LauncherError as e:
        log(f"reference endpoint: GSM8K unavailable ({e.message})")
        missing.append(GSM8K_MISSING)
    rows: list[dict[str, Any]] = []
    for path in custom:
        for n, row in load_jsonl(Path(path)):
            if not isinstance(row.get("question"), str) or "answer" not in row:
                raise ConfigError(f"{path}: line {n} is not a custom-task item (question, answer)")
            rows.append(row)
    if not rows:
        missing.append(CUSTOM_MISSING)
    return Oracle(accuracy, humaneval, gsm8k, rows, tuple(missing))


# -- faults and counts -------------------------------------------------------------------------


def parse_faults(values: Iterable[str]) -> tuple[str, ...]:
    """``["429", "500,reset"]`` -> ``("429", "500", "reset")``; ConfigError on an unknown kind."""
    kinds: list[str] = []
    for value in values:
        for kind in (v.strip().lower() for v in value.split(",")):
            if not kind:
                continue
            if kind not in FAULT_KINDS:
                raise ConfigError(f"unknown fault {kind!r}; choose from {', '.join(FAULT_KINDS)}")
            if kind not in kinds:
                kinds.append(kind)
    return tuple(kinds)


class Faults:
    """Which completion requests fail, and how: seeded, drawn per request in arrival order."""

    def __init__(
        self,
        rate: float = 0.0,
        kinds: Iterable[str] = DEFAULT_FAULTS,
        seed: int | None = None,
        retry_after: float = 0.0,
        hang_s: float = 600.0,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ConfigError(f"fail rate must be between 0 and 1, got {rate}")
        if retry_after < 0 or hang_s < 0:
            raise ConfigError("retry-after and hang time must not be negative")
        self.rate = rate
        self.kinds = parse_faults(kinds) or DEFAULT_FAULTS
        self.seed = seed
        self.retry_after = retry_after
        self.hang_s = hang_s
        self._rng = random.Random(seed)
        self._lock = threading.Lock()

    def draw(self) -> str | None:
        """The fault for the next completion request, or None for a normal answer."""
        if self.rate <= 0.0:
            return None
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            return self.kinds[0] if len(self.kinds) == 1 else self._rng.choice(self.kinds)

    def describe(self) -> str:
        if self.rate <= 0.0:
            return "no faults"
        seed = "random" if self.seed is None else self.seed
        return f"fail rate {self.rate} ({', '.join(self.kinds)}; seed {seed})"

    def retry_after_header(self) -> str:
        value = self.retry_after
        return str(int(value)) if value == int(value) else repr(value)


class Stats:
    """Completion requests by outcome and ok answers per item. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self._outcomes = dict.fromkeys(OUTCOMES, 0)
            self._items: dict[str, int] = {}

    def count(self, outcome: str, item: str | None = None) -> None:
        with self._lock:
            self._outcomes[outcome] += 1
            if item is not None:
                self._items[item] = self._items.get(item, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            requests = {"total": sum(self._outcomes.values()), **self._outcomes}
            return {"requests": requests, "items": dict(sorted(self._items.items()))}


# -- HTTP ------------------------------------------------------------------------------------

REASONS = {
    200: "OK", 400: "Bad Request", 404: "Not Found",
    405: "Method Not Allowed", 413: "Content Too Large", 422: "Unprocessable Content",
    429: "Too Many Requests",
    431: "Request Header Fields Too Large", 500: "Internal Server Error",
    501: "Not Implemented", 505: "HTTP Version Not Supported",
}


class Headers(dict[str, str]):
    """Request headers under lower-case names, looked up case-insensitively."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return super().get(name.lower(), default)

    def __getitem__(self, name: str) -> str:
        return super().__getitem__(name.lower())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and super().__contains__(name.lower())


class RequestView:
    """One request as an observer sees it (``command``, ``path``, ``headers``, ``body``).

    To watch requests (tests do), set ``server.RequestHandlerClass`` to a subclass that
    overrides ``do_GET``/``do_POST`` (the base ones do nothing); it is called as each request
    arrives, before it is answered, on the server's thread. This mirrors the hook of the
    previous ``http.server`` implementation.
    """

    def __init__(self, command: str, path: str, headers: Headers, body: bytes) -> None:
        self.command = command
        self.path = path
        self.headers = headers
        self.body = body

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        pass

    def do_POST(self) -> None:  # noqa: N802
        pass


_Head = tuple[str, str, str, dict[str, str], int, int]  # method, target, version, headers, ...


class _BadRequest(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error_body(message: str, kind: str, code: str | None = None) -> bytes:
    error = {"message": message, "type": kind, "param": None, "code": code}
    return json.dumps({"error": error}).encode("utf-8")


class _Connection(asyncio.Protocol):
    """One client connection: parses requests one at a time (pipelined ones wait their turn)."""

    def __init__(self, server: ReferenceServer) -> None:
        self.server = server
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.head: _Head | None = None  # parsed, body still arriving
        self.busy = False  # a request is being answered (or hung)
        self.paused = False
        self.continued = False
        self.timer: asyncio.TimerHandle | None = None
        self.hanging = False
        self.eof = False  # the client half-closed while we were answering

    # -- asyncio callbacks -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server._connections.add(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._connections.discard(self)
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
            if not self.hanging:
                self.server.stats.count("dropped")
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.busy:
            self._process()
        elif len(self.buf) > MAX_HEAD and not self.paused and self.transport is not None:
            self.transport.pause_reading()  # pipelining client far ahead of us
            self.paused = True

    def eof_received(self) -> bool | None:
        if self.busy and not self.hanging:  # half-closed after sending: answer, then close
            self.eof = True
            return True
        return None  # close our side too (answers already written are flushed first)

    # -- requests --------------------------------------------------------------------------

    def _process(self) -> None:
        while not self.busy and self.transport is not None and not self.transport.is_closing():
            try:
                request = self._parse()
            except _BadRequest as e:
                self._send(e.status, _error_body(e.message, "invalid_request_error"), False)
                self.buf.clear()
                return
            if request is None:
                break
            self._dispatch(*request)
        if self.busy or self.transport is None:
            return
        if self.eof:
            self.transport.close()
        elif self.paused:
            self.transport.resume_reading()
            self.paused = False

    def _parse(self) -> tuple[str, str, dict[str, str], bytes, bool] | None:
        buf = self.buf
        if self.head is None:
            while buf[:2] == b"\r\n":  # RFC 9112 2.2: ignore empty lines before a request
                del buf[:2]
            end = buf.find(b"\r\n\r\n", 0, MAX_HEAD + 4)
            if end < 0:
                if len(buf) > MAX_HEAD:
                    raise _BadRequest(431, "request head too large")
                return None
            self.head = _parse_head(bytes(buf[:end]), end + 4)
            self.continued = False
        method, target, version, headers, start, length = self.head
        if len(buf) < start + length:
            if not self.continued and headers.get("expect", "").lower() == "100-continue":
                self.continued = True
                assert self.transport is not None
                self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            return None
        body = bytes(buf[start : start + length])
        del buf[: start + length]
        self.head = None
        connection = headers.get("connection")
        if connection is None:
            keep = version == "HTTP/1.1"
        else:
            tokens = {t.strip().lower() for t in connection.split(",")}
            keep = "close" not in tokens if version == "HTTP/1.1" else "keep-alive" in tokens
        return method, target, headers, body, keep

    def _dispatch(
        self, method: str, target: str, headers: dict[str, str], body: bytes, keep: bool
    ) -> None:
        server = self.server
        if target.startswith(("http://", "https://")):  # absolute-form
            target = "/" + target.split("://", 1)[1].partition("/")[2]
        path = target.split("?", 1)[0].rstrip("/")
        if server.verbose:
            print(f"reference endpoint: {method} {target}", file=sys.stderr, flush=True)
        if server.RequestHandlerClass is not RequestView:
            view = server.RequestHandlerClass(method, target, Headers(headers), body)
            handler = getattr(view, f"do_{method}", None)
            if handler is not None:
                handler()
        head = method == "HEAD"
        if path in COMPLETION_ROUTES:
            if method != "POST":
                self._method_not_allowed(method, path, "POST", keep)
            else:
                self._complete(path == "/v1/chat/completions", body, keep)
        elif path in ("/health", "/v1/models", "/stats"):
            if method not in ("GET", "HEAD"):
                self._method_not_allowed(method, path, "GET, HEAD", keep)
            elif path == "/health":
                self._send(200, b'{"status": "ok"}', keep, head=head)
            elif path == "/v1/models":
                self._send(200, server.models_body, keep, head=head)
            else:
                self._send(200, json.dumps(server.stats.snapshot()).encode(), keep, head=head)
        elif path == "/stats/reset":
            if method != "POST":
                self._method_not_allowed(method, path, "POST", keep)
            else:
                server.stats.reset()
                self._send(200, b'{"status": "reset"}', keep)
        else:
            self._send(404, _error_body(f"no route {method} {path}", "not_found_error"), keep,
                       head=head)

    def _method_not_allowed(self, method: str, path: str, allow: str, keep: bool) -> None:
        body = _error_body(f"method {method} not allowed on {path}", "invalid_request_error")
        self._send(405, body, keep, extra=f"Allow: {allow}\r\n", head=method == "HEAD")

    def _complete(self, chat: bool, raw: bytes, keep: bool) -> None:
        server = self.server
        fault = server.faults.draw()
        if fault is not None:
            self._fault(fault, keep)
            return
        try:
            body = json.loads(raw)
        except ValueError as e:
            self._bad_request(f"request body is not valid JSON: {e}", keep)
            return
        if not isinstance(body, dict):
            self._bad_request("request body must be a JSON object", keep)
            return
        text = _last_user_text(body) if chat else body.get("prompt")
        if isinstance(text, list) and not chat:
            text = text[-1] if text else ""
        if not isinstance(text, str):
            field = "messages (with a user message)" if chat else "prompt"
            self._bad_request(f"'{field}' is missing or malformed", keep)
            return
        if body.get("stream"):
            self._bad_request("stream=true is not supported by the reference endpoint", keep)
            return
        found = server.oracle.lookup(text)
        if found is None:
            error = _error_body(server.oracle.unknown_message(text), "invalid_request_error",
                                "unknown_prompt")
            self._later(lambda: self._send(UNKNOWN_STATUS, error, keep, outcome="unknown_prompt"))
            return
        data = json.dumps(_response(body, text, found.answer, chat)).encode("utf-8")
        self._later(lambda: self._send(200, data, keep, outcome="ok", item=found.id))

    def _bad_request(self, message: str, keep: bool) -> None:
        self._send(400, _error_body(message, "invalid_request_error"), keep, outcome="bad_request")

    def _fault(self, kind: str, keep: bool) -> None:
        faults = self.server.faults
        if kind == "timeout":
            self.server.stats.count("timeout")
            self.busy = self.hanging = True
            self.timer = self.server.loop.call_later(faults.hang_s, self._hang_over)
            return
        if kind == "429":
            body = _error_body("injected fault: rate limit reached, retry later",
                               "rate_limit_error", "rate_limit_exceeded")
            retry = f"Retry-After: {faults.retry_after_header()}\r\n"
            self._later(lambda: self._send(429, body, keep, extra=retry, outcome="429"))
        elif kind == "500":
            body = _error_body("injected fault: internal server error", "server_error")
            self._later(lambda: self._send(500, body, keep, outcome="500"))
        elif kind == "garbage":
            self._later(lambda: self._send(200, GARBAGE, keep, outcome="garbage"))
        else:
            self._later(self._reset)

    def _later(self, action: Callable[[], None]) -> None:
        """Run ``action`` after the latency; no further request is read meanwhile."""
        latency = self.server.latency_s
        if latency <= 0:
            action()
            return
        self.busy = True

        def fire() -> None:
            self.timer = None
            self.busy = False
            action()
            self._process()

        self.timer = self.server.loop.call_later(latency, fire)

    def _hang_over(self) -> None:
        self.timer = None
        if self.transport is not None:
            self.transport.close()

    def _reset(self) -> None:
        transport = self.transport
        if transport is None:
            self.server.stats.count("dropped")
            return
        self.server.stats.count("reset")
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        transport.abort()

    def _send(
        self,
        status: int,
        body: bytes,
        keep: bool,
        *,
        extra: str = "",
        head: bool = False,
        outcome: str | None = None,
        item: str | None = None,
    ) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            if outcome is not None:
                self.server.stats.count("dropped")
            return
        if outcome is not None:
            if self.eof:  # half-closed: maybe a live client, maybe a killed one (same FIN)
                self.server.stats.count("after_eof")
            else:
                self.server.stats.count(outcome, item)  # only ok answers carry an item
        keep = keep and not self.server.stopping
        close = "" if keep else "Connection: close\r\n"
        lines = (
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{extra}{close}\r\n"
        ).encode("latin-1")
        transport.write(lines if head else lines + body)
        if not keep:
            transport.close()

    def shutdown(self) -> None:
        """Server stopping: close now if idle or hanging, else after the answer in progress."""
        if self.transport is None:
            return
        if self.hanging:
            self.transport.abort()
        elif not self.busy:
            self.transport.close()


def _parse_head(raw: bytes, start: int) -> _Head:
    """Request line and headers -> (method, target, version, headers, body start, length).

    Header names are lower-cased; repeated headers are joined with ", ".
    """
    lines = raw.decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[0].isupper() or not parts[1]:
        raise _BadRequest(400, "malformed request line")
    method, target, version = parts
    if version != "HTTP/1.1" and version != "HTTP/1.0":
        if version.startswith("HTTP/") and version[5:6].isdigit():
            raise _BadRequest(505, f"unsupported HTTP version {version}")
        raise _BadRequest(400, "malformed request line")
    if target[0] != "/" and not target.startswith(("http://", "https://")) and target != "*":
        raise _BadRequest(400, "malformed request target")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or not name.isprintable() or len(name.split()) != 1 or (
            name[0] in " \t" or name[-1] in " \t"
        ):
            raise _BadRequest(400, "malformed header line")
        name = name.lower()
        value = value.strip(" \t")
        if name in headers:
            if name == "content-length" and headers[name] != value:
                raise _BadRequest(400, "conflicting Content-Length headers")
            value = headers[name] + ", " + value
        headers[name] = value
    if "transfer-encoding" in headers:
        raise _BadRequest(501, "Transfer-Encoding is not supported; send Content-Length")
    length_text = headers.get("content-length", "0")
    if not (length_text.isascii() and length_text.isdigit()):
        raise _BadRequest(400, "missing or invalid Content-Length")
    length = int(length_text)
    if length > MAX_BODY:
        raise _BadRequest(413, f"request body over {MAX_BODY} bytes")
    return method, target, version, headers, start, length


def _last_user_text(body: dict[str, Any]) -> str | None:
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # content parts
                return "".join(
                    p.get("text", "") for p in content if isinstance(p, dict) and "text" in p
                )
            return content if isinstance(content, str) else None
    return None


def _tokens(text: str) -> int:
    return max(1, math.ceil(len(text) / 4))  # a rough count; there is no tokenizer


def _response(body: dict[str, Any], prompt: str, answer: str, chat: bool) -> dict[str, Any]:
    model = body.get("model")
    if not isinstance(model, str):
        model = MODEL_ID
    prompt_tokens, completion_tokens = _tokens(prompt), _tokens(answer)
    usage = {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }
    if chat:
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": answer},
            "finish_reason": "stop",
            "logprobs": None,
        }
        kind, prefix = "chat.completion", "chatcmpl"
    else:
        choice = {"index": 0, "text": answer, "finish_reason": "stop", "logprobs": None}
        kind, prefix = "text_completion", "cmpl"
    return {
        "id": f"{prefix}-{_ids.getrandbits(128):032x}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage,
    }


class ReferenceServer:
    """The endpoint bound to ``address`` at construction; ``serve_forever()`` runs it.

    Like ``socketserver``: ``server_address`` is the bound address (port 0 picks a free one),
    ``shutdown()`` (from another thread) stops ``serve_forever()`` and waits for it, and
    ``server_close()`` releases the socket. ``stats`` and ``faults`` may be read from any thread.
    """

    RequestHandlerClass: type[RequestView] = RequestView

    def __init__(
        self,
        address: tuple[str, int],
        oracle: Oracle,
        latency_ms: float,
        verbose: bool = False,
        *,
        faults: Faults | None = None,
    ) -> None:
        self.oracle = oracle
        self.latency_s = max(0.0, latency_ms) / 1000.0
        self.verbose = verbose
        self.faults = faults or Faults()
        self.stats = Stats()
        model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "eval-launcher"}
        self.models_body = json.dumps({"object": "list", "data": [model]}).encode()
        host, port = address
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.socket = socket.create_server((host, port), family=family, backlog=1024)
        self.server_address: tuple[Any, ...] = self.socket.getsockname()
        self.stopping = False
        self._connections: set[_Connection] = set()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._shutdown_requested = False
        self._done = threading.Event()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None, "not serving"
        return self._loop

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
        server = await loop.create_server(lambda: _Connection(self), sock=self.socket)
        try:
            await stop.wait()
        finally:
            self.stopping = True
            server.close()  # stop accepting (closes the listening socket)
            for conn in list(self._connections):
                conn.shutdown()
            deadline = loop.time() + max(5.0, self.latency_s + 1.0)
            while self._connections and loop.time() < deadline:
                await asyncio.sleep(0.01)
            for conn in list(self._connections):
                if conn.transport is not None:
                    conn.transport.abort()
            await asyncio.sleep(0)


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
) -> ReferenceServer:
    """A bound (not yet serving) server; call ``serve_forever()`` (port 0 picks a free one).
    ``custom``: JSONL files of custom-task items it should know too."""
    oracle = load_oracle(accuracy, dataset_dir, custom=custom)
    return ReferenceServer((host, port), oracle, latency_ms, verbose, faults=faults)


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


if __name__ == "__main__":  # python -m launcher.reference_endpoint --port 8000
    import argparse

    parser = argparse.ArgumentParser(prog="python -m launcher.reference_endpoint")
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
    args = parser.parse_args()
    try:
        serve(
            args.host, args.port, args.accuracy, args.latency_ms, args.dataset_dir,
            faults=Faults(args.fail_rate, args.fault, args.seed, args.retry_after, args.hang_s),
            custom=args.dataset,
        )
    except LauncherError as e:
        print(f"error: {e.message}", file=sys.stderr)
        sys.exit(e.exit_code)
