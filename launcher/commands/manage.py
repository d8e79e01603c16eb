"""Commands that act on recorded invocations: status, logs, kill, info, resume, ls runs,
supervise. They need only the output folder and the Docker engine, so they work from a new
launcher container or the plain CLI on the host."""

from __future__ import annotations

import json
import os
import sys
import time

from launcher import record, report, runs, store
from launcher.errors import EnvironmentProblem
from launcher.status import JobStatus, invocation_state, job_status

SUPERVISOR_LOG = "supervisor.log"  # a detached invocation's supervisor output


def _engine_or_none():
    from launcher.executor import Engine

    try:
        return Engine()
    except EnvironmentProblem:
        return None  # status from the files alone is still the truth we have


def statuses(run: runs.Run, engine) -> list[JobStatus]:
    inv, _ = record.plan_of(run.record, run.dir)
    facts = engine.job_containers(inv.invocation_id) if engine else {}
    launcher = run.record.get("launcher") or {}
    alive = bool(engine) and (engine.supervisor_running(inv.invocation_id)
                              or engine.container_running(launcher.get("container_id")))
    if not launcher.get("container_id") and not run.record.get("ended"):
        alive = alive or _pid_alive(launcher)
    return [job_status(job.job_id, job.task, job.job_dir, facts.get(job.job_id), alive)
            for job in inv.jobs]


def _pid_alive(launcher: dict) -> bool:
    import socket

    if launcher.get("host") != socket.gethostname() or not launcher.get("pid"):
        return False
    try:
        os.kill(int(launcher["pid"]), 0)
        return True
    except (OSError, ValueError):
        return False


def status(output_dir: str, ident: str | None, as_json: bool) -> int:
    if ident is None:
        found = runs.all_runs(output_dir)
        if not found:
            raise EnvironmentProblem(f"no invocations in {output_dir}")
        run, index = found[0], None
    else:
        run, index = runs.find(output_dir, ident)
    engine = _engine_or_none()
    jobs = statuses(run, engine)
    if index is not None:
        jobs = [j for j in jobs if j.job_id == f"{run.invocation_id}.{index}"]
    if as_json:
        print(json.dumps([j.as_dict() for j in jobs], indent=2))
        return 0
    rows = [(j.job_id, j.task, j.state, "" if j.exit_code is None else str(j.exit_code),
             "" if j.duration_s is None else f"{j.duration_s:.0f}s",
             "" if j.value is None else f"{j.metric}={j.value:.4f}", j.note) for j in jobs]
    print(f"invocation {run.invocation_id} ({invocation_state([j.state for j in jobs])}): "
          f"{run.record.get('host_dir') or run.dir}")
    print(report.format_table(rows, ("job", "task", "state", "exit", "duration", "score",
                                     "note")))
    return 0


def ls_runs(output_dir: str, as_json: bool, limit: int) -> int:
    engine = _engine_or_none()
    rows = []
    for run in runs.all_runs(output_dir)[:limit]:
        states = [j.state for j in statuses(run, engine)]
        model = ((run.record.get("config") or {}).get("target") or {}).get(
            "api_endpoint", {}).get("model_id")
        rows.append({"invocation_id": run.invocation_id, "created": run.record.get("created"),
                     "state": invocation_state(states), "tasks": [j["task"] for j in run.jobs],
                     "model": model, "dir": run.record.get("host_dir") or run.dir})
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        print(report.format_table([(r["invocation_id"], r["created"] or "", r["state"],
                                    ",".join(r["tasks"]), r["model"] or "") for r in rows],
                                  ("invocation", "started", "state", "tasks", "model")))
    return 0


def info(output_dir: str, ident: str) -> int:
    run, _ = runs.find(output_dir, ident)
    rec = run.record
    host = rec.get("host_dir") or run.dir
    print(f"invocation   {run.invocation_id}")
    print(f"started      {rec.get('created')}   ended {rec.get('ended') or '-'}")
    print(f"launcher     {rec.get('launcher_version')}   images {rec.get('images')}")
    print(f"folder       {host}")
    print(f"rerun all    bash {host}/run_all.sequential.sh")
    for job in run.jobs:
        print(f"job {job['job_id']}  {job['task']:<12} {host}/{job['dir']}/run.sh   "
              f"env: {', '.join(job.get('env_names') or []) or '-'}")
    return 0


def logs(output_dir: str, ident: str, follow: bool) -> int:
    run, index = runs.find(output_dir, ident)
    inv, _ = record.plan_of(run.record, run.dir)
    jobs = [j for j in inv.jobs if index is None or j.index == index]
    if follow and len(jobs) != 1:
        raise EnvironmentProblem(f"--follow needs one job: give a job id, e.g. "
                                 f"{inv.jobs[0].job_id}")
    for job in jobs:
        path = os.path.join(job.logs_dir, "stdout.log")
        prefix = f"[{job.task}.{job.index}] " if len(jobs) > 1 else ""
        offset = 0
        if os.path.exists(path):
            with open(path, "rb") as fh:
                data = fh.read()
            offset = len(data)
            for line in data.decode("utf-8", "replace").splitlines():
                print(f"{prefix}{line}")
        if follow:
            _follow_file(path, offset, job)
    return 0


def _follow_file(path: str, offset: int, job) -> None:
    """Tail the job's log file until its exit marker appears."""
    exit_marker = os.path.join(job.logs_dir, "stage.exit")
    while True:
        done = os.path.exists(exit_marker)
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
        except FileNotFoundError:
            chunk = b""
        if chunk:
            offset += len(chunk)
            sys.stdout.write(chunk.decode("utf-8", "replace"))
            sys.stdout.flush()
        if done:
            return
        time.sleep(0.3)


def kill(output_dir: str, ident: str) -> int:
    from launcher.executor import KILLED_MARKER, Engine

    run, index = runs.find(output_dir, ident)
    inv, _ = record.plan_of(run.record, run.dir)
    owner = store.owner_of(inv.output_dir)
    targets = [j for j in inv.jobs if index is None or j.index == index]
    engine = Engine()
    before = {j.job_id: j.state for j in statuses(run, engine)}
    pending = [j for j in targets if before[j.job_id] in ("pending", "running")]
    for job in pending:  # marked first, so whoever follows the container records "killed"
        store.write_atomic(os.path.join(job.logs_dir, KILLED_MARKER), record.now() + "\n", owner)
    if index is None:
        removed = engine.stop_containers(inv.invocation_id)
    else:
        removed = engine.stop_containers(inv.invocation_id, targets[0].job_id)
    follower = _someone_follows(run, engine)  # an attached launcher records its own ends
    for job in pending:
        exit_marker = os.path.join(job.logs_dir, "stage.exit")
        deadline = time.monotonic() + (5 if follower and before[job.job_id] == "running" else 0)
        while not os.path.exists(exit_marker) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not os.path.exists(exit_marker):
            store.write_atomic(exit_marker, f"{record.now()} 137 killed\n", owner)
    print(f"killed {len(pending)} job(s) of invocation {inv.invocation_id}; removed "
          f"{removed} container(s)")
    return 0


def _someone_follows(run: runs.Run, engine) -> bool:
    launcher = run.record.get("launcher") or {}
    return engine.container_running(launcher.get("container_id")) or _pid_alive(launcher)


def resume(output_dir: str, ident: str, detach: bool) -> int:
    from launcher.commands.run import finish
    from launcher.executor import Engine

    run, _ = runs.find(output_dir, ident)
    engine = Engine()
    current = statuses(run, engine)
    if any(j.state == "running" for j in current):
        raise EnvironmentProblem(f"invocation {run.invocation_id} is still running: wait, or "
                                 f"`launcher kill {run.invocation_id}` first")
    todo = {j.job_id for j in current if j.state != "success"}
    if not todo:
        print(f"invocation {run.invocation_id}: every job already succeeded", file=sys.stderr)
        return 0
    print(f"resuming {len(todo)} job(s) of invocation {run.invocation_id}", file=sys.stderr)
    if detach:
        from launcher import dotenv
        from launcher.commands.run import start_supervisor

        inv, _ = record.plan_of(run.record, run.dir)
        translator = engine.path_translator(inv.output_dir, None)
        start_supervisor(engine, inv, translator, dotenv.host_environment(None, None), todo)
        print(f"detached: follow with `launcher status {run.invocation_id}`", file=sys.stderr)
        print(run.invocation_id)
        return 0
    return finish(engine, run.dir, only=todo)


def supervise(inv_dir: str, only: set[str] | None = None) -> int:
    """Inside the supervisor container: run a detached invocation's jobs to their end.

    The container removes itself when done, so its output goes to ``supervisor.log`` in the
    invocation folder."""
    import contextlib

    from launcher.commands.run import finish
    from launcher.errors import LauncherError
    from launcher.executor import Engine

    log_path = os.path.join(inv_dir, SUPERVISOR_LOG)
    with open(log_path, "a", encoding="utf-8", buffering=1) as log, \
            contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
        with contextlib.suppress(OSError):
            store.chown(log_path, store.owner_of(inv_dir))
        try:
            return finish(Engine(), inv_dir, only=only)
        except LauncherError as e:
            print(f"error: {e.message}", flush=True)
            return e.exit_code
