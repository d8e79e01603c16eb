"""``launcher run``: config → plan → files on the output volume → sibling containers → scores."""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any

import yaml

from launcher import config as config_mod
from launcher import plan as plan_mod
from launcher import report, scripts, store
from launcher.envvars import resolve
from launcher.errors import ConfigError
from launcher.hostpaths import HostSource


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def run(config_path: str | None, overrides: tuple[str, ...], dry_run: bool,
        host_output_dir: str | None) -> int:
    source = config_path or "<built-in defaults>"
    config, raw = config_mod.load_config(config_path, overrides)
    invocation = plan_mod.build(config, source=source)
    env_values = {job.job_id: resolve(job.env, os.environ, source=source)
                  for job in invocation.jobs}
    if dry_run:
        print(_dry_run_text(invocation, raw))
        return 0

    from launcher.executor import Engine, echo_stderr  # the Docker SDK, only when needed

    engine = Engine()
    images = {image: engine.image_id(image) for image in {j.image for j in invocation.jobs}}
    translator = engine.path_translator(invocation.output_dir, host_output_dir)
    translator.to_host(invocation.output_dir)  # an error here names the -v to add
    inv_host = translator.to_host(invocation.dir)
    job_hosts = [translator.to_host(job.job_dir) for job in invocation.jobs]
    job_mounts = [[translator.to_host(m.source) if not m.is_named else
                   HostSource("volume", m.source, "") for m in job.mounts]
                  for job in invocation.jobs]
    owner = store.owner_of(invocation.output_dir)
    _prepare(invocation, raw, images, owner, inv_host, job_hosts, job_mounts, engine, source)

    print(f"invocation {invocation.invocation_id}: {inv_host.describe()}", file=sys.stderr)
    signal.signal(signal.SIGTERM, _terminate)
    codes: dict[str, int] = {}
    try:
        for job, mounts in zip(invocation.jobs, job_mounts, strict=True):
            started = time.monotonic()
            print(f"[{job.task}.{job.index}] starting {job.image}", file=sys.stderr, flush=True)
            codes[job.job_id] = engine.run_job(job, mounts, env_values[job.job_id], owner,
                                               echo=echo_stderr(f"{job.task}.{job.index}"))
            print(f"[{job.task}.{job.index}] exit {codes[job.job_id]} after "
                  f"{time.monotonic() - started:.1f}s", file=sys.stderr, flush=True)
    except KeyboardInterrupt:
        engine.stop_invocation(invocation.invocation_id)
        print(f"interrupted: stopped the containers of invocation {invocation.invocation_id}",
              file=sys.stderr)
        return 130
    print(_summary(invocation, codes, inv_host))
    return 0 if all(code == 0 for code in codes.values()) else 1


def _prepare(invocation: plan_mod.Invocation, raw: dict[str, Any], images: dict[str, str],
             owner: store.Owner, inv_host: HostSource, job_hosts: list[HostSource],
             job_mounts: list[list[HostSource]], engine: Any, source: str) -> None:
    """Create the invocation folder: run configs, rerun scripts and the record."""
    try:
        for job in invocation.jobs:
            store.make_dirs(job.artifacts_dir, owner)
            store.make_dirs(job.logs_dir, owner)
    except PermissionError:
        raise ConfigError(
            f"output folder {invocation.output_dir} is not writable by the launcher "
            f"(uid {os.geteuid()}): choose another execution.output_dir or fix its permissions",
            source=source, key="execution.output_dir") from None
    user = None if engine.rootless else owner.user
    for job, host, mounts in zip(invocation.jobs, job_hosts, job_mounts, strict=True):
        store.write_atomic(os.path.join(job.artifacts_dir, plan_mod.RUN_CONFIG_NAME),
                           yaml.safe_dump(job.run_config, sort_keys=False), owner)
        store.write_atomic(os.path.join(job.job_dir, "run.sh"),
                           scripts.render_job_script(job, host, mounts, user), owner, 0o755)
    store.write_atomic(os.path.join(invocation.dir, "run_all.sequential.sh"),
                       scripts.render_all_script(invocation, job_hosts), owner, 0o755)
    store.write_json(os.path.join(invocation.dir, "invocation.json"),
                     store.invocation_record(invocation, raw, images, inv_host.source), owner)


def _summary(invocation: plan_mod.Invocation, codes: dict[str, int], inv_host: HostSource) -> str:
    rows = []
    for job in invocation.jobs:
        state = "success" if codes.get(job.job_id) == 0 else "failed"
        scores = report.read_scores(job.artifacts_dir) or [None]
        for s in scores:
            rows.append((job.task, state, s.metric if s else "-",
                         f"{s.value:.4f}" if s else "-",
                         f"{s.stderr:.4f}" if s and s.stderr is not None else "-",
                         str(s.count) if s and s.count is not None else "-"))
    table = report.format_table(rows, ("task", "state", "metric", "value", "stderr", "n"))
    return f"{table}\nresults: {inv_host.describe()}"


def _dry_run_text(invocation: plan_mod.Invocation, raw: dict[str, Any]) -> str:
    """What would run: nothing is written or started. Env vars appear by name only."""
    plan = {
        "invocation_id": invocation.invocation_id,
        "dir": invocation.dir,
        "jobs": [
            {
                "job_id": job.job_id,
                "task": job.task,
                "image": job.image,
                "command": [job.entrypoint, *job.command],
                "mounts": [f"{m.source}:{m.target}{':ro' if m.read_only else ''}"
                           for m in job.mounts],
                "env": [var.describe() for var in job.env],
                "run_config": job.run_config,
            }
            for job in invocation.jobs
        ],
    }
    return yaml.safe_dump({"config": store.redact(raw), "plan": plan}, sort_keys=False)
