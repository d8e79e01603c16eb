"""The model server of a deployment, around one run of an invocation's jobs (``run``,
``resume``, the supervisor): ONE server shared by every job, sequential or parallel.

It is started on the invocation's own network (created here, labelled, removed afterwards),
its output copied to ``<invocation>/server.log`` and its state to ``server.state``. Readiness
is polled from that network by a small waiter container of our image (``probe-endpoint
--health-url ... --interval 0.1``), while the server itself is watched: a server that exits
before it is ready, or is not ready by ``execution.endpoint_readiness_timeout``, raises
``ServerFailed`` with the last lines of its log and no evaluation container starts. It is
stopped when the jobs end, on failure, on Ctrl-C/SIGTERM; ``kill`` removes it by label (also
after a SIGKILLed launcher), and a resume first removes a leftover of the same invocation.
No engine calls beyond the ``Backend`` seam.
"""

from __future__ import annotations

import contextlib
import enum
import os
import signal
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any

from launcher import envvars, safe_fs, store
from launcher.backends.base import Backend, WorkloadGone
from launcher.errors import EnvironmentProblem, LauncherError
from launcher.labels import LABEL_INVOCATION, LABEL_JOB, LABEL_ROLE, ROLE_SERVER, ROLE_WAITER
from launcher.record import SERVER_LOG, InvocationRecord, now_z
from launcher.spec import waiter_spec

SERVER_STATE = "server.state"
TAIL_LINES = 20
POLL_S = 0.1


class ServerState(enum.StrEnum):
    STARTING = "starting"
    READY = "ready"
    FAILED = "failed"
    STOPPED = "stopped"


class ServerFailed(EnvironmentProblem):
    """The model server exited before it was ready, or was not ready in time (exit 3)."""


def read_state(folder: str) -> tuple[ServerState | None, str]:
    """(state, the rest of its line: time and reason) from ``server.state``."""
    try:
        with safe_fs.open_read(os.path.join(folder, SERVER_STATE)) as fh:
            word, _, rest = fh.read(4096).decode("utf-8", "replace").strip().partition(" ")
    except (OSError, LauncherError):  # missing, or a link planted there
        return None, ""
    known = {s.value for s in ServerState}
    return (ServerState(word) if word in known else None), rest


def _write_state(folder: str, state: ServerState, owner: store.Owner, why: str = "") -> None:
    line = f"{state} {now_z()}" + (f" {why}" if why else "")
    store.write_atomic(os.path.join(folder, SERVER_STATE), line + "\n", owner)


def _copy_log(backend: Backend, handle: str, path: str) -> None:
    with safe_fs.open_append(path) as log, contextlib.suppress(WorkloadGone, Exception):
        for chunk in backend.logs(handle, follow=True):
            log.write(chunk)
            log.flush()


def _tail(backend: Backend, handle: str, path: str) -> str:
    try:
        text = b"".join(backend.logs(handle, follow=False)).decode("utf-8", "replace")
    except WorkloadGone:
        with safe_fs.open_read(path) as fh:
            text = fh.read().decode("utf-8", "replace")
    lines = text.rstrip().splitlines()[-TAIL_LINES:]
    return "\n".join(f"  | {line}" for line in lines) or "  | (no output)"


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def wait_ready(backend: Backend, handle: str, rec: InvocationRecord, waiter_image: str,
               labels: Mapping[str, str], log_path: str,
               removers: list[threading.Thread]) -> float:
    """Block until the server answers its health path and serves the model; seconds it
    took. ServerFailed (with its log's tail) when it exits first or the timeout passes.
    On success the waiter is removed by a thread added to ``removers``, while the tasks
    start."""
    assert rec.server is not None
    server = rec.server.plan
    job = rec.jobs[0].plan
    ep = job.run_config["target"]["api_endpoint"]
    started = time.monotonic()
    deadline = started + server.readiness_timeout + 30
    exited = threading.Event()  # the waiter's end is seen at once, not at the next poll

    def await_waiter(handle: str) -> None:
        with contextlib.suppress(WorkloadGone):
            backend.wait(handle)
        exited.set()

    waiter = backend.start(waiter_spec(waiter_image, server, ep["url"], ep["model_id"],
                                       labels), {})
    try:
        threading.Thread(target=await_waiter, args=(waiter,), daemon=True,
                         name="waiter-wait").start()
        while True:
            fact = backend.state(handle)
            if fact is None:
                raise ServerFailed(f"the model server ({server.image}) was removed (launcher "
                                   "kill?) before it was ready; no task was started")
            if fact.status not in ("running", "created"):
                code = f" with code {fact.exit_code}" if fact.exit_code is not None else ""
                raise ServerFailed(f"the model server ({server.image}) exited{code} before it "
                                   f"was ready; no task was started. Last lines of its log "
                                   f"({log_path}):\n{_tail(backend, handle, log_path)}")
            done = backend.state(waiter)
            if done is None:
                raise ServerFailed("the readiness waiter was removed (launcher kill?) before the "
                                   "model server was ready; no task was started")
            if done.status == "exited":
                if done.exit_code == 0:
                    remover = threading.Thread(target=backend.remove, args=(waiter,),
                                               name="waiter-remove")
                    remover.start()
                    removers.append(remover)
                    waiter = ""  # the thread removes it, not the finally below
                    return time.monotonic() - started
                said = b"".join(backend.logs(waiter, follow=False)).decode(
                    "utf-8", "replace").strip().splitlines()
                raise ServerFailed(f"{said[-1] if said else 'model server not ready'}; no task "
                                   f"was started. Last lines of its log ({log_path}):\n"
                                   f"{_tail(backend, handle, log_path)}")
            if time.monotonic() > deadline:
                raise ServerFailed(f"model server not ready after {server.readiness_timeout:g}s"
                                   f"; last lines of its log ({log_path}):\n"
                                   f"{_tail(backend, handle, log_path)}")
            exited.wait(POLL_S)
    finally:
        if waiter:
            backend.remove(waiter)


def _watch(backend: Backend, handle: str, invocation_id: str, ended: threading.Event,
           log_path: str, died: Any) -> None:
    """While the tasks run: a server that exits by itself (a crash, an OOM; not removed by
    kill or Ctrl-C) is recorded, and the running tasks are stopped at once rather than
    retrying against nothing."""
    while not ended.wait(0.5):
        try:
            fact = backend.state(handle)
        except Exception:  # the engine went away: the tasks will say so
            return
        if fact is None or ended.is_set():
            return  # removed: by kill, by Ctrl-C, or by us
        if fact.status in ("running", "created"):
            continue
        code = f" with code {fact.exit_code}" if fact.exit_code is not None else ""
        died(f"the model server exited{code} while the tasks ran; the running tasks were "
             f"stopped. Last lines of its log:\n{_tail(backend, handle, log_path)}")
        for workload in backend.find({LABEL_INVOCATION: invocation_id}):
            if LABEL_JOB in workload.labels and workload.fact.status == "running":
                backend.stop(workload.handle, timeout=5)
        return


def _died(folder: str, owner: store.Owner, why: str, say: Any, watch: Watch) -> None:
    watch.died = why.splitlines()[0].split(";")[0]  # "the model server exited with code N ..."
    _write_state(folder, ServerState.FAILED, owner, why.splitlines()[0])
    if say is not None:
        for line in why.splitlines():
            say(f"[server] {line}")


def remove_leftovers(backend: Backend, invocation_id: str) -> int:
    """The server and waiter of an earlier run of this invocation (a SIGKILLed launcher's)."""
    found = [w for w in backend.find({LABEL_INVOCATION: invocation_id})
             if w.labels.get(LABEL_ROLE) in (ROLE_SERVER, ROLE_WAITER)]
    for workload in found:
        backend.remove(workload.handle)
    return len(found)


class Watch:
    """What the tasks' scheduler asks while they run: why no task may start any more."""

    def __init__(self) -> None:
        self.died: str | None = None

    def failure(self) -> str | None:
        return self.died


@contextlib.contextmanager
def serving(backend: Backend, rec: InvocationRecord, folder: str, owner: store.Owner,
            labels: Mapping[str, str], environ: Mapping[str, str], waiter_image: str,
            say: Any = None) -> Iterator[Watch]:
    """The invocation's model server runs (and is ready) inside this block; nothing without
    a deployment."""
    watch = Watch()
    if rec.server is None:
        yield watch
        return
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    server = rec.server
    inv_id = rec.invocation_id
    env = envvars.resolve(server.plan.env, environ, source=folder)
    # The spec's own labels (EVAL_LAUNCHER_LABELS at planning) and this run's, on all we make.
    ours = {**{k: v for k, v in server.container.labels.items() if k != LABEL_ROLE}, **labels}
    remove_leftovers(backend, inv_id)
    backend.create_network(server.plan.network, ours)
    log_path = os.path.join(folder, SERVER_LOG)
    safe_fs.open_truncate(log_path, owner).close()  # never through a planted link
    _write_state(folder, ServerState.STARTING, owner)
    handle = backend.start(server.container.with_labels(labels), env)
    copier = threading.Thread(target=_copy_log, args=(backend, handle, log_path), daemon=True,
                              name="server-log")
    copier.start()
    state = ServerState.STOPPED
    ended = threading.Event()
    removers: list[threading.Thread] = []
    try:
        try:
            took = wait_ready(backend, handle, rec, waiter_image, ours, log_path, removers)
        except ServerFailed as exc:
            state = ServerState.FAILED
            _write_state(folder, state, owner, exc.message.splitlines()[0])
            raise
        _write_state(folder, ServerState.READY, owner, f"after {took:.1f}s")
        if say is not None:
            say(f"[server] ready after {took:.1f}s: {server.plan.health_url}")
        watcher = threading.Thread(target=_watch, daemon=True, name="server-watch", args=(
            backend, handle, inv_id, ended, log_path,
            lambda why: _died(folder, owner, why, say, watch)))
        watcher.start()
        yield watch
        if watch.died:  # keep the watcher's "failed" in server.state
            state = ServerState.FAILED
    finally:
        ended.set()
        backend.stop(handle, timeout=5)
        backend.remove(handle)
        copier.join(timeout=2)
        for remover in removers:
            remover.join(timeout=30)
        backend.remove_networks({LABEL_INVOCATION: inv_id})
        if state == ServerState.STOPPED:
            _write_state(folder, state, owner)
