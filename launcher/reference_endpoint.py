"""A reference endpoint for testing the launcher end to end. It is NOT a model.

It serves the OpenAI-compatible API (``POST /v1/chat/completions``, ``POST /v1/completions``,
``GET /v1/models``, ``GET /health``) and answers the built-in tasks (HumanEval, GSM8K) from
their known reference solutions, right or deliberately wrong at a chosen rate:

* it recognises an item by finding which known item text (HumanEval ``prompt``, GSM8K
  ``question``) is contained in the last user message, whatever the prompt template around it;
* the item at dataset index ``i`` is answered correctly iff
  ``floor((i+1)*A) - floor(i*A) == 1`` (exact, with ``Fraction(str(A))``), so of the first ``n``
  items exactly ``floor(n*A)`` are right: A=1.0 all, A=0.0 none, A=0.5 and n=10 five;
* a right HumanEval answer is the prompt plus the canonical solution in a ```python block, a
  wrong one the prompt with ``raise NotImplementedError`` as body; a right GSM8K answer is the
  reference reasoning ending ``The answer is <target>.``, a wrong one ends with target+1;
* anything else gets a fixed polite text.

Every answer waits ``latency_ms`` first (in its own request thread, so requests overlap).
"""

from __future__ import annotations

import functools
import json
import math
import re
import signal
import sys
import threading
import time
import uuid
from decimal import Decimal
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import attrs

from launcher.errors import ConfigError, LauncherError
from launcher.harness.datasets import load_gsm8k, load_humaneval, resolve_gsm8k
from launcher.harness.tasks.gsm8k import target_of

MODEL_ID = "reference"
UNKNOWN_ANSWER = (
    "I am the eval-launcher reference endpoint, not a language model. I can only answer the"
    " built-in HumanEval and GSM8K items, and I did not recognise this prompt."
)
MAX_BODY = 16 * 1024 * 1024


def is_correct(index: int, accuracy: Fraction) -> bool:
    """Whether the item at ``index`` gets the right answer under ``accuracy``."""
    return math.floor((index + 1) * accuracy) - math.floor(index * accuracy) == 1


def humaneval_answer(problem: dict[str, Any], correct: bool) -> str:
    body = problem["canonical_solution"] if correct else "    raise NotImplementedError\n"
    return "```python\n" + problem["prompt"] + body + "\n```"


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


class Oracle:
    """Known items and their (right or wrong) answers; ``answer(text)`` is thread-safe."""

    def __init__(
        self,
        accuracy: float,
        humaneval: list[dict[str, Any]],
        gsm8k: list[dict[str, Any]] | None,
    ) -> None:
        if not 0.0 <= accuracy <= 1.0:
            raise ConfigError(f"accuracy must be between 0 and 1, got {accuracy}")
        self.accuracy = Fraction(str(accuracy))
        known = [
            Known("humaneval", i, p["prompt"].strip(), humaneval_answer(p, self._ok(i)))
            for i, p in enumerate(humaneval)
        ]
        known += [
            Known("gsm8k", i, r["question"].strip(), gsm8k_answer(r, self._ok(i)))
            for i, r in enumerate(gsm8k or [])
        ]
        # Longest keys first: if one item's text contains another's, the longer one wins.
        self.known = sorted(known, key=lambda k: -len(k.key))
        self.counts = {"humaneval": len(humaneval), "gsm8k": len(gsm8k or [])}
        self.lookup = functools.lru_cache(maxsize=8192)(self._scan)

    def _ok(self, index: int) -> bool:
        return is_correct(index, self.accuracy)

    def _scan(self, text: str) -> Known | None:
        for item in self.known:
            if item.key in text:
                return item
        return None

    def answer(self, text: str) -> str:
        found = self.lookup(text)
        return found.answer if found else UNKNOWN_ANSWER


def load_oracle(accuracy: float, dataset_dir: str | None, log: Any = print) -> Oracle:
    humaneval = load_humaneval()
    gsm8k: list[dict[str, Any]] | None = None
    try:
        gsm8k = load_gsm8k(resolve_gsm8k(dataset_dir))
    except LauncherError as e:
        log(f"reference endpoint: GSM8K unavailable, serving HumanEval only ({e.message})")
    return Oracle(accuracy, humaneval, gsm8k)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: ReferenceServer

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)

    # -- routes --------------------------------------------------------------------------

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/health":
            self._json(200, {"status": "ok"})
        elif path == "/v1/models":
            model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "eval-launcher"}
            self._json(200, {"object": "list", "data": [model]})
        else:
            self._error(404, f"no route GET {path}", "not_found_error")

    def do_POST(self) -> None:
        path = self.path.split("?", 1)[0].rstrip("/")
        if path not in ("/v1/chat/completions", "/v1/completions"):
            self._drain()
            self._error(404, f"no route POST {path}", "not_found_error")
            return
        body = self._body()
        if body is None:
            return
        chat = path == "/v1/chat/completions"
        text = _last_user_text(body) if chat else body.get("prompt")
        if isinstance(text, list) and not chat:
            text = text[-1] if text else ""
        if not isinstance(text, str):
            field = "messages (with a user message)" if chat else "prompt"
            self._error(400, f"'{field}' is missing or malformed")
            return
        if body.get("stream"):
            self._error(400, "stream=true is not supported by the reference endpoint")
            return
        answer = self.server.oracle.answer(text)
        if self.server.latency_s > 0:
            time.sleep(self.server.latency_s)
        self._json(200, _response(body, text, answer, chat))

    # -- helpers -------------------------------------------------------------------------

    def _drain(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if 0 < length <= MAX_BODY:
            self.rfile.read(length)

    def _body(self) -> dict[str, Any] | None:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0 or length > MAX_BODY:
            self.close_connection = True
            self._error(400, "missing or invalid Content-Length")
            return None
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError as e:
            self._error(400, f"request body is not valid JSON: {e}")
            return None
        if not isinstance(body, dict):
            self._error(400, "request body must be a JSON object")
            return None
        return body

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str, kind: str = "invalid_request_error") -> None:
        error = {"message": message, "type": kind, "param": None, "code": None}
        self._json(status, {"error": error})


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
    model = body.get("model") if isinstance(body.get("model"), str) else MODEL_ID
    usage = {
        "prompt_tokens": _tokens(prompt),
        "completion_tokens": _tokens(answer),
        "total_tokens": _tokens(prompt) + _tokens(answer),
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
        "id": f"{prefix}-{uuid.uuid4().hex}",
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [choice],
        "usage": usage,
    }


class ReferenceServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], oracle: Oracle, latency_ms: float, verbose: bool
    ) -> None:
        super().__init__(address, _Handler)
        self.oracle = oracle
        self.latency_s = max(0.0, latency_ms) / 1000.0
        self.verbose = verbose


def make_server(
    host: str,
    port: int,
    accuracy: float,
    latency_ms: float,
    dataset_dir: str | None,
    *,
    verbose: bool = False,
) -> ReferenceServer:
    """A bound (not yet serving) server; call ``serve_forever()`` (port 0 picks a free one)."""
    oracle = load_oracle(accuracy, dataset_dir)
    return ReferenceServer((host, port), oracle, latency_ms, verbose)


def serve(
    host: str, port: int, accuracy: float, latency_ms: float, dataset_dir: str | None
) -> None:
    """Serve until SIGINT/SIGTERM (blocking)."""
    server = make_server(host, port, accuracy, latency_ms, dataset_dir)
    counts = ", ".join(f"{n} {task}" for task, n in server.oracle.counts.items())
    bound_host, bound_port = server.server_address[:2]
    print(
        f"reference endpoint (not a model) on http://{bound_host}:{bound_port}/v1"
        f" model '{MODEL_ID}', accuracy {accuracy}, latency {latency_ms} ms; knows {counts}",
        flush=True,
    )
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    try:
        server.serve_forever()
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
    args = parser.parse_args()
    try:
        serve(args.host, args.port, args.accuracy, args.latency_ms, args.dataset_dir)
    except LauncherError as e:
        print(f"error: {e.message}", file=sys.stderr)
        sys.exit(e.exit_code)
