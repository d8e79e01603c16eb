"""What a finished invocation produced, per task: the scores of each job's ``results.yml``
and its per-sample correctness from ``samples.jsonl``. Read-only, no Docker; the files are
in a folder others may write, so nothing here follows a link or trusts a shape."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import attrs

from launcher import report, runs, safe_fs
from launcher.errors import ConfigError, LauncherError
from launcher.harness.results import SAMPLES_FILE
from launcher.record import job_folder
from launcher.runs import Run

SampleKey = tuple[str, int]  # (item id, response index within the item)


@attrs.frozen
class TaskOutcome:
    task: str
    job_id: str
    artifacts: str
    scores: tuple[report.Score, ...]

    @property
    def headline(self) -> report.Score | None:
        """The first score of the first metric (what `run` prints), None without results."""
        return self.scores[0] if self.scores else None

    def samples(self) -> dict[SampleKey, bool] | None:
        return read_samples(self.artifacts)


def model_id(run: Run) -> str | None:
    target = (run.record.config or {}).get("target") or {}
    endpoint = target.get("api_endpoint") if isinstance(target, dict) else None
    value = endpoint.get("model_id") if isinstance(endpoint, dict) else None
    return str(value) if value is not None else None


def job_params(run: Run, job_id: str) -> dict[str, Any]:
    """What a job ran: ``task``, ``model_id``, ``endpoint_url`` and ``params`` (its run
    config's ``config.params`` mapping, {} when none), for the exporters."""
    job = next(j for j in run.invocation().jobs if j.job_id == job_id)
    config = job.run_config if isinstance(job.run_config, dict) else {}
    target = config.get("target") or {}
    endpoint = target.get("api_endpoint") if isinstance(target, dict) else None
    endpoint = endpoint if isinstance(endpoint, dict) else {}
    section = config.get("config") or {}
    params = section.get("params") if isinstance(section, dict) else None
    return {"task": job.task,
            "model_id": str(endpoint.get("model_id") or model_id(run) or ""),
            "endpoint_url": str(endpoint.get("url") or ""),
            "params": dict(params) if isinstance(params, dict) else {}}


def finished_jobs(output_dir: str, idents: Sequence[str]
                  ) -> tuple[list[tuple[Run, TaskOutcome]], list[str]]:
    """The jobs with scores of these invocations (or jobs), all resolved before anything is
    exported, and the ids of those without; ConfigError naming them when none has any."""
    jobs: list[tuple[Run, TaskOutcome]] = []
    empty: list[str] = []
    for ident in idents:
        run, index = runs.find(output_dir, ident)
        for outcome in task_outcomes(run, index).values():
            if outcome.scores:
                jobs.append((run, outcome))
            else:
                empty.append(outcome.job_id)
    if not jobs:
        raise ConfigError(f"nothing to export: job(s) {', '.join(empty) or '-'} wrote no "
                          "results.yml (see `launcher status`); export finished runs")
    return jobs, empty


def task_outcomes(run: Run, index: int | None = None) -> dict[str, TaskOutcome]:
    """Every job of ``run`` (or only job ``index``), by task name; a task run twice in one
    invocation is named ``<task>.<index>`` from the second time on."""
    found: dict[str, TaskOutcome] = {}
    for job in run.invocation().jobs:
        if index is not None and job.job_id != f"{run.invocation_id}.{index}":
            continue
        name = job.task if job.task not in found else f"{job.task}.{job.job_id.rsplit('.')[-1]}"
        artifacts = job_folder(job).artifacts
        found[name] = TaskOutcome(name, job.job_id, artifacts,
                                  tuple(report.read_scores(artifacts)))
    return found


EXPORTED_ARTIFACTS = ("results.yml", SAMPLES_FILE)  # what the exports upload of artifacts/


def job_files(run: Run, outcome: TaskOutcome, artifacts: bool, logs: bool
              ) -> list[tuple[str, str]]:
    """(path, name in the export) of the files an export uploads for a job: its results and
    samples, and the files of its logs/ folder (``logs/<name>``); no links, no folders."""
    found: list[tuple[str, str]] = []
    if artifacts:
        for name in EXPORTED_ARTIFACTS:
            path = os.path.join(outcome.artifacts, name)
            if os.path.isfile(path) and not os.path.islink(path):
                found.append((path, name))
    folder = job_folder(next(j for j in run.invocation().jobs
                             if j.job_id == outcome.job_id)).logs
    if logs and os.path.isdir(folder):
        for entry in sorted(os.listdir(folder)):
            path = os.path.join(folder, entry)
            if os.path.isfile(path) and not os.path.islink(path):
                found.append((path, f"logs/{entry}"))
    return found


def read_samples(artifacts_dir: str) -> dict[SampleKey, bool] | None:
    """Pass/fail per response of ``samples.jsonl`` (``score`` > 0 passes), keyed by item id
    (the line number when a record has none) and response index; None when the file is
    missing or unreadable. Lines that are not such records are skipped."""
    path = os.path.join(artifacts_dir, SAMPLES_FILE)
    result: dict[SampleKey, bool] = {}
    try:
        with safe_fs.open_read(path) as fh:
            for number, raw in enumerate(fh):
                record = json_record(raw)
                if record is None:
                    continue
                score = record.get("score")
                if not isinstance(score, int | float) or isinstance(score, bool):
                    continue
                ident = record.get("id")
                sample = record.get("sample", 0)
                key = (f"#{number}" if ident is None else str(ident),
                       sample if isinstance(sample, int) else 0)
                result[key] = score > 0
    except (OSError, LauncherError):
        return None
    return result


def json_record(raw: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(raw)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None
