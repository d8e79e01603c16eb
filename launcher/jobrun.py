"""Run one job's container to its end on any backend, keeping the stage-marker protocol:
``stage.pre-start`` → ``stage.running`` → ``stdout.log`` streamed → ``stage.exit`` with the
exit code, the state and why (OOM, removed, killed from outside, timeout). No engine calls
here beyond the ``Backend`` seam."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Mapping
from typing import BinaryIO

from launcher import safe_fs
from launcher.backends.base import Backend, WorkloadGone
from launcher.plan import Job
from launcher.record import ExitMark, ExitNote, JobState, Marker, job_folder, now_z
from launcher.safe_fs import Owner
from launcher.spec import ContainerSpec

EXIT_START_FAILED, EXIT_KILLED, EXIT_TIMEOUT = 125, 137, 124


def run_job(backend: Backend, job: Job, spec: ContainerSpec, env: Mapping[str, str],
            owner: Owner, echo: Callable[[str], None] | None = None) -> int:
    """Run ``spec`` (job's container) with these env values; return its exit code."""
    folder = job_folder(job)
    folder.clear(Marker.RUNNING, Marker.EXIT, Marker.KILLED)  # a resumed job
    folder.mark(Marker.PRE_START, owner)
    code, state, note = EXIT_START_FAILED, JobState.FAILED, ExitNote.NONE
    handle: str | None = None
    log: BinaryIO | None = None
    try:
        # Opened before the container starts: a link planted there is refused, nothing runs.
        log = safe_fs.open_truncate(folder.stdout_log, owner)
        handle = backend.start(spec, env)
        code, state = EXIT_KILLED, JobState.KILLED
        folder.mark(Marker.RUNNING, owner)
        timed_out = threading.Event()
        timer = None
        if job.timeout:
            def expire(handle: str = handle) -> None:
                timed_out.set()
                backend.stop(handle, timeout=5)

            timer = threading.Timer(job.timeout, expire)
            timer.daemon = True
            timer.start()
        try:
            _stream_logs(backend, handle, log, echo)
            code = backend.wait(handle)
            fact = backend.state(handle)
            if fact is None:
                raise WorkloadGone(handle)
            if fact.oom_killed:
                note = ExitNote.OOM
            elif code == EXIT_KILLED and not folder.has(Marker.KILLED):
                note = ExitNote.REMOVED if backend.gone_or_killed(handle) else ExitNote.KILLED
        except WorkloadGone:  # removed by hand
            code, note = EXIT_KILLED, ExitNote.REMOVED
        finally:
            if timer is not None:
                timer.cancel()
        state = JobState.SUCCESS if code == 0 and not note else JobState.FAILED
        if folder.has(Marker.KILLED):
            state = JobState.KILLED
        elif timed_out.is_set():
            code, state = EXIT_TIMEOUT, JobState.FAILED
            log.write(f"eval-launcher: stopped after the task timeout of {job.timeout}s\n"
                      .encode())
        return code
    finally:
        # Also reached on KeyboardInterrupt (SIGINT/SIGTERM): no orphan container is left.
        if handle is not None:
            backend.remove(handle)
        if log is not None:
            with contextlib.suppress(OSError):  # flushed after each chunk already
                log.close()
        folder.write_exit(ExitMark(now_z(), code, state, note), owner)


def _stream_logs(backend: Backend, handle: str, log: BinaryIO,
                 echo: Callable[[str], None] | None) -> None:
    for chunk in backend.logs(handle, follow=True):
        log.write(chunk)
        log.flush()
        if echo:
            for line in chunk.decode("utf-8", "replace").splitlines():
                echo(line)


def mark_not_started(job: Job, owner: Owner, why: str) -> int:
    """A job that will not start (its model server failed): failed, saying why in its log,
    so status shows it and resume reruns it. Left alone if ``launcher kill`` marked it."""
    folder = job_folder(job)
    if folder.has(Marker.KILLED):
        return EXIT_KILLED
    folder.clear(Marker.RUNNING, Marker.EXIT)
    with safe_fs.open_append(folder.stdout_log, owner) as log:  # never through a planted link
        log.write(f"eval-launcher: not started: {why}\n".encode())
    folder.write_exit(ExitMark(now_z(), EXIT_START_FAILED, JobState.FAILED), owner)
    return EXIT_START_FAILED
