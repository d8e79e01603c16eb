"""Run an invocation's jobs: sequential or bounded-parallel, a failing job never stops the
others, SIGINT/SIGTERM stops our own containers before returning, and a live view shows
progress (in place on a TTY, plain lines otherwise)."""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

from launcher import progress_view
from launcher.backends.base import Backend
from launcher.jobrun import EXIT_START_FAILED, mark_not_started, run_job
from launcher.plan import Invocation
from launcher.spec import ContainerSpec
from launcher.store import Owner


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def echo_stderr(prefix: str) -> Callable[[str], None]:
    def echo(line: str) -> None:
        print(f"[{prefix}] {line}", file=sys.stderr, flush=True)

    return echo


def execute(backend: Backend, invocation: Invocation, specs: Mapping[str, ContainerSpec],
            env_values: Mapping[str, Mapping[str, str]], owner: Owner, *, workers: int,
            only: set[str] | None = None,
            blocked: Callable[[], str | None] | None = None,
            after: Callable[[str, int], None] | None = None) -> dict[str, int] | None:
    """Exit code per job id, or None when interrupted (our containers are then stopped).
    ``blocked``: why a job must not start any more (its model server died), or None.
    ``after``: called with each started job's id and exit code once it ended (auto-export);
    whatever it raises is reported, never changes the job."""
    jobs = [i for i, job in enumerate(invocation.jobs) if only is None or job.job_id in only]
    codes: dict[str, int] = {}
    lock = threading.Lock()
    live = progress_view.LiveView(invocation, sys.stderr)

    def one(index: int) -> None:
        job = invocation.jobs[index]
        name = f"{job.task}.{job.index}"
        started = time.monotonic()
        why = blocked() if blocked else None
        if why:
            code = mark_not_started(job, owner, why)
            with lock:
                codes[job.job_id] = code
            live.say(f"[{name}] not started: {why}")
            return
        live.say(f"[{name}] starting {job.image}")
        try:
            code = run_job(backend, job, specs[job.job_id], env_values.get(job.job_id, {}),
                           owner, echo=None if live.tty else echo_stderr(name))
        except Exception as exc:  # one job's failure must not stop the others
            live.say(f"[{name}] failed to run: {exc}")
            code = EXIT_START_FAILED
        with lock:
            codes[job.job_id] = code
        live.say(f"[{name}] exit {code} after {time.monotonic() - started:.1f}s")
        if after is not None:
            try:
                after(job.job_id, code)
            except Exception as exc:
                live.say(f"[{name}] after the job: {exc}")

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="job")
    live.start()
    try:
        pending = {pool.submit(one, i) for i in jobs}
        while pending:  # short waits keep the main thread responsive to signals
            _, pending = wait(pending, timeout=0.2)
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        live.stop()
        backend.stop_labelled(invocation.invocation_id)
        print(f"interrupted: stopped the containers of invocation {invocation.invocation_id}",
              file=sys.stderr)
        return None
    finally:
        live.stop()
    pool.shutdown()
    return codes
