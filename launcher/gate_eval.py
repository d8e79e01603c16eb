"""Apply a gate policy to a candidate run (and an optional baseline): one check per task and
threshold, each passed, failed or inconclusive; the verdict GO / NO-GO / INCONCLUSIVE.

Critical checks decide: any failed → NO-GO; else any inconclusive (a task the policy names is
missing from the run or has no score, max_drop without a baseline score) → INCONCLUSIVE; else
GO. Advisory checks are reported and never change the verdict. Pure: no I/O."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any

import attrs

from launcher.errors import EXIT_INCONCLUSIVE, EXIT_NO_GO
from launcher.gate_policy import Policy, Severity
from launcher.outcomes import TaskOutcome


class Status(enum.StrEnum):
    PASS = "pass"
    FAIL = "fail"
    INCONCLUSIVE = "inconclusive"


class Verdict(enum.StrEnum):
    GO = "GO"
    NO_GO = "NO-GO"
    INCONCLUSIVE = "INCONCLUSIVE"

    @property
    def exit_code(self) -> int:
        return {Verdict.GO: 0, Verdict.NO_GO: EXIT_NO_GO,
                Verdict.INCONCLUSIVE: EXIT_INCONCLUSIVE}[self]


@attrs.frozen
class Check:
    task: str
    threshold: str  # min_score | max_drop
    limit: float
    severity: Severity
    status: Status
    score: str | None = None  # metric/score name of the headline
    value: float | None = None  # candidate headline
    baseline: float | None = None  # baseline headline (max_drop)
    reason: str = ""

    @property
    def name(self) -> str:
        op = ">=" if self.threshold == "min_score" else "<="
        what = "score" if self.threshold == "min_score" else "drop"
        return f"{self.threshold}: {what} {op} {self.limit:g}"

    def as_dict(self) -> dict[str, Any]:
        return {"task": self.task, "threshold": self.threshold, "limit": self.limit,
                "severity": str(self.severity), "status": str(self.status),
                "score": self.score, "value": self.value, "baseline": self.baseline,
                "reason": self.reason}


@attrs.frozen
class GateResult:
    candidate_id: str
    baseline_id: str | None
    checks: tuple[Check, ...]

    @property
    def verdict(self) -> Verdict:
        critical = [c for c in self.checks if c.severity == Severity.CRITICAL]
        if any(c.status == Status.FAIL for c in critical):
            return Verdict.NO_GO
        if any(c.status == Status.INCONCLUSIVE for c in critical):
            return Verdict.INCONCLUSIVE
        return Verdict.GO

    def as_dict(self) -> dict[str, Any]:
        return {"verdict": str(self.verdict), "exit_code": self.verdict.exit_code,
                "candidate": self.candidate_id, "baseline": self.baseline_id,
                "checks": [c.as_dict() for c in self.checks]}


def evaluate(policy: Policy, candidate_id: str, candidate: Mapping[str, TaskOutcome],
             baseline_id: str | None = None,
             baseline: Mapping[str, TaskOutcome] | None = None) -> GateResult:
    names = list(candidate) if not policy.default.empty else []
    names += [t for t in policy.tasks if t not in names]
    checks: list[Check] = []
    for task in names:
        limits = policy.for_task(task)
        severity = limits.severity or Severity.CRITICAL
        outcome = candidate.get(task)
        head = outcome.headline if outcome else None
        missing = ("not in the candidate run" if outcome is None
                   else "the candidate job wrote no scores (results.yml)" if head is None
                   else "")
        score_name = f"{head.metric}/{head.score}" if head else None
        value = head.value if head else None
        if limits.min_score is not None:
            if head is None:
                status, reason = Status.INCONCLUSIVE, missing
            elif head.value >= limits.min_score:
                status, reason = Status.PASS, ""
            else:
                status, reason = Status.FAIL, (
                    f"{score_name} {head.value:.4f} < {limits.min_score:g}")
            checks.append(Check(task, "min_score", limits.min_score, severity, status,
                                score_name, value, None, reason))
        if limits.max_drop is not None:
            base_out = baseline.get(task) if baseline is not None else None
            base_head = base_out.headline if base_out else None
            base_value = base_head.value if base_head else None
            if head is None:
                status, reason = Status.INCONCLUSIVE, missing
            elif baseline is None:
                status, reason = Status.INCONCLUSIVE, "no baseline: pass --baseline"
            elif base_head is None:
                status, reason = Status.INCONCLUSIVE, (
                    "not in the baseline run" if base_out is None
                    else "the baseline job wrote no scores (results.yml)")
            elif (base_head.metric, base_head.score) != (head.metric, head.score):
                status, reason = Status.INCONCLUSIVE, (
                    f"baseline headline {base_head.metric}/{base_head.score} differs")
            elif base_head.value - head.value <= limits.max_drop + 1e-12:
                status, reason = Status.PASS, ""
            else:
                status, reason = Status.FAIL, (
                    f"{score_name} dropped {base_head.value - head.value:.4f} "
                    f"({base_head.value:.4f} -> {head.value:.4f}) > {limits.max_drop:g}")
            checks.append(Check(task, "max_drop", limits.max_drop, severity, status,
                                score_name, value, base_value, reason))
    return GateResult(candidate_id, baseline_id, tuple(checks))
