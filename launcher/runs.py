"""Find invocations in an output folder: by full id or unique prefix, or all of them.

State lives with the results (``<output_dir>/<timestamp>-<id>/invocation.json``), so a new
launcher container, or the plain CLI on the host, can answer for a run started elsewhere.
"""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta

import attrs

from launcher import record as record_mod
from launcher.errors import ConfigError
from launcher.plan import Invocation
from launcher.record import RECORD, InvocationRecord, JobRecord

DIR_RE = re.compile(r"^(\d{8}_\d{6})-([0-9a-f]{16})$")


@attrs.frozen
class Run:
    """A recorded invocation and the folder it was found in (as this launcher sees it)."""

    invocation_id: str
    dir: str
    record: InvocationRecord

    @property
    def jobs(self) -> list[JobRecord]:
        return list(self.record.jobs)

    def invocation(self) -> Invocation:
        return self.record.invocation(self.dir)


def _folders(output_dir: str) -> list[tuple[str, str]]:
    """(invocation id, folder) for every invocation folder, newest first."""
    try:
        names = os.listdir(output_dir)
    except FileNotFoundError:
        raise ConfigError(f"output folder {output_dir} does not exist: pass --output-dir (or "
                          "mount it with -v ... in the launcher container)") from None
    found = [(m.group(2), os.path.join(output_dir, name), m.group(1))
             for name in names if (m := DIR_RE.match(name))]
    found.sort(key=lambda item: (item[2], item[0]), reverse=True)
    return [(inv, folder) for inv, folder, _ in found]


def load(folder: str) -> Run | None:
    record = record_mod.load(folder)
    return None if record is None else Run(record.invocation_id, folder, record)


def all_runs(output_dir: str) -> list[Run]:
    return [run for _, folder in _folders(output_dir) if (run := load(folder)) is not None]


def find(output_dir: str, ident: str) -> tuple[Run, int | None]:
    """An invocation by id or unique id prefix; ``<id>.<index>`` also names one job."""
    inv_part, dot, job_part = ident.partition(".")
    if not re.fullmatch(r"[0-9a-f]{1,16}", inv_part) or (dot and not job_part.isdigit()):
        raise ConfigError(f"'{ident}' is not an invocation id (16 hex digits, or a prefix) or "
                          "a job id (<invocation id>.<index>)")
    matches = [(inv, folder) for inv, folder in _folders(output_dir) if inv.startswith(inv_part)]
    if not matches:
        raise ConfigError(f"no invocation '{inv_part}' in {output_dir} (list them with "
                          "`launcher ls runs`)")
    if len({inv for inv, _ in matches}) > 1:
        choices = ", ".join(inv for inv, _ in matches[:5])
        raise ConfigError(f"'{inv_part}' is ambiguous in {output_dir}: {choices}; give more "
                          "digits")
    run = load(matches[0][1])
    if run is None:
        raise ConfigError(f"{matches[0][1]}/{RECORD} is missing or unreadable")
    index = int(job_part) if dot else None
    if index is not None and not any(j.job_id == f"{run.invocation_id}.{index}"
                                     for j in run.jobs):
        raise ConfigError(f"invocation {run.invocation_id} has no job {index} (jobs: "
                          f"{', '.join(j.job_id for j in run.jobs)})")
    return run, index


_SINCE_AGO = re.compile(r"(\d+)([dh])")


def since(text: str, now: datetime | None = None) -> datetime:
    """``ls runs --since``, as the reference reads it: ``Nd``/``Nh`` into the past, or an ISO
    date / date-time (``2026-12-01``, ``2026-12-01T12:00:00``; local time unless it has an
    offset). ConfigError naming the flag otherwise."""
    now = now or datetime.now().astimezone()
    value = text.strip().lower()
    if m := _SINCE_AGO.fullmatch(value):
        amount = int(m.group(1))
        return now - (timedelta(days=amount) if m.group(2) == "d" else timedelta(hours=amount))
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ConfigError(f"--since {text!r}: expected Nd or Nh (e.g. 2d, 3h) or an ISO date "
                          "(2026-12-01, 2026-12-01T12:00:00)") from None
    return moment if moment.tzinfo else moment.astimezone()


def started_since(run: Run, moment: datetime) -> bool:
    """Whether ``run`` started at or after ``moment`` (a run without a start time: no)."""
    try:
        created = datetime.fromisoformat(run.record.created)
    except (TypeError, ValueError):
        return False
    return (created if created.tzinfo else created.astimezone()) >= moment
