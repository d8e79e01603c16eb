"""The request, response and failed-request logs the adapter config asks for
(``use_request_logging``, ``use_response_logging``, ``log_failed_requests``): JSON lines under
``<output_dir>/logs/``, opened without following a planted link. They hold bodies, never headers,
so never the API key.
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Mapping
from typing import IO, Any

from launcher import safe_fs
from launcher.harness.adapters import AdapterConfig
from launcher.harness.client import Attempt

LOGS_DIR = "logs"
REQUESTS_LOG = "requests.jsonl"
RESPONSES_LOG = "responses.jsonl"
FAILED_LOG = "failed_requests.jsonl"


class JsonlLog:
    """Append JSON lines to a file, at most ``limit`` (None = no limit). Buffered; a torn
    last line after a kill is possible (readers skip it)."""

    def __init__(self, path: str, limit: int | None) -> None:
        self.path = path
        self.limit = limit
        self.written = 0
        self._fh: IO[str] | None = None

    def write(self, record: Mapping[str, Any]) -> None:
        if self.limit is not None and self.written >= self.limit:
            return
        if self._fh is None:  # never through a link planted there (see launcher.safe_fs)
            safe_fs.make_dirs(os.path.dirname(self.path))
            self._fh = io.TextIOWrapper(safe_fs.open_append(self.path), encoding="utf-8")
        self._fh.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.written += 1

    def flush(self) -> None:
        if self._fh is not None:
            self._fh.flush()

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None


def _json_or_text(data: bytes) -> Any:
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")


class RequestLogs:
    """The request/response/failed-request logs the adapter config asks for."""

    def __init__(self, output_dir: str, config: AdapterConfig, url: str) -> None:
        folder = os.path.join(output_dir, LOGS_DIR)
        self.url = url
        self.requests = (
            JsonlLog(os.path.join(folder, REQUESTS_LOG), config.max_logged_requests)
            if config.use_request_logging else None
        )
        self.responses = (
            JsonlLog(os.path.join(folder, RESPONSES_LOG), config.max_logged_responses)
            if config.use_response_logging else None
        )
        self.failed = (
            JsonlLog(os.path.join(folder, FAILED_LOG), None) if config.log_failed_requests
            else None
        )

    def request(self, key: str, sample: int, body: bytes) -> None:
        if self.requests is not None:
            self.requests.write({"time": time.time(), "key": key, "sample": sample,
                                 "url": self.url, "body": _json_or_text(body)})

    def response(self, key: str, sample: int, body: bytes, latency: float | None,
                 cached: bool) -> None:
        if self.responses is not None:
            self.responses.write({"time": time.time(), "key": key, "sample": sample,
                                  "cached": cached,
                                  "latency_s": None if latency is None else round(latency, 4),
                                  "body": _json_or_text(body)})

    def failure(self, key: str, sample: int, body: bytes, attempt: Attempt) -> None:
        if self.failed is not None:
            self.failed.write({"time": time.time(), "key": key, "sample": sample,
                               "url": self.url, "attempt": attempt.attempt, "kind": attempt.kind,
                               "status": attempt.status, "error": attempt.message,
                               "latency_s": round(attempt.latency, 4),
                               "request": _json_or_text(body),
                               "response": attempt.response_snippet})

    def flush(self) -> None:
        for log in (self.requests, self.responses, self.failed):
            if log is not None:
                log.flush()

    def close(self) -> None:
        for log in (self.requests, self.responses, self.failed):
            if log is not None:
                log.close()
