"""The reference endpoint's injected faults and its request counts (no HTTP here).

Each completion request fails with probability ``rate``, drawn per request from one
``random.Random(seed)`` in arrival order (so a retried request may well succeed); the kind is
picked uniformly from ``kinds`` (``FAULT_KINDS``). ``Stats`` counts completion requests by
outcome (``OUTCOMES``) and ok answers per item; both are thread-safe.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from collections.abc import Iterable
from typing import Any

from launcher.errors import ConfigError

FAULT_KINDS = ("429", "500", "timeout", "reset", "garbage")
DEFAULT_FAULTS = ("429", "500")
OUTCOMES = ("ok", *FAULT_KINDS, "bad_request", "unknown_prompt", "dropped", "after_eof")


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
        self._firsts: set[str] = set()
        self.reset()

    def first(self, what: str) -> None:
        """Log the time of the first ``what`` answer (the deployment benchmark reads it)."""
        with self._lock:
            if what in self._firsts:
                return
            self._firsts.add(what)
        print(f"reference endpoint: first {what} at {time.time():.3f}", file=sys.stderr,
              flush=True)

    def healthy(self) -> bytes:
        """The body of a ``/health`` answer."""
        self.first("health answer")
        return b'{"status": "ok"}'

    def reset(self) -> None:
        with self._lock:
            self._outcomes = dict.fromkeys(OUTCOMES, 0)
            self._items: dict[str, int] = {}

    def count(self, outcome: str, item: str | None = None) -> None:
        self.first("completion answer")
        with self._lock:
            self._outcomes[outcome] += 1
            if item is not None:
                self._items[item] = self._items.get(item, 0) + 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            requests = {"total": sum(self._outcomes.values()), **self._outcomes}
            return {"requests": requests, "items": dict(sorted(self._items.items()))}


def load_model(delay_s: float, exit_code: int | None) -> None:
    """Before serving: sleep ``delay_s`` (port closed, like a model server loading weights),
    then exit with ``exit_code`` if given (a server that dies while loading)."""
    if delay_s > 0:
        print(f"loading the model for {delay_s:g}s", file=sys.stderr, flush=True)
        time.sleep(delay_s)
    if exit_code is not None:
        print(f"error: failed to load the model (exit {exit_code})", file=sys.stderr, flush=True)
        sys.exit(exit_code)
