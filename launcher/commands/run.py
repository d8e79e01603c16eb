"""``launcher run``: config → plan → files on the output volume → endpoint probe → sibling
containers (attached, or handed to a supervisor container with ``--detach``) → scores."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import yaml

from launcher import plan as plan_mod
from launcher import record, report, scripts, store
from launcher.errors import ConfigError, EnvironmentProblem
from launcher.hostpaths import HostSource, PathTranslator, read_own_container_id
from launcher.prepare import ConfigOptions, Prepared, prepare, with_dataset_cache
from launcher.record import HostView

if TYPE_CHECKING:
    from launcher.executor import Engine


def host_view(prepared: Prepared, translator: PathTranslator, owner: store.Owner,
              rootless: bool) -> HostView:
    inv = prepared.invocation
    translator.to_host(inv.output_dir)  # an error here names the -v to add
    return HostView(
        invocation=translator.to_host(inv.dir),
        jobs=[translator.to_host(job.job_dir) for job in inv.jobs],
        mounts=[[HostSource("volume", m.source, "") if m.is_named else translator.to_host(m.source)
                 for m in job.mounts] for job in inv.jobs],
        user=None if rootless else owner.user,
    )


def run(options: ConfigOptions, tasks: tuple[str, ...], dry_run: bool,
        host_output_dir: str | None, detach: bool = False, probe: bool = True) -> int:
    prepared = prepare(options, tasks)
    owner = store.owner_of(prepared.invocation.output_dir)
    if dry_run:
        prepared = with_dataset_cache(prepared, download=False)
        print(dry_run_text(prepared, owner, host_output_dir))
        return 0

    from launcher.executor import Engine  # the Docker SDK, only when needed

    engine = Engine()
    prepared = with_dataset_cache(prepared, download=True)  # exit 3 here: nothing started
    inv = prepared.invocation
    images = {image: engine.image_id(image) for image in sorted({j.image for j in inv.jobs})}
    translator = engine.path_translator(inv.output_dir, host_output_dir)
    view = host_view(prepared, translator, owner, engine.rootless)
    if probe:
        probe_endpoint(engine, prepared)
    execution = prepared.loaded.config.execution
    rec = record.build(inv, view, prepared.loaded.raw, images, translator.container_id,
                       {"mode": execution.mode, "max_parallel": execution.max_parallel,
                        "detached": detach})
    write_invocation(prepared, view, rec, owner)
    print(f"invocation {inv.invocation_id}: {view.invocation.describe()}", file=sys.stderr)
    if detach:
        start_supervisor(engine, inv, translator, prepared.loaded.environ)
        print(f"detached: follow with `launcher status {inv.invocation_id}`", file=sys.stderr)
        print(inv.invocation_id)
        return 0
    return finish(engine, inv.dir, only=None, env_values=prepared.env_values)


def finish(engine: Engine, inv_dir: str, only: set[str] | None,
           env_values: dict[str, dict[str, str]] | None = None) -> int:
    """Run (the given) jobs of a recorded invocation attached, record the end, print scores."""
    from launcher import dotenv, envvars, runs, scheduler

    run_ = runs.load(inv_dir)
    if run_ is None:
        raise EnvironmentProblem(f"{inv_dir}/{record.RECORD} is missing or unreadable")
    inv, view = record.plan_of(run_.record, inv_dir)
    owner = store.owner_of(inv.output_dir)
    if env_values is None:
        environ = dotenv.host_environment(None, None)
        env_values = {job.job_id: envvars.resolve(job.env, environ, source=inv_dir)
                      for job in inv.jobs if only is None or job.job_id in only}
    execution = run_.record.get("execution") or {}
    workers = int(execution.get("max_parallel", 1)) if execution.get("mode") == "parallel" else 1
    codes = scheduler.execute(engine, inv, view, env_values, owner, workers=workers, only=only)
    run_ = runs.load(inv_dir) or run_
    run_.record["ended"] = record.now()
    record.write(inv_dir, run_.record, owner)
    if codes is None:
        return 130
    print(summary(inv, view.invocation))
    failed = [job for job in inv.jobs if job.job_id in codes and codes[job.job_id] != 0]
    return 1 if failed else 0


def write_invocation(prepared: Prepared, view: HostView, rec: dict[str, Any],
                     owner: store.Owner) -> None:
    """Create the invocation folder: run configs, rerun scripts and the record."""
    inv = prepared.invocation
    try:
        for job in inv.jobs:
            store.make_dirs(job.artifacts_dir, owner)
            store.make_dirs(job.logs_dir, owner)
    except OSError as exc:
        raise ConfigError(
            f"output folder {inv.output_dir} is not writable by the launcher ({exc.strerror}): "
            "choose another execution.output_dir, or mount it read-write",
            source=prepared.loaded.source, key="execution.output_dir") from None
    for job, host, mounts in zip(inv.jobs, view.jobs, view.mounts, strict=True):
        store.write_atomic(os.path.join(job.artifacts_dir, plan_mod.RUN_CONFIG_NAME),
                           yaml.safe_dump(job.run_config, sort_keys=False), owner)
        store.write_atomic(os.path.join(job.job_dir, "run.sh"),
                           scripts.render_job_script(job, host, mounts, view.user), owner, 0o755)
    store.write_atomic(os.path.join(inv.dir, "run_all.sequential.sh"),
                       scripts.render_all_script(inv, view.jobs), owner, 0o755)
    record.write(inv.dir, rec, owner)


def probe_endpoint(engine: Engine, prepared: Prepared) -> None:
    """Fail fast on a dead endpoint or an unknown model, before any task starts."""
    config = prepared.loaded.config
    ep = config.target.api_endpoint
    job = prepared.invocation.jobs[0]
    image = next((j.image for j in prepared.invocation.jobs if j.entrypoint == "launcher"),
                 None)
    if image is None:
        return  # only third-party images: they cannot run our probe
    code, line = engine.probe(image, ep.url, ep.model_id, ep.api_key_name,
                              prepared.env_values[job.job_id], job.docker,
                              config.execution.endpoint_readiness_timeout)
    if code == 2:
        raise ConfigError(line, source=prepared.loaded.source, key="target.api_endpoint.model_id")
    if code != 0:
        raise EnvironmentProblem(line or f"endpoint probe failed (exit {code})")


def start_supervisor(engine: Engine, inv: plan_mod.Invocation, translator: PathTranslator,
                     environ: Mapping[str, str], only: set[str] | None = None) -> None:
    """Hand the jobs (all, or ``only`` these) to a supervisor container that outlives this
    launcher: it sees the output folder at the same path as we do, talks to the same engine,
    and gets the env values in memory (never on disk)."""
    from launcher import envvars

    output = translator.to_host(inv.output_dir)
    mounts = [output.api_mount(inv.output_dir)]
    env: dict[str, str] = {}
    docker_host = os.environ.get("DOCKER_HOST", "")
    if docker_host and not docker_host.startswith("unix://"):
        env["DOCKER_HOST"] = docker_host
    else:
        socket_path = docker_host.removeprefix("unix://") or "/var/run/docker.sock"
        mounts.append(translator.to_host(socket_path).api_mount("/var/run/docker.sock"))
    jobs = [job for job in inv.jobs if only is None or job.job_id in only]
    for job in jobs:  # fails before anything starts if a variable is unset
        envvars.resolve(job.env, environ, source=inv.dir)
        for var in job.env:  # host variables by their HOST names, as the supervisor reads them
            if var.host_name:
                env[var.host_name] = environ[var.host_name]
    image = next((j.image for j in inv.jobs if j.entrypoint == "launcher"), None)
    from launcher.catalog import harness_image

    args = ["supervise", inv.dir]
    if only is not None:
        args += ["--only", ",".join(sorted(only))]
    engine.start_supervisor(image or harness_image(), args, inv.invocation_id, mounts, env)


def summary(inv: plan_mod.Invocation, inv_host: HostSource) -> str:
    from launcher.status import job_status

    rows = []
    for job in inv.jobs:
        state = job_status(job.job_id, job.task, job.job_dir, None, launcher_alive=False).state
        for s in report.read_scores(job.artifacts_dir) or [None]:
            rows.append((job.task, state, s.metric if s else "-",
                         f"{s.value:.4f}" if s else "-",
                         f"{s.stderr:.4f}" if s and s.stderr is not None else "-",
                         str(s.count) if s and s.count is not None else "-"))
    table = report.format_table(rows, ("task", "state", "metric", "value", "stderr", "n"))
    return f"{table}\nresults: {inv_host.describe()}"


def _dry_run_translator(output_dir: str, host_output_dir: str | None) -> tuple[PathTranslator,
                                                                                 bool, str]:
    """Host paths without starting anything: identity on a host; self-inspection (read-only
    Docker calls) inside a container; launcher-side paths with a note if Docker is unreachable."""
    if read_own_container_id() is None:
        overrides = {os.path.realpath(output_dir): host_output_dir} if host_output_dir else {}
        return PathTranslator(container_id=None, overrides=overrides), False, ""
    try:
        from launcher.executor import Engine

        engine = Engine()
        return engine.path_translator(output_dir, host_output_dir), engine.rootless, ""
    except EnvironmentProblem as exc:
        note = f"# host paths unknown ({exc.message}); showing paths as the launcher sees them"
        return PathTranslator(container_id=None), False, note


def dry_run_text(prepared: Prepared, owner: store.Owner, host_output_dir: str | None) -> str:
    """Resolved config, plan and scripts. Nothing is written or started; env values never
    appear (scripts and plan name the variables)."""
    inv = prepared.invocation
    translator, rootless, note = _dry_run_translator(inv.output_dir, host_output_dir)
    view = host_view(prepared, translator, owner, rootless)
    jobs = []
    for job, mounts in zip(inv.jobs, view.mounts, strict=True):
        jobs.append({
            "job_id": job.job_id,
            "task": job.task,
            "image": job.image,
            "command": [job.entrypoint, *job.command],
            "mounts": [f"{src.describe()}:{m.target}{':ro' if m.read_only else ''}"
                       for src, m in zip(mounts, job.mounts, strict=True)],
            "env": [var.describe() for var in job.env],
            "user": view.user,
            "labels": job.labels,
        })
    rendered = {f"{host.describe()}/run.sh": scripts.render_job_script(job, host, mounts,
                                                                         view.user)
                for job, host, mounts in zip(inv.jobs, view.jobs, view.mounts, strict=True)}
    rendered[f"{view.invocation.describe()}/run_all.sequential.sh"] = scripts.render_all_script(
        inv, view.jobs)
    document = {"config": store.redact(prepared.loaded.raw),
                "plan": {"invocation_id": inv.invocation_id, "dir": view.invocation.describe(),
                         "jobs": jobs},
                "scripts": rendered}
    return (f"{note}\n" if note else "") + dump_yaml(document)


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (scripts) as readable ``|`` blocks."""


_BlockDumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def dump_yaml(document: Any) -> str:
    return yaml.dump(document, Dumper=_BlockDumper, sort_keys=False, width=100).rstrip()
