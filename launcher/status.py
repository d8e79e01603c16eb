"""Job states from what is on disk (stage markers) and what the engine says (labelled
containers). Pure: the caller passes the container facts in.

States: pending | running | success | failed | killed. A job whose container is gone without
an exit marker is reported failed ("container gone"), never stuck "running".
"""

from __future__ import annotations

import os
from datetime import datetime

import attrs

from launcher import report


@attrs.frozen
class ContainerFact:
    status: str  # created | running | exited | dead | ...
    exit_code: int | None = None
    oom_killed: bool = False


@attrs.frozen
class JobStatus:
    job_id: str
    task: str
    state: str
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

    def as_dict(self) -> dict:
        return {"job_id": self.job_id, "task": self.task, "state": self.state,
                "exit_code": self.exit_code, "started": self.started, "ended": self.ended,
                "duration_s": None if self.duration_s is None else round(self.duration_s, 1),
                "metric": self.metric, "value": self.value, "note": self.note}


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read().strip()
    except OSError:
        return None


def _iso(stamp: str | None) -> str | None:
    if not stamp:
        return None
    return stamp.replace("Z", "+00:00")


def job_status(job_id: str, task: str, job_dir: str, container: ContainerFact | None,
               launcher_alive: bool) -> JobStatus:
    logs = os.path.join(job_dir, "logs")
    running = _iso(_read(os.path.join(logs, "stage.running")))
    exit_line = _read(os.path.join(logs, "stage.exit"))
    scores = report.read_scores(os.path.join(job_dir, "artifacts"))
    metric, value = (scores[0].metric, scores[0].value) if scores else (None, None)

    def make(state: str, code: int | None, ended: str | None = None, note: str = "") -> JobStatus:
        return JobStatus(job_id, task, state, code, running, ended, note, metric, value)

    killed = os.path.exists(os.path.join(logs, "stage.killed"))
    if exit_line:
        stamp, code, state, *extra = (exit_line.split() + ["", "", ""])[:4]
        state = state or ("success" if code == "0" else "failed")
        note = {"oom": "out of memory (OOM-killed)", "removed": "container removed while running",
                "killed": "container killed from outside (SIGKILL)"}
        return make(state, int(code) if code.lstrip("-").isdigit() else None, _iso(stamp),
                    note.get(extra[0], "") if extra else "")
    if killed and (container is None or container.status not in ("running", "created")):
        return make("killed", None)
    if container is not None:
        if container.status in ("running", "restarting", "paused"):
            return make("running", None)
        if container.status == "created":
            return make("pending", None)
        code = container.exit_code
        note = "out of memory (OOM-killed)" if container.oom_killed else "exited, not recorded"
        return make("success" if code == 0 and not container.oom_killed else "failed", code,
                    note=note)
    if running:
        return make("failed", None, note="container gone without an exit record")
    if launcher_alive:
        return make("pending", None)
    return make("pending", None, note="not started; the launcher is gone (use `launcher resume`)")


def invocation_state(states: list[str]) -> str:
    if any(s in ("running", "pending") for s in states):
        return "running" if "running" in states else "pending"
    if all(s == "success" for s in states):
        return "success"
    return "killed" if "killed" in states else "failed"
