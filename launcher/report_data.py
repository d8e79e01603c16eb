"""What `launcher report` shows, read from the job folders of finished invocations: per job
its scores, request stats (``results.yml``) and samples (``samples.jsonl``, the first
``max_samples`` in full, all of them counted). Read-only, no Docker; the files are in a folder
others may write, so nothing here follows a link or trusts a shape (launcher/report_html.py
renders these records and escapes every text)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from launcher import outcomes, report, safe_fs
from launcher.errors import LauncherError
from launcher.harness.results import SAMPLES_FILE
from launcher.runs import Run

MAX_SAMPLES = 2000  # per job, embedded in the page (all are counted)
MAX_TEXT = 20_000  # characters of one prompt, reply or answer kept in the page
MAX_LINE = 16 * 1024 * 1024  # bytes of one samples.jsonl line read at all


@attrs.frozen
class Sample:
    item_id: str
    index: int  # response index within the item (0 unless a task asks for several)
    prompt: str
    reply: str
    extracted: str | None  # the answer the task extracted, when it records one
    target: str | None
    note: str | None  # the task's reason (e.g. humaneval's test outcome), when it gives one
    correct: bool | None  # score > 0; None when the record has no numeric score


@attrs.frozen
class RequestSummary:
    """``request_stats`` of results.yml (launcher/harness/stats.py), as the page shows it."""

    requests: int | None
    succeeded: int | None
    cached: int | None
    retries: int | None
    errors: tuple[tuple[str, int], ...]
    latency: tuple[tuple[str, float], ...]  # (p50 | p90 | p99 | mean | max, seconds)
    prompt_tokens: int | None
    completion_tokens: int | None
    wall_time_s: float | None
    requests_per_s: float | None

    @property
    def error_count(self) -> int:
        return sum(n for _, n in self.errors)


@attrs.frozen
class JobReport:
    task: str  # the task's name in its invocation (``<task>.<index>`` for a repeat)
    job_id: str
    scores: tuple[report.Score, ...]
    requests: RequestSummary | None
    samples: tuple[Sample, ...]  # the first ``max_samples`` of samples.jsonl
    samples_total: int  # every scored record of the file
    failures_total: int
    has_samples: bool  # samples.jsonl was there and readable

    @property
    def headline(self) -> report.Score | None:
        return self.scores[0] if self.scores else None

    @property
    def truncated(self) -> bool:
        return self.samples_total > len(self.samples)


@attrs.frozen
class RunReport:
    invocation_id: str
    created: str
    model_id: str | None
    url: str | None
    jobs: tuple[JobReport, ...]


@attrs.frozen
class ReportData:
    runs: tuple[RunReport, ...]
    generated: str  # UTC, ISO 8601
    max_samples: int
    version: str


def gather(selected: Sequence[tuple[Run, int | None]], max_samples: int, generated: str,
           version: str) -> ReportData:
    """One RunReport per invocation, in the order first named; a job id (``index``) narrows
    an invocation to the jobs named, and naming it twice (or whole and by job) adds nothing."""
    order: list[str] = []
    found: dict[str, tuple[Run, set[int] | None]] = {}
    for run, index in selected:
        if run.invocation_id not in found:
            order.append(run.invocation_id)
            found[run.invocation_id] = (run, set())
        known, indexes = found[run.invocation_id]
        if index is None or indexes is None:
            found[run.invocation_id] = (known, None)
        else:
            indexes.add(index)
    reports = []
    for inv in order:
        run, indexes = found[inv]
        jobs = [job_report(outcome, max_samples)
                for outcome in outcomes.task_outcomes(run).values()
                if indexes is None or int(outcome.job_id.rsplit(".", 1)[1]) in indexes]
        reports.append(RunReport(inv, run.record.created, outcomes.model_id(run), _url(run),
                                 tuple(jobs)))
    return ReportData(tuple(reports), generated, max_samples, version)


def _url(run: Run) -> str | None:
    target = (run.record.config or {}).get("target") or {}
    endpoint = target.get("api_endpoint") if isinstance(target, dict) else None
    value = endpoint.get("url") if isinstance(endpoint, dict) else None
    return str(value) if value is not None else None


def job_report(outcome: outcomes.TaskOutcome, max_samples: int) -> JobReport:
    stats = report.read_request_stats(outcome.artifacts)
    # results.yml names the task as the harness ran it (``gsm8k``, not ``gsm8k.2``)
    base = outcome.scores[0].task if outcome.scores else outcome.task.split(".")[0]
    body = stats.get(base) or next(iter(stats.values()), None)
    samples, total, failures, present = read_samples(outcome.artifacts, max_samples)
    return JobReport(outcome.task, outcome.job_id, outcome.scores,
                     request_summary(body) if body else None, tuple(samples), total, failures,
                     present)


def request_summary(doc: Mapping[str, Any]) -> RequestSummary:
    errors = _mapping(doc.get("errors"))
    latency = _mapping(doc.get("latency_s"))
    tokens = _mapping(doc.get("tokens"))
    return RequestSummary(
        _int(doc.get("requests")), _int(doc.get("succeeded")), _int(doc.get("cached")),
        _int(doc.get("retries")),
        tuple((str(k), n) for k, v in errors.items() if (n := _int(v)) is not None),
        tuple((k, float(latency[k])) for k in ("p50", "p90", "p99", "mean", "max")
              if _number(latency.get(k))),
        _int(tokens.get("prompt_tokens")), _int(tokens.get("completion_tokens")),
        _float(doc.get("wall_time_s")), _float(doc.get("requests_per_s")))


def read_samples(artifacts_dir: str, keep: int) -> tuple[list[Sample], int, int, bool]:
    """The first ``keep`` scored records of samples.jsonl as Samples, how many scored records
    the file holds and how many of them failed, and whether the file could be read. Lines
    that are not such records are skipped."""
    path = os.path.join(artifacts_dir, SAMPLES_FILE)
    kept: list[Sample] = []
    total = failures = 0
    try:
        with safe_fs.open_read(path) as fh:
            for number, raw in enumerate(iter(lambda: fh.readline(MAX_LINE), b"")):
                record = outcomes.json_record(raw)
                if record is None or not _number(record.get("score")):
                    continue
                total += 1
                correct = record["score"] > 0
                failures += not correct
                if len(kept) < keep:
                    kept.append(sample(record, number))
    except (OSError, LauncherError):
        return [], 0, 0, False
    return kept, total, failures, True


def sample(record: Mapping[str, Any], number: int) -> Sample:
    ident = record.get("id")
    index = record.get("sample", 0)
    score: Any = record.get("score")
    reason = record.get("reason")
    return Sample(
        f"#{number}" if ident is None else _clip(str(ident), 200),
        index if isinstance(index, int) and not isinstance(index, bool) else 0,
        _clip(prompt_text(record.get("prompt"))),
        _clip(_text(record.get("response"))),
        None if record.get("extracted") is None else _clip(_text(record["extracted"])),
        None if record.get("target") is None else _clip(_text(record["target"])),
        None if reason is None else _clip(_text(reason), 2000),
        bool(score > 0) if isinstance(score, int | float) and not isinstance(score, bool)
        else None)


def prompt_text(prompt: Any) -> str:
    """Chat messages as ``role: content`` paragraphs; a completion prompt as it is."""
    if isinstance(prompt, list) and all(isinstance(m, dict) for m in prompt):
        return "\n\n".join(f"{m.get('role', '?')}: {_content(m.get('content'))}"
                           for m in prompt)
    return _text(prompt)


def _content(content: Any) -> str:
    if isinstance(content, list):  # content parts: their text, anything else as JSON
        return "\n".join(p["text"] if isinstance(p, dict) and isinstance(p.get("text"), str)
                         else _text(p) for p in content)
    return _text(content)


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _clip(text: str, limit: int = MAX_TEXT) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… ({len(text) - limit} more characters not shown)"


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _int(value: Any) -> int | None:
    return int(value) if _number(value) else None


def _float(value: Any) -> float | None:
    return float(value) if _number(value) else None
