"""The invocation folder: its typed record (``invocation.json``), the job states and the
stage-marker protocol. This module is the only one that knows these names and shapes.

The record holds everything a NEW launcher (another container, or the plain CLI on the host)
needs to report on, stop, supervise or resume a run: the plan (typed, via cattrs), each job's
resolved ``ContainerSpec`` (host paths, labels, user), image ids, who launched it, start and
end. Never a secret value: env vars are recorded by name, literal config values redacted.

Markers, in ``<job>/logs/``: ``stage.pre-start`` and ``stage.running`` hold a UTC time;
``stage.exit`` holds ``<time> <exit code> [<state> [<note>]]``; ``stage.killed`` (written by
``launcher kill`` before it removes containers) tells whoever follows the container that the
end was a kill. ``run.sh`` writes the same markers (see scripts.py).
"""

from __future__ import annotations

import contextlib
import enum
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import attrs
import cattrs

from launcher import __version__, safe_fs, store
from launcher.errors import LauncherError
from launcher.hostpaths import HostSource, PathTranslator
from launcher.plan import Invocation, Job, Server
from launcher.spec import ContainerSpec, for_job, server_spec

RECORD = "invocation.json"
STDOUT_LOG = "stdout.log"
SERVER_LOG = "server.log"  # the model server's output, in the invocation folder
_conv = cattrs.Converter()


class JobState(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    KILLED = "killed"

    @property
    def active(self) -> bool:
        return self in (JobState.PENDING, JobState.RUNNING)


class Marker(enum.StrEnum):
    PRE_START = "stage.pre-start"
    RUNNING = "stage.running"
    EXIT = "stage.exit"
    KILLED = "stage.killed"


class ExitNote(enum.StrEnum):
    """Why a failed job's container ended, beyond its exit code."""

    NONE = ""
    OOM = "oom"
    REMOVED = "removed"
    KILLED = "killed"  # SIGKILLed from outside


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def now_z() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@attrs.frozen
class ExitMark:
    stamp: str
    code: int | None
    state: JobState
    note: ExitNote = ExitNote.NONE

    def line(self) -> str:
        note = f" {self.note}" if self.note and self.state == JobState.FAILED else ""
        return f"{self.stamp} {self.code} {self.state}{note}"

    @classmethod
    def parse(cls, line: str) -> ExitMark:
        stamp, code, state, note = (line.split() + ["", "", "", ""])[:4]
        number = int(code) if code.lstrip("-").isdigit() else None
        known = {s.value for s in JobState}
        job_state = JobState(state) if state in known else (
            JobState.SUCCESS if code == "0" else JobState.FAILED)
        return cls(stamp, number, job_state,
                   ExitNote(note) if note in {n.value for n in ExitNote} else ExitNote.NONE)


@attrs.frozen
class JobFolder:
    """``<invocation>/<task>.<index>/``: ``artifacts/`` (the container's /results), ``logs/``
    (stdout.log and the stage markers), ``run.sh``."""

    path: str

    @property
    def artifacts(self) -> str:
        return os.path.join(self.path, "artifacts")

    @property
    def logs(self) -> str:
        return os.path.join(self.path, "logs")

    @property
    def stdout_log(self) -> str:
        return os.path.join(self.logs, STDOUT_LOG)

    def marker(self, marker: Marker) -> str:
        return os.path.join(self.logs, marker.value)

    def has(self, marker: Marker) -> bool:
        return os.path.exists(self.marker(marker))

    def read(self, marker: Marker) -> str | None:
        try:  # a link or FIFO planted there reads as no marker (see safe_fs.open_read)
            with safe_fs.open_read(self.marker(marker)) as fh:
                return fh.read(4096).decode("utf-8", "replace").strip()
        except (OSError, LauncherError):
            return None

    def mark(self, marker: Marker, owner: store.Owner, text: str | None = None) -> None:
        store.write_atomic(self.marker(marker), (text or now_z()) + "\n", owner)

    def clear(self, *markers: Marker) -> None:
        for marker in markers:
            safe_fs.unlink(self.marker(marker))

    def read_exit(self) -> ExitMark | None:
        line = self.read(Marker.EXIT)
        return ExitMark.parse(line) if line else None

    def write_exit(self, mark: ExitMark, owner: store.Owner) -> None:
        self.mark(Marker.EXIT, owner, mark.line())


def job_folder(job: Job) -> JobFolder:
    return JobFolder(job.job_dir)


# ---------------------------------------------------------------------------- the record


@attrs.frozen
class LauncherInfo:
    container_id: str | None
    host: str
    pid: int


@attrs.frozen
class Execution:
    mode: str = "sequential"
    max_parallel: int = 1
    detached: bool = False

    @property
    def workers(self) -> int:
        return max(1, self.max_parallel) if self.mode == "parallel" else 1


@attrs.frozen
class JobRecord:
    job_id: str
    task: str
    image: str
    image_id: str | None
    dir: str  # the job folder's name inside the invocation folder
    container_name: str
    env_names: list[str]
    host_dir: HostSource  # the job folder as the host engine sees it
    plan: Job  # launcher-side view (paths as the launcher that planned it saw them)
    container: ContainerSpec  # what the backend runs and run.sh renders


@attrs.frozen
class ServerRecord:
    """The model server of a deployment: its plan and the spec the backend runs."""

    plan: Server
    container: ContainerSpec
    env_names: list[str]


@attrs.frozen
class InvocationRecord:
    invocation_id: str
    created: str
    ended: str | None
    launcher_version: str
    launcher: LauncherInfo
    output_dir: str
    dir: str
    host_dir: str
    host: HostSource  # the invocation folder as the host engine sees it
    execution: Execution
    config: dict[str, Any]
    images: dict[str, str]
    jobs: list[JobRecord]
    # The config's user_provided_metadata (the reference's key): for whoever reads the record.
    user_provided_metadata: dict[str, Any] = attrs.field(factory=dict)
    server: ServerRecord | None = None

    def invocation(self, folder: str | None = None) -> Invocation:
        """The plan, with job folders rebased on ``folder`` (where the record was found now:
        a later launcher may see the output volume at another path)."""
        folder = folder or self.dir
        jobs = tuple(attrs.evolve(j.plan, job_dir=os.path.join(folder, j.dir)) for j in self.jobs)
        return Invocation(self.invocation_id, self.created, os.path.dirname(folder), folder,
                          jobs, self.server.plan if self.server else None)

    def specs(self) -> dict[str, ContainerSpec]:
        return {j.job_id: j.container for j in self.jobs}


def resolve_jobs(invocation: Invocation, translator: PathTranslator, user: str | None,
                 labels: dict[str, str], images: dict[str, str] | None = None,
                 ) -> tuple[HostSource, list[JobRecord]]:
    """Every job resolved once for the host engine: host folder and container spec."""
    translator.to_host(invocation.output_dir)  # an error here names the -v to add
    host = translator.to_host(invocation.dir)
    jobs = [JobRecord(
        job_id=job.job_id, task=job.task, image=job.image,
        image_id=(images or {}).get(job.image), dir=os.path.basename(job.job_dir),
        container_name=job.container_name, env_names=[var.describe() for var in job.env],
        host_dir=translator.to_host(job.job_dir), plan=job,
        container=for_job(job, translator.to_host, user, labels),
    ) for job in invocation.jobs]
    return host, jobs


def resolve_server(invocation: Invocation, translator: PathTranslator,
                   labels: dict[str, str]) -> ServerRecord | None:
    server = invocation.server
    if server is None:
        return None
    return ServerRecord(server, server_spec(server, translator.to_host, labels),
                        [var.describe() for var in server.env])


def build(invocation: Invocation, host: HostSource, jobs: list[JobRecord],
          raw_config: dict[str, Any], images: dict[str, str], launcher_container: str | None,
          execution: Execution, metadata: dict[str, Any] | None = None,
          server: ServerRecord | None = None) -> InvocationRecord:
    return InvocationRecord(
        invocation_id=invocation.invocation_id, created=invocation.created, ended=None,
        launcher_version=__version__,
        launcher=LauncherInfo(launcher_container, socket.gethostname(), os.getpid()),
        output_dir=invocation.output_dir, dir=invocation.dir, host_dir=host.source, host=host,
        execution=execution, config=store.redact(raw_config), images=images, jobs=jobs,
        user_provided_metadata=store.redact(metadata or {}), server=server)


def unstructure(record: InvocationRecord) -> dict[str, Any]:
    data: dict[str, Any] = _conv.unstructure(record)
    return data


def structure(data: dict[str, Any]) -> InvocationRecord:
    if "host_view" in data:
        data = _from_host_view(data)
    return _conv.structure(data, InvocationRecord)


def _from_host_view(data: dict[str, Any]) -> dict[str, Any]:
    """A record written before ContainerSpec (plan + positional ``host_view``), upgraded."""
    view = data["host_view"]
    jobs = []
    for i, job_data in enumerate(data["jobs"]):
        job = _conv.structure(job_data["spec"], Job)
        hosts = [_conv.structure(m, HostSource) for m in view["mounts"][i]]
        by_source = {m.source: h for m, h in zip(job.mounts, hosts, strict=True)}
        container = for_job(job, by_source.__getitem__, view.get("user"), {})
        jobs.append({**{k: v for k, v in job_data.items() if k != "spec"},
                     "host_dir": view["jobs"][i], "plan": job_data["spec"],
                     "container": _conv.unstructure(container)})
    execution = data.get("execution") or {}
    return {**{k: v for k, v in data.items() if k != "host_view"}, "jobs": jobs,
            "host": view["invocation"],
            "execution": {"mode": execution.get("mode", "sequential"),
                          "max_parallel": int(execution.get("max_parallel", 1)),
                          "detached": bool(execution.get("detached", False))}}


def write(folder: str, record: InvocationRecord, owner: store.Owner) -> None:
    """The one place ``invocation.json`` is written (atomically)."""
    store.write_json(os.path.join(folder, RECORD), unstructure(record), owner)


def load(folder: str) -> InvocationRecord | None:
    """The record in ``folder``, or None when missing, unreadable or not of this shape."""
    import json

    try:  # never through a link planted there (see safe_fs.open_read)
        with safe_fs.open_read(os.path.join(folder, RECORD)) as fh:
            return structure(json.load(fh))
    except (OSError, LauncherError, ValueError, TypeError, KeyError, AttributeError,
            IndexError, RecursionError, cattrs.BaseValidationError):
        return None  # e.g. a list, or a record of another shape, written by someone else


LOCK = ".invocation.lock"


@contextlib.contextmanager
def running_lock(folder: str, invocation_id: str, wait: float = 0) -> Iterator[None]:
    """Held while a launcher runs an invocation's jobs (run, resume, supervisor), so two
    launchers never run them at once: the second gets an EnvironmentProblem (after ``wait``
    seconds), before it starts or marks anything. An OS lock (``flock``) on a read-only fd: it
    ends with its process, even on SIGKILL, works across containers sharing the folder, and
    needs no write permission on a lock file another launcher created."""
    import fcntl
    import time

    from launcher.errors import EnvironmentProblem

    path = os.path.join(folder, LOCK)
    fd = safe_fs.open_file(path, os.O_RDONLY | os.O_CREAT)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise EnvironmentProblem(
                        f"invocation {invocation_id} is being run by another launcher: wait "
                        f"for it (`launcher status {invocation_id}`), or stop it with "
                        f"`launcher kill {invocation_id}`") from None
                time.sleep(0.1)
        yield
    finally:
        os.close(fd)
