"""``launcher run``: config → plan → files on the output volume → sibling containers → scores."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import attrs
import yaml

from launcher import plan as plan_mod
from launcher import report, scripts, store
from launcher.errors import ConfigError
from launcher.hostpaths import HostSource, PathTranslator, read_own_container_id
from launcher.prepare import ConfigOptions, Prepared, prepare

if TYPE_CHECKING:
    from launcher.executor import Engine


@attrs.frozen
class HostView:
    """Where everything of one invocation is, as the HOST engine sees it."""

    invocation: HostSource
    jobs: list[HostSource]
    mounts: list[list[HostSource]]
    user: str | None


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
        host_output_dir: str | None) -> int:
    prepared = prepare(options, tasks)
    inv = prepared.invocation
    owner = store.owner_of(inv.output_dir)
    if dry_run:
        print(dry_run_text(prepared, owner, host_output_dir))
        return 0

    from launcher.executor import Engine  # the Docker SDK, only when needed

    engine = Engine()
    images = {image: engine.image_id(image) for image in sorted({j.image for j in inv.jobs})}
    view = host_view(prepared, engine.path_translator(inv.output_dir, host_output_dir), owner,
                     engine.rootless)
    write_invocation(prepared, view, images, owner)
    print(f"invocation {inv.invocation_id}: {view.invocation.describe()}", file=sys.stderr)
    codes = execute(engine, prepared, view, owner)
    if codes is None:
        return 130
    print(summary(inv, codes, view.invocation))
    return 0 if all(code == 0 for code in codes.values()) else 1


def write_invocation(prepared: Prepared, view: HostView, images: dict[str, str],
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
    store.write_json(os.path.join(inv.dir, "invocation.json"),
                     store.invocation_record(inv, prepared.loaded.raw, images,
                                             view.invocation.source), owner)


def _terminate(signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def execute(engine: Engine, prepared: Prepared, view: HostView,
            owner: store.Owner) -> dict[str, int] | None:
    """Run the jobs (sequential, or bounded-parallel); None when interrupted."""
    from launcher.executor import echo_stderr

    inv = prepared.invocation
    execution = prepared.loaded.config.execution
    workers = execution.max_parallel if execution.mode == "parallel" else 1
    codes: dict[str, int] = {}
    lock = threading.Lock()

    def one(index: int) -> None:
        job = inv.jobs[index]
        name = f"{job.task}.{job.index}"
        started = time.monotonic()
        print(f"[{name}] starting {job.image}", file=sys.stderr, flush=True)
        try:
            code = engine.run_job(job, view.mounts[index], prepared.env_values[job.job_id],
                                  owner, echo=echo_stderr(name))
        except Exception as exc:  # one job's failure must not stop the others
            print(f"[{name}] failed to run: {exc}", file=sys.stderr, flush=True)
            code = 125
        with lock:
            codes[job.job_id] = code
        print(f"[{name}] exit {code} after {time.monotonic() - started:.1f}s", file=sys.stderr,
              flush=True)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="job")
    try:
        futures = [pool.submit(one, i) for i in range(len(inv.jobs))]
        for future in futures:
            future.result()
    except KeyboardInterrupt:
        pool.shutdown(wait=False, cancel_futures=True)
        engine.stop_invocation(inv.invocation_id)
        print(f"interrupted: stopped the containers of invocation {inv.invocation_id}",
              file=sys.stderr)
        return None
    pool.shutdown()
    return codes


def summary(inv: plan_mod.Invocation, codes: dict[str, int], inv_host: HostSource) -> str:
    rows = []
    for job in inv.jobs:
        state = "success" if codes.get(job.job_id) == 0 else "failed"
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
    from launcher.errors import EnvironmentProblem

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
