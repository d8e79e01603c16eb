"""Aggregate per-item scores into the numbers results.yml reports: value, stderr, count.

* ``mean_score``: the mean of per-item values with its standard error ``s / sqrt(n)``, where
  ``s`` is the sample standard deviation (n - 1 in the denominator). For 0/1 values this is
  ``sqrt(p (1 - p) / (n - 1))``. ``count`` is the number of items.
* ``pass_at_k``: the unbiased estimator of Chen et al. (2021), ``1 - C(n-c, k) / C(n, k)``, for
  one problem with ``n`` samples of which ``c`` are correct; the task's pass@k is its mean over
  the problems (what OpenAI's ``human-eval`` reports), with the stderr of that mean.
* ``macro_score``: the unweighted mean of several scores (e.g. MMLU's subjects), with the stderr
  of that mean assuming independent parts: ``sqrt(sum(stderr_i^2)) / m``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs


@attrs.frozen
class Score:
    value: float
    stderr: float
    count: int  # the number of items (questions, problems) the value is computed from

    def as_dict(self) -> dict[str, Any]:
        """The reference shape: ``{value, stats: {count, stderr}}``."""
        return {"value": self.value, "stats": {"count": self.count, "stderr": self.stderr}}


@attrs.frozen
class Summary:
    """What a task reports: ``metrics[metric][score]``, the first score of the first metric is
    the headline; optional ``groups`` (e.g. MMLU's subjects) go to ``results.groups``."""

    metrics: Mapping[str, Mapping[str, Score]]
    groups: Mapping[str, Summary] = attrs.field(factory=dict)

    @property
    def headline(self) -> tuple[str, str, Score]:
        metric, scores = next(iter(self.metrics.items()))
        name, score = next(iter(scores.items()))
        return metric, name, score


def mean_score(values: Sequence[float]) -> Score:
    n = len(values)
    if n == 0:
        return Score(0.0, 0.0, 0)
    mean = math.fsum(values) / n
    if n < 2:
        return Score(mean, 0.0, n)
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return Score(mean, math.sqrt(variance / n), n)


def macro_score(parts: Iterable[Score]) -> Score:
    parts = [p for p in parts if p.count]
    if not parts:
        return Score(0.0, 0.0, 0)
    m = len(parts)
    value = math.fsum(p.value for p in parts) / m
    stderr = math.sqrt(math.fsum(p.stderr**2 for p in parts)) / m
    return Score(value, stderr, sum(p.count for p in parts))


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of ``k`` samples drawn from ``n`` (``c`` correct) passes."""
    if not (0 <= c <= n) or not (1 <= k <= n):
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n} c={c} k={k}")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_at_k_score(counts: Sequence[tuple[int, int]], k: int) -> Score:
    """The mean pass@k over problems given ``(n, c)`` per problem."""
    return mean_score([pass_at_k(n, c, k) for n, c in counts])
