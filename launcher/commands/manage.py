"""Commands that act on recorded invocations: status, logs, kill, info, resume, ls runs,
supervise. They need only the output folder and the Docker engine, so they work from a new
launcher container or the plain CLI on the host."""

from __future__ import annotations

import functools
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from launcher import labels, record, report, runs, safe_fs
from launcher.backends.base import Backend
from launcher.errors import EnvironmentProblem
from launcher.plan import Job
from launcher.record import ExitMark, JobState, LauncherInfo, Marker, job_folder
from launcher.status import GONE, JobStatus, invocation_state, job_status

SUPERVISOR_LOG = "supervisor.log"  # a detached invocation's supervisor output


def _connect(run: runs.Run | None = None) -> Backend:
    """The backend the run was recorded with (a Slurm cluster, or the local engine)."""
    from launcher.backends import connect, recorded_execution

    return connect(recorded_execution(run.record.config) if run is not None else None)


def _backend_or_none(run: runs.Run | None = None) -> Backend | None:
    try:
        return _connect(run)
    except EnvironmentProblem:
        return None  # status from the files alone is still the truth we have


def statuses(run: runs.Run, backend: Backend | None) -> list[JobStatus]:
    """The engine's facts are read before the markers: a job that started in between (its
    ``stage.running`` there, its workload not in the facts yet) is asked about once more."""
    inv = run.invocation()
    launcher = run.record.launcher
    for attempt in range(2):
        facts = backend.job_states(inv.invocation_id) if backend else {}
        alive = backend is not None and (backend.supervisor_running(inv.invocation_id)
                                         or backend.running(launcher.container_id))
        if not launcher.container_id and not run.record.ended:
            alive = alive or _pid_alive(launcher)
        found = [job_status(job.job_id, job.task, job_folder(job), facts.get(job.job_id), alive)
                 for job in inv.jobs]
        if attempt or backend is None or all(j.note != GONE for j in found):
            break
    return found


def _pid_alive(launcher: LauncherInfo) -> bool:
    import socket

    if launcher.host != socket.gethostname() or not launcher.pid:
        return False
    try:
        os.kill(int(launcher.pid), 0)
        return True
    except (OSError, ValueError):
        return False


SERVER_SUFFIX = ".server"  # <invocation id>.server names its model server in status and logs


def find_server(output_dir: str, ident: str) -> runs.Run:
    """The run of ``<id>.server``; one line when it has no deployment."""
    run, _ = runs.find(output_dir, ident.removesuffix(SERVER_SUFFIX))
    if run.record.server is None:
        raise EnvironmentProblem(f"invocation {run.invocation_id} has no model server (its "
                                 "config has no deployment)")
    return run


def status(output_dir: str, ident: str | None, as_json: bool) -> int:
    if ident is not None and ident.endswith(SERVER_SUFFIX):
        run = find_server(output_dir, ident)
        info = server_status(run, _backend_or_none(run))
        assert info is not None
        print(json.dumps(info, indent=2) if as_json else server_line(info))
        return 0
    if ident is None:
        found = runs.all_runs(output_dir)
        if not found:
            raise EnvironmentProblem(f"no invocations in {output_dir}")
        run, index = found[0], None
    else:
        run, index = runs.find(output_dir, ident)
    backend = _backend_or_none(run)
    jobs = statuses(run, backend)
    if index is not None:
        jobs = [j for j in jobs if j.job_id == f"{run.invocation_id}.{index}"]
    if as_json:
        print(json.dumps([j.as_dict() for j in jobs], indent=2))
        return 0
    rows: list[tuple[str, ...]] = [
        (j.job_id, j.task, j.state, "" if j.exit_code is None else str(j.exit_code),
             "" if j.duration_s is None else f"{j.duration_s:.0f}s",
             "" if j.value is None else f"{j.metric}={j.value:.4f}", j.note) for j in jobs]
    print(f"invocation {run.invocation_id} ({invocation_state([j.state for j in jobs])}): "
          f"{run.record.host_dir or run.dir}")
    print(report.format_table(rows, ("job", "task", "state", "exit", "duration", "score",
                                     "note")))
    info = server_status(run, backend)
    if info:
        print(server_line(info))
    return 0


def server_status(run: runs.Run, backend: Backend | None) -> dict[str, Any] | None:
    """The model server of a deployment: its recorded state and what the engine says (the
    ``status <id>.server --json`` object); None without a deployment."""
    rec = run.record.server
    if rec is None:
        return None
    from launcher import server

    ident = f"{run.invocation_id}{SERVER_SUFFIX}"
    jobs = _server_logs_in_jobs(run)
    if jobs:  # Slurm: a server of its own in each job, its output in the job's logs/
        from launcher.deployment import LOOPBACK, on_node_network

        plan = rec.plan
        health = (f"http://{LOOPBACK}:{plan.port}{plan.health_path}"
                  if on_node_network(_execution_block(run)) else plan.health_url)
        return {"id": ident, "type": plan.type, "image": rec.container.image,
                "health_url": health, "state": "in each Slurm job",
                "note": f"({len(jobs)} jobs: launcher status {run.invocation_id})",
                "container": None, "log": jobs[0][1], "logs": [path for _, path in jobs]}
    state, rest = server.read_state(run.dir)
    found = backend.find({labels.LABEL_INVOCATION: run.invocation_id,
                          labels.LABEL_ROLE: labels.ROLE_SERVER}) if backend else []
    return {"id": ident, "type": rec.plan.type,
            "image": rec.container.image, "health_url": rec.plan.health_url,
            "state": state.value if state else "not started", "note": rest,
            "container": found[0].fact.status if found else None,
            "log": os.path.join(run.dir, record.SERVER_LOG)}


def _server_logs_in_jobs(run: runs.Run) -> list[tuple[Job, str]]:
    """(job, its server log) when the deployment runs inside each job (Slurm); else []."""
    from launcher.slurm_script import SERVER_LOG

    if not _on_slurm(run):
        return []
    return [(job, os.path.join(job_folder(job).logs, SERVER_LOG))
            for job in run.invocation().jobs]


def _execution_block(run: runs.Run) -> dict[str, Any]:
    """The recorded (resolved) config's ``execution`` block ({} when none)."""
    block = (run.record.config or {}).get("execution")
    return block if isinstance(block, dict) else {}


def _on_slurm(run: runs.Run) -> bool:
    return _execution_block(run).get("type") == "slurm"


def server_line(found: dict[str, Any]) -> str:
    engine = f"container {found['container']}" if found["container"] else "no container"
    return (f"server {found['type']} {found['image']} ({found['health_url']}): "
            f"{found['state']} {found['note']}; {engine}; "
            f"log {' '.join(found.get('logs') or [found['log']])}")


def ls_runs(output_dir: str, as_json: bool, limit: int, since: str | None = None) -> int:
    backends: dict[str, Backend | None] = {}  # one per place the runs ran
    rows = []
    found = runs.all_runs(output_dir)
    if since is not None:
        moment = runs.since(since)
        found = [run for run in found if runs.started_since(run, moment)]
    for run in found[:limit]:
        execution = (run.record.config or {}).get("execution") or {}
        where = json.dumps([execution.get(k) for k in ("type", "hostname", "username")])
        if where not in backends:
            backends[where] = _backend_or_none(run)
        states = [j.state for j in statuses(run, backends[where])]
        model = ((run.record.config or {}).get("target") or {}).get(
            "api_endpoint", {}).get("model_id")
        rows.append({"invocation_id": run.invocation_id, "created": run.record.created,
                     "state": invocation_state(states).value,
                     "tasks": [j.task for j in run.jobs], "model": model,
                     "dir": run.record.host_dir or run.dir})
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        print(report.format_table([(r["invocation_id"], r["created"] or "", r["state"],
                                    ",".join(r["tasks"]), r["model"] or "") for r in rows],
                                  ("invocation", "started", "state", "tasks", "model")))
    return 0


def info_parts(output_dir: str, ident: str, config: bool, artifacts: bool, logs: bool,
               copy_artifacts: str | None, copy_logs: str | None) -> int:
    """``info --config/--artifacts/--logs/--copy-artifacts/--copy-logs`` (launcher/commands/
    info_files.py), in that order."""
    from launcher.commands import info_files

    run, index = runs.find(output_dir, ident)
    if config:
        info_files.show_config(run)
    for wanted, kind in ((artifacts, "artifacts"), (logs, "logs")):
        if wanted:
            info_files.show_files(run, index, kind)
    for dest, kind in ((copy_artifacts, "artifacts"), (copy_logs, "logs")):
        if dest:
            info_files.copy(run, index, [kind], dest)
    return 0


def info(output_dir: str, ident: str) -> int:
    run, _ = runs.find(output_dir, ident)
    from launcher.scripts import RUN_ALL, RUN_SH

    rec = run.record
    host = rec.host_dir or run.dir
    print(f"invocation   {run.invocation_id}")
    print(f"started      {rec.created}   ended {rec.ended or '-'}")
    print(f"launcher     {rec.launcher_version}   images {rec.images}")
    print(f"folder       {host}")
    print(f"rerun all    bash {host}/{RUN_ALL[0]}")
    if rec.user_provided_metadata:
        print(f"metadata     {json.dumps(rec.user_provided_metadata, sort_keys=True)}")
    slurm = _on_slurm(run)
    if rec.server is not None:
        where = ("in each job's run.sub (its log: logs/server.log)" if slurm
                 else f"{host}/server.sh start|stop")
        print(f"server       {rec.server.container.image}  {where}   "
              f"env: {', '.join(rec.server.env_names) or '-'}")
    for job in run.jobs:
        print(f"job {job.job_id}  {job.task:<12} {host}/{job.dir}/{RUN_SH}   "
              f"env: {', '.join(job.env_names) or '-'}")
        if slurm:
            print(f"    slurm     sbatch {host}/{job.dir}/run.sub   (a rerun on the cluster)")
    return 0


def logs(output_dir: str, ident: str, follow: bool) -> int:
    if ident.endswith(SERVER_SUFFIX):
        return server_logs(find_server(output_dir, ident), follow)
    run, index = runs.find(output_dir, ident)
    inv = run.invocation()
    jobs = [j for j in inv.jobs if index is None or j.index == index]
    if follow and len(jobs) != 1:
        raise EnvironmentProblem(f"--follow needs one job: give a job id, e.g. "
                                 f"{inv.jobs[0].job_id}")
    for job in jobs:
        path = job_folder(job).stdout_log
        prefix = f"[{job.task}.{job.index}] " if len(jobs) > 1 else ""
        offset = 0
        if os.path.lexists(path):  # a link or FIFO there: one line, never followed
            with safe_fs.open_read(path) as fh:
                data = fh.read()
            offset = len(data)
            for line in data.decode("utf-8", "replace").splitlines():
                print(f"{prefix}{line}")
        if follow:
            _follow_file(path, offset, functools.partial(job_folder(job).has, Marker.EXIT))
    return 0


def server_logs(run: runs.Run, follow: bool) -> int:
    """``logs <id>.server``: the model server's log (``server.log``), followed with ``-f``
    until the server is stopped or failed."""
    from launcher import server

    in_jobs = _server_logs_in_jobs(run)
    followed: list[Followed] = []
    for job, path in in_jobs:  # Slurm: each job's own server, in job order, then followed
        header = f"==> {job.job_id} (task {job.task}): {path} <=="
        print(header, flush=True)
        offset = _print_file(path)
        followed.append((header, path, offset,
                         functools.partial(job_folder(job).has, Marker.EXIT)))
    if in_jobs:
        if follow:  # the last one printed is the current one
            _follow_files(followed[-1:] + followed[:-1])
        return 0
    path = os.path.join(run.dir, record.SERVER_LOG)
    offset = _print_file(path)  # a link or FIFO there: one line, never followed
    if follow:
        _follow_file(path, offset, lambda: server.read_state(run.dir)[0] in (
            server.ServerState.STOPPED, server.ServerState.FAILED))
    return 0


def _print_file(path: str) -> int:
    """Print what ``path`` holds (nothing when it is missing); its length."""
    if not os.path.lexists(path):
        return 0
    with safe_fs.open_read(path) as fh:
        data = fh.read()
    sys.stdout.write(data.decode("utf-8", "replace"))
    sys.stdout.flush()
    return len(data)


def _follow_file(path: str, offset: int, ended: Callable[[], bool]) -> None:
    """Tail the log file until ``ended()`` (checked before each read: the last lines are
    printed)."""
    _follow_files([(None, path, offset, ended)])


Followed = tuple[str | None, str, int, Callable[[], bool]]  # header, path, offset, ended


def _follow_files(files: list[Followed]) -> None:
    """Tail several log files at once (parallel jobs), each until its ``ended()``; a header
    line names the file whenever the output switches to another one."""
    shown: str | None = files[0][0] if files else None  # the caller printed the first one's
    live = list(files)
    while live:
        for item in list(live):
            header, path, offset, ended = item
            done = ended()
            try:
                with safe_fs.open_read(path) as fh:
                    fh.seek(offset)
                    chunk = fh.read()
            except FileNotFoundError:
                chunk = b""
            if chunk:
                if header is not None and header != shown:
                    print(header, flush=True)
                    shown = header
                sys.stdout.write(chunk.decode("utf-8", "replace"))
                sys.stdout.flush()
            live.remove(item)
            if not done:
                live.append((header, path, offset + len(chunk), ended))
        if live:
            time.sleep(0.3)


def kill(output_dir: str, ident: str) -> int:
    from launcher import store

    run, index = runs.find(output_dir, ident)
    inv = run.invocation()
    owner = store.owner_of(inv.output_dir)
    targets = [j for j in inv.jobs if index is None or j.index == index]
    backend = _connect(run)
    before = {j.job_id: j.state for j in statuses(run, backend)}
    pending = [j for j in targets if before[j.job_id].active]
    for job in pending:  # marked first, so whoever follows the container records "killed"
        job_folder(job).mark(Marker.KILLED, owner)
    if index is None:
        removed = backend.stop_labelled(inv.invocation_id)
    else:
        removed = backend.stop_labelled(inv.invocation_id, targets[0].job_id)
    follower = _someone_follows(run, backend)  # an attached launcher records its own ends
    for job in pending:
        folder = job_folder(job)
        wait = follower and before[job.job_id] == JobState.RUNNING
        deadline = time.monotonic() + (5 if wait else 0)
        while not folder.has(Marker.EXIT) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not folder.has(Marker.EXIT):
            folder.write_exit(ExitMark(record.now_z(), 137, JobState.KILLED), owner)
    print(f"killed {len(pending)} job(s) of invocation {inv.invocation_id}; removed "
          f"{removed} container(s)")
    return 0


def _someone_follows(run: runs.Run, backend: Backend) -> bool:
    launcher = run.record.launcher
    return backend.running(launcher.container_id) or _pid_alive(launcher)


def resume_todo(current: list[JobStatus], invocation_id: str) -> set[str]:
    """The jobs a resume reruns: every one that did not succeed; none while one runs."""
    if any(j.state == JobState.RUNNING for j in current):
        raise EnvironmentProblem(f"invocation {invocation_id} is still running: wait, or "
                                 f"`launcher kill {invocation_id}` first")
    return {j.job_id for j in current if j.state != JobState.SUCCESS}


def resume(output_dir: str, ident: str, detach: bool) -> int:
    extra = labels.extra_labels(os.environ)
    run, _ = runs.find(output_dir, ident)
    backend = _connect(run)
    with record.running_lock(run.dir, run.invocation_id):
        return _resume(run, backend, detach, extra)


def _resume(run: runs.Run, backend: Backend, detach: bool, extra: dict[str, str]) -> int:
    from launcher.commands.run import finish

    todo = resume_todo(statuses(run, backend), run.invocation_id)
    if not todo:
        print(f"invocation {run.invocation_id}: every job already succeeded", file=sys.stderr)
        return 0
    print(f"resuming {len(todo)} job(s) of invocation {run.invocation_id}", file=sys.stderr)
    if detach:
        from launcher import dotenv
        from launcher.commands.run import start_supervisor

        inv = run.invocation()
        translator = backend.path_translator(inv.output_dir, None)
        start_supervisor(backend, inv, translator, dotenv.host_environment(None, None), todo)
        print(f"detached: follow with `launcher status {run.invocation_id}`", file=sys.stderr)
        print(run.invocation_id)
        return 0
    return finish(backend, run.record, run.dir, only=todo, labels=extra)


ENV_LINE_LIMIT = 1 << 20  # the JSON line of env values on stdin
ENV_WAIT = 60.0  # seconds the supervisor waits for it


def receive_env(fd: int, timeout: float = ENV_WAIT) -> dict[str, str]:
    """The env values the launcher writes to a supervisor's stdin: one JSON line
    ``{"env": {NAME: value}}`` (kept in memory; its container's Env holds none of them)."""
    import select

    data = b""
    deadline = time.monotonic() + timeout
    while not data.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            raise EnvironmentProblem(f"no env values arrived on stdin within {timeout:g} s")
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
        if len(data) > ENV_LINE_LIMIT:
            raise EnvironmentProblem("the env values on stdin are over 1 MiB")
    try:
        env = json.loads(data.decode("utf-8"))["env"]
    except (ValueError, KeyError, TypeError):
        env = None
    if not isinstance(env, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
        raise EnvironmentProblem("stdin does not hold the env values line the launcher writes")
    return env


def supervise(inv_dir: str, only: set[str] | None = None, env_stdin: bool = False) -> int:
    """Inside the supervisor container: run a detached invocation's jobs to their end.

    The container removes itself when done, so its output goes to ``supervisor.log`` in the
    invocation folder. With ``env_stdin`` the host values come as one line on stdin (the
    container's Env holds none of them)."""
    import contextlib
    import io

    from launcher import store
    from launcher.commands.run import finish
    from launcher.errors import LauncherError

    log_path = os.path.join(inv_dir, SUPERVISOR_LOG)
    try:  # a link planted at supervisor.log is refused, not followed
        if env_stdin:  # into this process's memory: /proc/<pid>/environ keeps the old block
            os.environ.update(receive_env(sys.stdin.fileno()))
        binary = safe_fs.open_append(log_path, store.owner_of(inv_dir))
    except LauncherError as e:
        print(f"error: {e.message}", file=sys.stderr, flush=True)
        return e.exit_code
    with io.TextIOWrapper(binary, encoding="utf-8", line_buffering=True) as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        try:
            run = runs.load(inv_dir)
            if run is None:
                raise EnvironmentProblem(f"{inv_dir}/{record.RECORD} is missing or unreadable")
            with record.running_lock(inv_dir, run.invocation_id, wait=60):
                return finish(_connect(run), run.record, inv_dir, only=only,
                              labels=labels.extra_labels(os.environ))
        except LauncherError as e:
            print(f"error: {e.message}", flush=True)
            return e.exit_code
        except Exception:  # the container removes itself: its log is the only trace left
            import traceback

            traceback.print_exc()
            return 1
