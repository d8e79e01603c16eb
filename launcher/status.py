"""Job states from what is on disk (stage markers) and what the engine says (labelled
containers). Pure: the caller passes the container facts in.

A job whose container is gone without an exit marker is reported failed ("container gone"),
never stuck "running".
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import attrs

from launcher import report
from launcher.record import ExitNote, JobFolder, JobState, Marker

GONE = "container gone without an exit record"
NOTES = {ExitNote.OOM: "out of memory (OOM-killed)",
         ExitNote.REMOVED: "container removed while running",
         ExitNote.KILLED: "container killed from outside (SIGKILL)"}


@attrs.frozen
class ContainerFact:
    status: str  # created | running | exited | dead | ...
    exit_code: int | None = None
    oom_killed: bool = False


@attrs.frozen
class JobStatus:
    job_id: str
    task: str
    state: JobState
    exit_code: int | None
    started: str | None
    ended: str | None
    note: str = ""
    metric: str | None = None
    value: float | None = None

    @property
    def duration_s(self) -> float | None:
        if not self.started:
            return None
        end = datetime.fromisoformat(self.ended) if self.ended else datetime.now(
            datetime.fromisoformat(self.started).tzinfo)
        return (end - datetime.fromisoformat(self.started)).total_seconds()

    def as_dict(self) -> dict[str, Any]:
        return {"job_id": self.job_id, "task": self.task, "state": self.state.value,
                "exit_code": self.exit_code, "started": self.started, "ended": self.ended,
                "duration_s": None if self.duration_s is None else round(self.duration_s, 1),
                "metric": self.metric, "value": self.value, "note": self.note}


def _iso(stamp: str | None) -> str | None:
    if not stamp:
        return None
    return stamp.replace("Z", "+00:00")


def job_status(job_id: str, task: str, folder: JobFolder, container: ContainerFact | None,
               launcher_alive: bool) -> JobStatus:
    running = _iso(folder.read(Marker.RUNNING))
    exit_mark = folder.read_exit()
    scores = report.read_scores(folder.artifacts)
    metric, value = (scores[0].metric, scores[0].value) if scores else (None, None)

    def make(state: JobState, code: int | None, ended: str | None = None,
             note: str = "") -> JobStatus:
        return JobStatus(job_id, task, state, code, running, ended, note, metric, value)

    if exit_mark is not None:
        return make(exit_mark.state, exit_mark.code, _iso(exit_mark.stamp),
                    NOTES.get(exit_mark.note, ""))
    if folder.has(Marker.KILLED) and (container is None
                                      or container.status not in ("running", "created")):
        return make(JobState.KILLED, None)
    if container is not None:
        if container.status in ("running", "restarting", "paused"):
            return make(JobState.RUNNING, None)
        if container.status == "created":
            return make(JobState.PENDING, None)
        code = container.exit_code
        note = NOTES[ExitNote.OOM] if container.oom_killed else "exited, not recorded"
        ok = code == 0 and not container.oom_killed
        return make(JobState.SUCCESS if ok else JobState.FAILED, code, note=note)
    if running:
        return make(JobState.FAILED, None, note=GONE)
    if launcher_alive:
        return make(JobState.PENDING, None)
    return make(JobState.PENDING, None,
                note="not started; the launcher is gone (use `launcher resume`)")


def invocation_state(states: list[JobState]) -> JobState:
    if any(s.active for s in states):
        return JobState.RUNNING if JobState.RUNNING in states else JobState.PENDING
    if all(s == JobState.SUCCESS for s in states):
        return JobState.SUCCESS
    return JobState.KILLED if JobState.KILLED in states else JobState.FAILED
