"""The live view while ``run`` is attached: one line per job (state, samples done/total, rate,
ETA) from the stage markers and each harness's ``progress.json``. Redrawn in place on a TTY;
on a pipe (CI logs) a plain line per running job every PLAIN_EVERY_S seconds."""

from __future__ import annotations

import os
import threading
from typing import TextIO

from launcher.harness.progress import read as read_progress
from launcher.plan import Invocation, Job
from launcher.record import JobState, Marker, job_folder
from launcher.status import job_status

TTY_EVERY_S = 0.5
PLAIN_EVERY_S = 15.0


def job_line(job: Job) -> tuple[JobState, str]:
    """The job's state and its line in the view."""
    folder = job_folder(job)
    status = job_status(job.job_id, job.task, folder, None, launcher_alive=True)
    state = status.state
    if state == JobState.FAILED and not folder.has(Marker.EXIT):
        state = JobState.RUNNING  # no exit marker yet: the container is still being followed
    progress = read_progress(folder.artifacts) if state != JobState.PENDING else None
    parts = [f"{job.task}.{job.index}".ljust(16), state.ljust(8)]
    if progress:
        done, total = progress.get("done", 0), progress.get("total", 0)
        parts.append(f"{done}/{total}".rjust(11))
        parts.append(f"{progress.get('rate', 0):7.1f}/s")
        eta = progress.get("eta_s")
        parts.append(f"eta {eta:6.0f}s" if eta is not None and state == JobState.RUNNING
                     else "")
    if status.value is not None:
        parts.append(f"{status.metric}={status.value:.4f}")
    return state, "  ".join(p for p in parts if p).rstrip()


class LiveView:
    def __init__(self, invocation: Invocation, stream: TextIO) -> None:
        self.invocation = invocation
        self.stream = stream
        self.tty = stream.isatty()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None
        self.drawn = 0

    def say(self, message: str) -> None:
        with self.lock:
            self._clear()
            print(message, file=self.stream, flush=True)
            self._draw()

    def start(self) -> None:
        self.thread = threading.Thread(target=self._loop, name="live-view", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout=2)
        with self.lock:
            self._clear()

    def _loop(self) -> None:
        every = TTY_EVERY_S if self.tty else float(
            os.environ.get("EVAL_LAUNCHER_PROGRESS_EVERY", PLAIN_EVERY_S))
        while not self.stopping.wait(every):
            with self.lock:
                if self.tty:
                    self._clear()
                    self._draw()
                else:
                    for job in self.invocation.jobs:
                        state, line = job_line(job)
                        if state == JobState.RUNNING:
                            print(f"progress {line}", file=self.stream, flush=True)

    def _draw(self) -> None:
        if not self.tty or self.stopping.is_set():
            return
        lines = [job_line(job)[1] for job in self.invocation.jobs]
        self.stream.write("\n".join(lines) + "\n")
        self.stream.flush()
        self.drawn = len(lines)

    def _clear(self) -> None:
        if self.tty and self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F\x1b[J")
            self.stream.flush()
            self.drawn = 0
