"""The invocation record, ``invocation.json``: everything a NEW launcher (another container,
or the plain CLI on the host) needs to report on, stop, supervise or resume a run: the plan
(typed, via cattrs), the host view of every path, image ids, who launched it, start and end.
Never a secret value: env vars are recorded by name, literal config values redacted."""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime
from typing import Any

import attrs
import cattrs

from launcher import __version__, store
from launcher.hostpaths import HostSource
from launcher.plan import Invocation, Job

RECORD = "invocation.json"
_conv = cattrs.Converter()


@attrs.frozen
class HostView:
    """Where everything of one invocation is, as the HOST engine sees it."""

    invocation: HostSource
    jobs: list[HostSource]
    mounts: list[list[HostSource]]
    user: str | None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def build(invocation: Invocation, view: HostView, raw_config: dict[str, Any],
          images: dict[str, str], launcher_container: str | None,
          execution: dict[str, Any]) -> dict[str, Any]:
    return {
        "invocation_id": invocation.invocation_id,
        "created": invocation.created,
        "ended": None,
        "launcher_version": __version__,
        "launcher": {"container_id": launcher_container, "host": socket.gethostname(),
                     "pid": os.getpid()},
        "output_dir": invocation.output_dir,
        "dir": invocation.dir,
        "host_dir": view.invocation.source,
        "host_view": _conv.unstructure(view),
        "execution": execution,
        "config": store.redact(raw_config),
        "images": images,
        "jobs": [
            {
                "job_id": job.job_id,
                "task": job.task,
                "image": job.image,
                "image_id": images.get(job.image),
                "dir": os.path.basename(job.job_dir),
                "container_name": job.container_name,
                "env_names": [var.describe() for var in job.env],
                "spec": _conv.unstructure(job),
            }
            for job in invocation.jobs
        ],
    }


def plan_of(record: dict[str, Any], folder: str) -> tuple[Invocation, HostView]:
    """The recorded plan, with launcher-side paths rebased on ``folder``, where the record
    was found now (a later launcher may see the output volume at another path)."""
    jobs = tuple(attrs.evolve(job, job_dir=os.path.join(folder, os.path.basename(job.job_dir)))
                 for job in (_conv.structure(j["spec"], Job) for j in record["jobs"]))
    invocation = Invocation(record["invocation_id"], record["created"],
                            os.path.dirname(folder), folder, jobs)
    return invocation, _conv.structure(record["host_view"], HostView)


def write(folder: str, record: dict[str, Any], owner: store.Owner) -> None:
    store.write_json(os.path.join(folder, RECORD), record, owner)
