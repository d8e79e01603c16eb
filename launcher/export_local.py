"""Export to local files: one row per invocation / job / task / metric / score, as JSON (a
list of objects) or CSV, upserted by job id — exporting a job again replaces its rows, so
exporting twice makes no duplicates. No Docker."""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterable, Sequence
from typing import Any

from launcher import outcomes, safe_fs
from launcher.errors import ConfigError
from launcher.record import job_folder
from launcher.runs import Run

COLUMNS = ("invocation_id", "job_id", "task", "metric", "score", "value", "stderr", "count",
           "model_id", "timestamp")
FORMATS = ("json", "csv")
MAX_BYTES = 256 * 1024 * 1024


def rows(run: Run, index: int | None = None) -> tuple[list[dict[str, Any]], list[str]]:
    """The rows of ``run`` (or of its job ``index``) and the ids of jobs with no scores."""
    model = outcomes.model_id(run)
    stamps = {job.job_id: job_folder(job).read_exit() for job in run.invocation().jobs}
    found: list[dict[str, Any]] = []
    empty: list[str] = []
    for name, outcome in outcomes.task_outcomes(run, index).items():
        if not outcome.scores:
            empty.append(outcome.job_id)
        mark = stamps.get(outcome.job_id)
        for s in outcome.scores:
            found.append({"invocation_id": run.invocation_id, "job_id": outcome.job_id,
                          "task": name, "metric": s.metric, "score": s.score,
                          "value": s.value, "stderr": s.stderr, "count": s.count,
                          "model_id": model,
                          "timestamp": mark.stamp if mark else run.record.created})
    return found, empty


def upsert(existing: Sequence[dict[str, Any]], new: Sequence[dict[str, Any]],
           job_ids: Iterable[str]) -> tuple[list[dict[str, Any]], int]:
    """``existing`` without the rows of ``job_ids``, then ``new``; and how many were dropped."""
    replaced = set(job_ids)
    kept = [r for r in existing if str(r.get("job_id")) not in replaced]
    return kept + list(new), len(existing) - len(kept)


def read(path: str, fmt: str) -> list[dict[str, Any]]:
    """The rows of an earlier export at ``path`` ([] when there is none)."""
    if not os.path.exists(path):
        return []
    try:
        with safe_fs.open_read(path) as fh:
            text = fh.read(MAX_BYTES).decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the earlier export {path}: {e}; move it away or "
                          "choose another export.local.output_dir") from None
    if not text.strip():
        return []
    if fmt == "json":
        try:
            data = json.loads(text)
        except ValueError:
            data = None
        if not isinstance(data, list) or not all(isinstance(r, dict) for r in data):
            raise ConfigError(f"{path} is not a JSON export of `launcher export` (a list of "
                              "rows): move it away or choose another export.local.output_dir")
        return data
    reader = csv.DictReader(io.StringIO(text))
    if tuple(reader.fieldnames or ()) != COLUMNS:
        raise ConfigError(f"{path} is not a CSV export of `launcher export` (columns "
                          f"{','.join(COLUMNS)}): move it away or choose another "
                          "export.local.output_dir")
    return [dict(r) for r in reader]


def render(data: Sequence[dict[str, Any]], fmt: str) -> str:
    if fmt == "json":
        return json.dumps(list(data), indent=2) + "\n"
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n",
                            extrasaction="ignore")
    writer.writeheader()
    for row in data:
        writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in COLUMNS})
    return out.getvalue()


def write(path: str, data: Sequence[dict[str, Any]], fmt: str) -> None:
    safe_fs.write_atomic(path, render(data, fmt))
