"""``/results/progress.json``: done, total, errors, rate and ETA, rewritten atomically a few
times a second, so the launcher's live view (in another container) can read it.

``{"done", "total", "errors", "cached", "rate", "eta_s", "elapsed_s"}``: ``done`` counts
answers committed to the response cache (replayed ones included), ``cached`` those replayed
from it, ``errors`` failed attempts so far (each was retried or ended the run); ``rate`` is
answers fetched (not replayed) per second since the start, and ``eta_s`` the rest at that
rate."""

from __future__ import annotations

import contextlib
import json
import os
import time

from launcher import safe_fs
from launcher.errors import UnsafePath

PROGRESS_FILE = "progress.json"


class ProgressFile:
    def __init__(self, folder: str, total: int) -> None:
        self.path = os.path.join(folder, PROGRESS_FILE)
        self.total = total
        self.started = time.monotonic()

    def update(self, done: int, errors: int = 0, cached: int = 0) -> None:
        """Rewrite the file (the caller paces the calls: fetch's ticker, plus start and end)."""
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = max(done - cached, 0) / elapsed
        eta = (self.total - done) / rate if rate > 0 else (0.0 if done >= self.total else None)
        data = {"done": done, "total": self.total, "errors": errors, "cached": cached,
                "rate": round(rate, 2), "eta_s": None if eta is None else round(eta, 1),
                "elapsed_s": round(elapsed, 1)}
        # Best-effort (results are not), and never through a link planted in /results.
        with contextlib.suppress(OSError, UnsafePath):
            safe_fs.write_atomic(self.path, json.dumps(data), sync=False)


def read(folder: str) -> dict | None:
    try:  # never through a link planted there (see safe_fs.open_read)
        with safe_fs.open_read(os.path.join(folder, PROGRESS_FILE)) as fh:
            return json.load(fh)
    except (OSError, UnsafePath, ValueError):
        return None
