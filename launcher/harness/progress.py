"""``/results/progress.json``: done, total, errors, rate and ETA, rewritten atomically a few
times a second, so the launcher's live view (in another container) can read it."""

from __future__ import annotations

import json
import os
import threading
import time

PROGRESS_FILE = "progress.json"
INTERVAL_S = 0.25


class ProgressFile:
    def __init__(self, folder: str, total: int) -> None:
        self.path = os.path.join(folder, PROGRESS_FILE)
        self.total = total
        self.started = time.monotonic()
        self.last = 0.0
        self.lock = threading.Lock()

    def update(self, done: int, errors: int = 0, force: bool = False) -> None:
        now = time.monotonic()
        with self.lock:
            if not force and now - self.last < INTERVAL_S:
                return
            self.last = now
            elapsed = max(now - self.started, 1e-9)
            rate = done / elapsed
            eta = (self.total - done) / rate if rate > 0 else None
            data = {"done": done, "total": self.total, "errors": errors,
                    "rate": round(rate, 2), "eta_s": None if eta is None else round(eta, 1),
                    "elapsed_s": round(elapsed, 1)}
            tmp = f"{self.path}.tmp"
            try:
                with open(tmp, "w", encoding="utf-8") as fh:
                    json.dump(data, fh)
                os.replace(tmp, self.path)
            except OSError:
                pass  # progress is best-effort; results are not


def read(folder: str) -> dict | None:
    try:
        with open(os.path.join(folder, PROGRESS_FILE), encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None
