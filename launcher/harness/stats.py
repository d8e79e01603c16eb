"""``request_stats`` in results.yml: attempts, retries, errors by kind, latency percentiles,
token counts, finish reasons and the concurrency the adaptive limiter ended at."""

from __future__ import annotations

from array import array
from collections.abc import Mapping, Sequence
from typing import Any

from launcher.harness.client import Attempt


class RequestStats:
    """Counters and latencies for ``request_stats`` in results.yml."""

    def __init__(self) -> None:
        self.attempts = 0
        self.succeeded = 0
        self.cached = 0
        self.retries = 0
        self.errors: dict[str, int] = {}
        self.latencies = array("d")  # successful attempts, seconds
        self.tokens = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self.cached_tokens = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
        self.finish_reasons: dict[str, int] = {}
        self.reasoning = {"stripped": 0, "unfinished": 0}  # answers, by split_reasoning's case

    def attempt(self, a: Attempt) -> None:
        self.attempts += 1
        if a.attempt > 0:
            self.retries += 1
        if a.ok:
            self.latencies.append(a.latency)
        else:
            assert a.kind is not None
            self.errors[a.kind] = self.errors.get(a.kind, 0) + 1

    def answer(self, usage: Mapping[str, int], finish_reason: str | None, cached: bool) -> None:
        if cached:
            self.cached += 1
        else:
            self.succeeded += 1
        counts = self.cached_tokens if cached else self.tokens
        for name, value in usage.items():
            if name in counts:
                counts[name] += value
        if finish_reason:
            self.finish_reasons[finish_reason] = self.finish_reasons.get(finish_reason, 0) + 1

    def document(self, wall_s: float, limiter: Any = None) -> dict[str, Any]:
        lat = sorted(self.latencies)
        latency: dict[str, Any] = {}
        if lat:
            latency = {
                "p50": round(_percentile(lat, 0.50), 4),
                "p90": round(_percentile(lat, 0.90), 4),
                "p99": round(_percentile(lat, 0.99), 4),
                "mean": round(sum(lat) / len(lat), 4),
                "max": round(lat[-1], 4),
            }
        doc: dict[str, Any] = {
            "requests": self.attempts,
            "succeeded": self.succeeded,
            "cached": self.cached,
            "retries": self.retries,
            "errors": dict(sorted(self.errors.items())),
            "latency_s": latency,
            "tokens": dict(self.tokens),
            "cached_tokens": dict(self.cached_tokens),
            "finish_reasons": dict(sorted(self.finish_reasons.items())),
            "wall_time_s": round(wall_s, 3),
            "requests_per_s": round(self.succeeded / wall_s, 2) if wall_s > 0 else None,
        }
        if any(self.reasoning.values()):
            doc["reasoning"] = dict(self.reasoning)
        if limiter is not None:
            doc["concurrency"] = {"max": limiter.maximum, "lowest": limiter.lowest,
                                  "final": limiter.current, "decreases": limiter.decreases}
        return doc


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    n = len(sorted_values)
    if n == 1:
        return sorted_values[0]
    pos = q * (n - 1)
    lo = int(pos)
    hi = min(lo + 1, n - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)
