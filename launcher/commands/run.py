"""``launcher run``: config → plan → specs → files in the invocation folder → endpoint probe
→ jobs on the backend (attached, or handed to a supervisor container with ``--detach``) →
record the end → scores."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

import attrs
import yaml

from launcher import (
    envvars,
    jobrun,
    record,
    report,
    scripts,
    serverscript,
    slurm_script,
    slurm_settings,
    store,
)
from launcher import labels as labels_mod
from launcher import plan as plan_mod
from launcher.backends.base import Backend
from launcher.errors import ConfigError, EnvironmentProblem
from launcher.hostpaths import PathTranslator
from launcher.prepare import ConfigOptions, Prepared, prepare, with_dataset_cache
from launcher.record import InvocationRecord
from launcher.spec import MountSpec, probe_spec, supervisor_spec, waiter_spec


def run(options: ConfigOptions, tasks: tuple[str, ...], dry_run: bool,
        host_output_dir: str | None, detach: bool = False, probe: bool = True) -> int:
    labels = labels_mod.extra_labels(os.environ)
    prepared = prepare(options, tasks, running=not dry_run)
    owner = store.owner_of(prepared.invocation.output_dir)
    if dry_run:
        prepared = with_dataset_cache(prepared, download=False)
        from launcher.commands.dryrun import dry_run_text

        print(dry_run_text(prepared, owner, host_output_dir, labels))
        return 0

    from launcher.backends import connect  # the engine, only when needed

    backend = connect(prepared.loaded.config.execution)
    translator = backend.path_translator(prepared.invocation.output_dir, host_output_dir)
    translator.to_host(prepared.invocation.output_dir)  # an error here names the -v to add
    prepared = with_dataset_cache(prepared, download=True)  # exit 3 here: nothing started
    inv = prepared.invocation
    wanted = {j.image for j in inv.jobs}
    if inv.server is not None:  # the server's image, and ours for its readiness waiter
        wanted |= {inv.server.image, waiter_image(inv)}
    images = {image: backend.image_id(image) for image in sorted(wanted)}
    host, jobs = record.resolve_jobs(inv, translator, None if backend.rootless else owner.user,
                                     labels, images)
    server = record.resolve_server(inv, translator, labels)
    backend.check_runtimes(job.container for job in jobs)
    if server is None:  # with a deployment the jobs' network is the invocation's own, made later
        backend.check_networks(job.container for job in jobs)
        if probe:
            key_file = [m for m in jobs[0].container.mounts
                        if m.target == plan_mod.API_KEY_FILE_MOUNT]
            probe_endpoint(backend, prepared, labels, key_file)
    else:
        envvars.resolve(server.plan.env, prepared.loaded.environ, source=prepared.loaded.source)
    config = prepared.loaded.config
    execution = config.execution
    rec = record.build(inv, host, jobs, prepared.loaded.raw, images, translator.container_id,
                       record.Execution(execution.mode, execution.max_parallel, detach),
                       config.user_provided_metadata, server)
    write_invocation(prepared, rec, owner)
    print(f"invocation {inv.invocation_id}: {host.describe()}"
          + (f" (Slurm on {getattr(backend, 'where', '')})" if backend.name == "slurm"
             else ""), file=sys.stderr)
    if detach:
        start_supervisor(backend, inv, translator, prepared.loaded.environ)
        print(f"detached: follow with `launcher status {inv.invocation_id}`", file=sys.stderr)
        print(inv.invocation_id)
        return 0
    with record.running_lock(inv.dir, inv.invocation_id):
        return finish(backend, rec, inv.dir, only=None, env_values=prepared.env_values,
                      environ=prepared.loaded.environ)


def waiter_image(inv: plan_mod.Invocation) -> str:
    """Our image (a job's, else the harness image): it runs the server's readiness waiter."""
    from launcher.catalog import harness_image

    return next((j.image for j in inv.jobs if j.entrypoint == "launcher"), None) or harness_image()


def finish(backend: Backend, rec: InvocationRecord, folder: str, only: set[str] | None,
           env_values: Mapping[str, Mapping[str, str]] | None = None,
           labels: Mapping[str, str] | None = None,
           environ: Mapping[str, str] | None = None) -> int:
    """Run (the given) jobs of an invocation attached, with its model server if it has a
    deployment, record the end, print scores.
    ``labels``: extra labels for this run of the jobs (resume, supervisor)."""
    from launcher import autoexport, dotenv, scheduler, server

    inv = rec.invocation(folder)
    owner = store.owner_of(inv.output_dir)
    if environ is None:
        environ = dotenv.host_environment(None, None)
    if env_values is None:
        env_values = {job.job_id: envvars.resolve(job.env, environ, source=folder)
                      for job in inv.jobs if only is None or job.job_id in only}
    specs = {job_id: spec.with_labels(labels or {}) for job_id, spec in rec.specs().items()}
    after = autoexport.after_each(inv.output_dir, folder, rec.config, owner, _say)
    if backend.name == "slurm" and rec.server is not None:  # the server runs in each job
        from launcher.backends.slurm import SlurmBackend

        assert isinstance(backend, SlurmBackend)
        backend.embed_server(in_job_server(rec, waiter_image(inv), labels or {}),
                             envvars.resolve(rec.server.plan.env, environ, source=folder))
        codes = scheduler.execute(backend, inv, specs, env_values, owner,
                                  workers=rec.execution.workers, only=only, after=after)
        record.write(folder, attrs.evolve(rec, ended=record.now()), owner)
        return _ended(inv, rec, codes)
    try:
        with server.serving(backend, rec, folder, owner, labels or {}, environ,
                            waiter_image(inv), say=_say) as watch:
            codes = scheduler.execute(backend, inv, specs, env_values, owner,
                                      workers=rec.execution.workers, only=only,
                                      blocked=watch.failure, after=after)
    except server.ServerFailed as exc:
        _not_started(inv, only, owner, exc.message.splitlines()[0])
        record.write(folder, attrs.evolve(rec, ended=record.now()), owner)
        raise
    record.write(folder, attrs.evolve(rec, ended=record.now()), owner)
    return _ended(inv, rec, codes)


def _ended(inv: plan_mod.Invocation, rec: InvocationRecord, codes: dict[str, int] | None) -> int:
    if codes is None:
        return 130
    print(summary(inv, rec.host.describe()))
    failed = [job for job in inv.jobs if job.job_id in codes and codes[job.job_id] != 0]
    return 1 if failed else 0


def in_job_server(rec: InvocationRecord, image: str,
                  labels: Mapping[str, str]) -> slurm_script.InJobServer | None:
    """The deployment as each Slurm job runs it: the server, and the waiter for its health."""
    if rec.server is None:
        return None
    ep = rec.jobs[0].plan.run_config["target"]["api_endpoint"]
    ours = {k: v for k, v in rec.server.container.labels.items() if k != labels_mod.LABEL_ROLE}
    waiter = waiter_spec(image, rec.server.plan, ep["url"], ep["model_id"], {**ours, **labels})
    plan = rec.server.plan
    return slurm_script.InJobServer(rec.server.container.with_labels(labels), waiter,
                                    port=plan.port, health_path=plan.health_path,
                                    timeout=plan.readiness_timeout)


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _not_started(inv: plan_mod.Invocation, only: set[str] | None, owner: store.Owner,
                 why: str) -> None:
    """The jobs a model server that never got ready kept from starting."""
    for job in inv.jobs:
        if only is None or job.job_id in only:
            jobrun.mark_not_started(job, owner, why)


def write_invocation(prepared: Prepared, rec: InvocationRecord, owner: store.Owner) -> None:
    """Create the invocation folder: run configs, rerun scripts and the record."""
    inv = prepared.invocation
    try:
        for job in inv.jobs:
            folder = record.job_folder(job)
            store.make_dirs(folder.artifacts, owner)
            store.make_dirs(folder.logs, owner)
    except OSError as exc:
        raise ConfigError(
            f"output folder {inv.output_dir} is not writable by the launcher ({exc.strerror}): "
            "choose another execution.output_dir, or mount it read-write",
            source=prepared.loaded.source, key="execution.output_dir") from None
    server_script = serverscript.render_server_script(rec, waiter_image(inv))
    server_dir = rec.host.source if server_script else None
    if server_script:
        store.write_atomic(os.path.join(inv.dir, serverscript.SERVER_SH), server_script, owner,
                           0o755)
    for job_rec in rec.jobs:
        job = job_rec.plan
        store.write_atomic(os.path.join(record.job_folder(job).artifacts,
                                        plan_mod.RUN_CONFIG_NAME),
                           yaml.safe_dump(job.run_config, sort_keys=False), owner)
        store.write_atomic(os.path.join(job.job_dir, scripts.RUN_SH),
                           scripts.render_job_script(
                               job_rec, server_dir,
                               prepared.loaded.config.execution.auto_export.destinations),
                           owner, 0o755)
    if prepared.loaded.config.execution.type == "slurm":
        settings = slurm_settings.settings(prepared.loaded.config.execution,
                                           prepared.loaded.source)
        embedded = in_job_server(rec, waiter_image(inv), {})
        for job_rec in rec.jobs:
            store.write_atomic(os.path.join(job_rec.plan.job_dir, slurm_script.RUN_SUB),
                               run_sub(job_rec, settings, embedded), owner, 0o755)
    all_script = scripts.render_all_script(inv.invocation_id, rec.jobs, server_dir)
    for name in scripts.RUN_ALL:
        store.write_atomic(os.path.join(inv.dir, name), all_script, owner, 0o755)
    record.write(inv.dir, rec, owner)


def run_sub(job: record.JobRecord, settings: slurm_settings.SlurmSettings,
            server: slurm_script.InJobServer | None = None) -> str:
    """The batch script the Slurm backend submits for this job (``sbatch run.sub`` reruns it)."""
    return slurm_script.render_run_sub(job.container, settings, job.host_dir.source,
                                       f"job {job.job_id} (task {job.task})", server=server)


def probe_endpoint(backend: Backend, prepared: Prepared, labels: Mapping[str, str],
                   key_file: list[MountSpec]) -> None:
    """Fail fast on a dead endpoint or an unknown model, before any task starts (``key_file``:
    the jobs' mount of api_key_file, which the probe reads too)."""
    config = prepared.loaded.config
    ep = config.target.api_endpoint
    inv = prepared.invocation
    job = inv.jobs[0]
    image = next((j.image for j in inv.jobs if j.entrypoint == "launcher"), None)
    if image is None:
        return  # only third-party images: they cannot run our probe
    timeout = config.execution.readiness_timeout(deployed=False)
    args = ["probe-endpoint", "--url", ep.url, "--model-id", ep.model_id, "--timeout",
            str(timeout)]
    if ep.api_key_name:
        args += ["--api-key-name", ep.api_key_name]
    if key_file:
        args += ["--api-key-file", key_file[0].target]
    spec = probe_spec(image, inv.invocation_id, args, ep.api_key_name, job, labels, key_file)
    values = prepared.env_values[job.job_id]
    env = {k: v for k, v in values.items() if k == ep.api_key_name}
    code, output = backend.run_to_end(spec, env, timeout + 30)
    lines = output.strip().splitlines()
    line = lines[-1] if lines else ""
    if code == 2:
        raise ConfigError(line, source=prepared.loaded.source, key="target.api_endpoint.model_id")
    if code != 0:
        raise EnvironmentProblem(line or f"endpoint probe failed (exit {code})")


def start_supervisor(backend: Backend, inv: plan_mod.Invocation, translator: PathTranslator,
                     environ: Mapping[str, str], only: set[str] | None = None) -> None:
    """Hand the jobs (all, or ``only`` these) to a supervisor container that outlives this
    launcher: it sees the output folder at the same path as we do, talks to the same engine,
    gets the env values on its stdin (never on disk, not in its Env) and our
    ``EVAL_LAUNCHER_LABELS``."""
    from launcher.catalog import harness_image

    if backend.name == "slurm":
        _supervise_here(inv, environ, only)
        return
    mounts = [MountSpec(inv.output_dir, translator.to_host(inv.output_dir))]
    env: dict[str, str] = {}
    docker_host = os.environ.get("DOCKER_HOST", "")
    if docker_host and not docker_host.startswith("unix://"):
        env["DOCKER_HOST"] = docker_host
    else:
        socket_path = docker_host.removeprefix("unix://") or "/var/run/docker.sock"
        mounts.append(MountSpec("/var/run/docker.sock", translator.to_host(socket_path)))
    if os.environ.get(labels_mod.LABELS_ENV):
        env[labels_mod.LABELS_ENV] = os.environ[labels_mod.LABELS_ENV]
    jobs = [job for job in inv.jobs if only is None or job.job_id in only]
    groups = [job.env for job in jobs] + ([inv.server.env] if inv.server else [])
    for group in groups:  # fails before anything starts if a variable is unset
        envvars.resolve(group, environ, source=inv.dir)
        for var in group:  # host variables by their HOST names, as the supervisor reads them
            if var.host_name and var.host_name in environ:  # runtime: ones may be unset
                env[var.host_name] = environ[var.host_name]
    image = next((j.image for j in inv.jobs if j.entrypoint == "launcher"), None)
    args = ["supervise", "--env-stdin", inv.dir]
    if only is not None:
        args += ["--only", ",".join(sorted(only))]
    spec = supervisor_spec(image or harness_image(), inv.invocation_id, args, mounts,
                           sorted(env), labels_mod.extra_labels(os.environ))
    backend.start(spec, env)


def _supervise_here(inv: plan_mod.Invocation, environ: Mapping[str, str],
                    only: set[str] | None) -> None:
    """A detached Slurm invocation: a ``launcher supervise`` process on this machine follows
    the jobs (the env values reach it in its environment, in memory only)."""
    import subprocess

    args = [sys.executable, "-m", "launcher", "supervise", inv.dir]
    if only is not None:
        args += ["--only", ",".join(sorted(only))]
    subprocess.Popen(args, env={**os.environ, **environ}, stdin=subprocess.DEVNULL,
                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                     start_new_session=True)


def summary(inv: plan_mod.Invocation, where: str) -> str:
    from launcher.status import job_status

    rows: list[tuple[str, ...]] = []
    for job in inv.jobs:
        folder = record.job_folder(job)
        state = job_status(job.job_id, job.task, folder, None, launcher_alive=False).state
        scores: list[report.Score | None] = [*report.read_scores(folder.artifacts)] or [None]
        for s in scores:
            rows.append((job.task, state, s.metric if s else "-",
                         f"{s.value:.4f}" if s else "-",
                         f"{s.stderr:.4f}" if s and s.stderr is not None else "-",
                         str(s.count) if s and s.count is not None else "-"))
    table = report.format_table(rows, ("task", "state", "metric", "value", "stderr", "n"))
    return f"{table}\nresults: {where}"
