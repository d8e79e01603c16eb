"""The gate's policy: thresholds per task, from a YAML file and/or the command line.

::

    default:                 # for every task of the candidate run
      min_score: 0.5         # headline score must be >= this
      max_drop: 0.05         # baseline headline - candidate headline must be <= this
      severity: critical     # critical (decides the verdict) or advisory (reported only)
    tasks:
      gsm8k: {min_score: 0.7}
      humaneval: {max_drop: 0.02, severity: advisory}

A task's block falls back to ``default`` key by key; ``--min-score`` / ``--max-drop`` on the
command line replace the default block's values. A task named under ``tasks`` must be in
the candidate run (else the gate is inconclusive).
"""

from __future__ import annotations

import enum
from typing import Any

import attrs

from launcher.errors import ConfigError

KEYS = ("min_score", "max_drop", "severity")


class Severity(enum.StrEnum):
    CRITICAL = "critical"
    ADVISORY = "advisory"


@attrs.frozen
class Thresholds:
    min_score: float | None = None
    max_drop: float | None = None
    severity: Severity | None = None

    def over(self, fallback: Thresholds) -> Thresholds:
        """These values, the fallback's where these have none."""
        return Thresholds(
            self.min_score if self.min_score is not None else fallback.min_score,
            self.max_drop if self.max_drop is not None else fallback.max_drop,
            self.severity or fallback.severity)

    @property
    def empty(self) -> bool:
        return self.min_score is None and self.max_drop is None


@attrs.frozen
class Policy:
    default: Thresholds = Thresholds()
    tasks: dict[str, Thresholds] = attrs.field(factory=dict)

    def for_task(self, task: str) -> Thresholds:
        return self.tasks.get(task, Thresholds()).over(self.default)

    @property
    def empty(self) -> bool:
        return self.default.empty and all(t.empty for t in self.tasks.values())


def parse(data: Any, source: str) -> Policy:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("a gate policy is a mapping with 'default' and/or 'tasks'",
                          source=source)
    unknown = sorted(str(k) for k in data if k not in ("default", "tasks"))
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}: a policy has 'default' and "
                          "'tasks' (task name -> thresholds)", source=source)
    default = _thresholds(data.get("default"), source, "default")
    tasks_data = data.get("tasks") or {}
    if not isinstance(tasks_data, dict):
        raise ConfigError("'tasks' maps task names to {min_score, max_drop, severity}",
                          source=source, key="tasks")
    tasks = {str(name): _thresholds(body, source, f"tasks.{name}")
             for name, body in tasks_data.items()}
    return Policy(default, tasks)


def _thresholds(body: Any, source: str, key: str) -> Thresholds:
    if body is None:
        return Thresholds()
    if not isinstance(body, dict):
        raise ConfigError(f"expected a mapping of {', '.join(KEYS)}", source=source, key=key)
    unknown = sorted(str(k) for k in body if k not in KEYS)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(KEYS)}",
                          source=source, key=key)
    values = {name: _fraction(body.get(name), source, f"{key}.{name}")
              for name in ("min_score", "max_drop")}
    severity = body.get("severity")
    if severity is not None and severity not in {s.value for s in Severity}:
        raise ConfigError(f"severity '{severity}' is not critical or advisory", source=source,
                          key=f"{key}.severity")
    return Thresholds(values["min_score"], values["max_drop"],
                      Severity(severity) if severity is not None else None)


def _fraction(value: Any, source: str, key: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"expected a number, got {value!r}", source=source, key=key)
    if not 0 <= value <= 1:
        raise ConfigError(f"{value} is not between 0 and 1 (scores are fractions)",
                          source=source, key=key)
    return float(value)


def with_flags(policy: Policy, min_score: float | None, max_drop: float | None) -> Policy:
    """The command line's --min-score / --max-drop replace the default block's values."""
    for name, value in (("--min-score", min_score), ("--max-drop", max_drop)):
        if value is not None and not 0 <= value <= 1:
            raise ConfigError(f"{name} {value} is not between 0 and 1 (scores are fractions)")
    flags = Thresholds(min_score, max_drop)
    return Policy(flags.over(policy.default), policy.tasks)
