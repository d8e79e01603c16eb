"""Compare two invocations task by task: each score present in both (with stderr and the
difference) and the paired item-by-item test (paired.py). Pure: fed with outcomes, no I/O
beyond reading the samples through them; rendering as text or a JSON-ready dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from launcher import report
from launcher.outcomes import TaskOutcome
from launcher.paired import ALPHA, Paired, pair


@attrs.frozen
class ScoreDiff:
    metric: str
    score: str
    base: float
    base_stderr: float | None
    candidate: float
    candidate_stderr: float | None

    @property
    def diff(self) -> float:
        return self.candidate - self.base


@attrs.frozen
class TaskComparison:
    task: str
    scores: tuple[ScoreDiff, ...]
    paired: Paired | None  # None when either run has no samples.jsonl

    @property
    def verdict(self) -> str:
        return str(self.paired.verdict) if self.paired else "no samples to pair"


@attrs.frozen
class Comparison:
    base_id: str
    candidate_id: str
    tasks: tuple[TaskComparison, ...]
    only_base: tuple[str, ...]
    only_candidate: tuple[str, ...]
    alpha: float = ALPHA


def compare(base_id: str, base: Mapping[str, TaskOutcome], candidate_id: str,
            candidate: Mapping[str, TaskOutcome], alpha: float = ALPHA) -> Comparison:
    tasks = []
    for name in [t for t in base if t in candidate]:
        b, c = base[name], candidate[name]
        theirs = {(s.metric, s.score): s for s in c.scores}
        diffs = tuple(ScoreDiff(s.metric, s.score, s.value, s.stderr, o.value, o.stderr)
                      for s in b.scores if (o := theirs.get((s.metric, s.score))))
        b_samples, c_samples = b.samples(), c.samples()
        paired = (pair(b_samples, c_samples, alpha)
                  if b_samples is not None and c_samples is not None else None)
        tasks.append(TaskComparison(name, diffs, paired))
    return Comparison(base_id, candidate_id, tuple(tasks),
                      tuple(t for t in base if t not in candidate),
                      tuple(t for t in candidate if t not in base), alpha)


def _num(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _signed(value: float) -> str:
    return f"{value:+.4f}"


def render_text(cmp: Comparison) -> str:
    lines = [f"base {cmp.base_id}  vs  candidate {cmp.candidate_id}", ""]
    rows = []
    for t in cmp.tasks:
        for s in t.scores:
            rows.append((t.task, f"{s.metric}/{s.score}",
                         f"{_num(s.base)} ± {_num(s.base_stderr)}",
                         f"{_num(s.candidate)} ± {_num(s.candidate_stderr)}", _signed(s.diff)))
    if rows:
        lines += [report.format_table(rows, ("task", "score", "base", "candidate", "diff")), ""]
    prow = []
    for t in cmp.tasks:
        p = t.paired
        prow.append((t.task, "-" if p is None else str(p.paired),
                     "-" if p is None else str(p.pass_to_fail),
                     "-" if p is None else str(p.fail_to_pass),
                     "-" if p is None else f"{p.p_value:.4g}", t.verdict))
    lines.append(report.format_table(prow, ("task", "paired", "pass→fail", "fail→pass",
                                            "p (McNemar)", f"verdict (alpha {cmp.alpha})")))
    for t in cmp.tasks:
        if t.paired and t.paired.flipped_to_fail:
            lines.append(f"{t.task}: now failing: {', '.join(t.paired.flipped_to_fail)}"
                         + (" ..." if t.paired.pass_to_fail > len(t.paired.flipped_to_fail)
                            else ""))
        if t.paired and t.paired.flipped_to_pass:
            lines.append(f"{t.task}: now passing: {', '.join(t.paired.flipped_to_pass)}"
                         + (" ..." if t.paired.fail_to_pass > len(t.paired.flipped_to_pass)
                            else ""))
    if cmp.only_base:
        lines.append(f"only in base (not compared): {', '.join(cmp.only_base)}")
    if cmp.only_candidate:
        lines.append(f"only in candidate (not compared): {', '.join(cmp.only_candidate)}")
    return "\n".join(lines)


def as_dict(cmp: Comparison) -> dict[str, Any]:
    return {
        "base": cmp.base_id, "candidate": cmp.candidate_id, "alpha": cmp.alpha,
        "tasks": [{
            "task": t.task, "verdict": t.verdict,
            "scores": [{"metric": s.metric, "score": s.score, "base": s.base,
                        "base_stderr": s.base_stderr, "candidate": s.candidate,
                        "candidate_stderr": s.candidate_stderr, "diff": s.diff}
                       for s in t.scores],
            "paired": t.paired.as_dict() if t.paired else None,
        } for t in cmp.tasks],
        "only_base": list(cmp.only_base), "only_candidate": list(cmp.only_candidate),
    }
