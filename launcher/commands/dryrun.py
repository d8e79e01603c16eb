"""``launcher run --dry-run``: the resolved config, the plan (each job's ContainerSpec as the
backend would get it) and the generated scripts. Nothing is written or started; env values
never appear (scripts and plan name the variables)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import yaml

from launcher import autoexport, record, scripts, store
from launcher.errors import EnvironmentProblem
from launcher.hostpaths import PathTranslator, output_overrides, read_own_container_id
from launcher.prepare import Prepared


def _translator(output_dir: str, host_output_dir: str | None) -> tuple[PathTranslator, bool,
                                                                        str]:
    """Host paths without starting anything: identity on a host; self-inspection (read-only
    engine calls) inside a container; launcher-side paths with a note if it is unreachable."""
    if read_own_container_id() is None:
        return PathTranslator(container_id=None,
                              overrides=output_overrides(output_dir, host_output_dir)), False, ""
    try:
        from launcher.backends import connect

        backend = connect()
        return backend.path_translator(output_dir, host_output_dir), backend.rootless, ""
    except EnvironmentProblem as exc:
        note = f"# host paths unknown ({exc.message}); showing paths as the launcher sees them"
        return PathTranslator(container_id=None), False, note


def dry_run_text(prepared: Prepared, owner: store.Owner, host_output_dir: str | None,
                 labels: Mapping[str, str]) -> str:
    inv = prepared.invocation
    translator, rootless, note = _translator(inv.output_dir, host_output_dir)
    user = None if rootless else owner.user
    host, jobs = record.resolve_jobs(inv, translator, user, dict(labels))
    plan_jobs = []
    for job in jobs:
        spec = job.container
        plan_jobs.append({
            "job_id": job.job_id,
            "task": job.task,
            "image": spec.image,
            "command": [spec.entrypoint, *spec.command] if spec.entrypoint else list(
                spec.command),
            "mounts": [f"{m.source.describe()}:{m.target}{':ro' if m.read_only else ''}"
                       for m in spec.mounts],
            "env": job.env_names,
            "user": spec.user,
            "labels": spec.labels,
        })
    server = record.resolve_server(inv, translator, dict(labels))
    plan_server = None
    if server is not None:
        sspec = server.container
        plan_server = {
            "type": server.plan.type, "name": sspec.name, "image": sspec.image,
            "command": [sspec.entrypoint or "", *sspec.command],
            "mounts": [f"{m.source.describe()}:{m.target}{':ro' if m.read_only else ''}"
                       for m in sspec.mounts],
            "env": server.env_names, "gpus": server.plan.gpus, "network": sspec.network,
            "health": server.plan.health_url,
            "readiness_timeout": server.plan.readiness_timeout, "labels": sspec.labels}
    rec = record.build(inv, host, jobs, {}, {}, None, record.Execution(), server=server)
    from launcher.commands.run import waiter_image
    from launcher.serverscript import SERVER_SH, render_server_script

    server_script = render_server_script(rec, waiter_image(inv))
    server_dir = host.source if server_script else None
    dests = prepared.loaded.config.execution.auto_export.destinations
    rendered = {f"{job.host_dir.describe()}/{scripts.RUN_SH}": scripts.render_job_script(
        job, server_dir, dests) for job in jobs}
    exports = autoexport.describe(store.redact(prepared.loaded.raw))
    if server_script:
        rendered[f"{host.describe()}/{SERVER_SH}"] = server_script
    if prepared.loaded.config.execution.type == "slurm":  # what sbatch would be given
        from launcher import slurm_settings
        from launcher.commands.run import in_job_server, run_sub
        from launcher.slurm_script import RUN_SUB

        settings = slurm_settings.settings(prepared.loaded.config.execution,
                                           prepared.loaded.source)
        embedded = in_job_server(rec, waiter_image(inv), {})
        for job in jobs:
            rendered[f"{job.host_dir.describe()}/{RUN_SUB}"] = run_sub(job, settings, embedded)
    all_script = scripts.render_all_script(inv.invocation_id, jobs, server_dir)
    for name in scripts.RUN_ALL:
        rendered[f"{host.describe()}/{name}"] = all_script
    document = {"config": store.redact(prepared.loaded.raw),
                "plan": {"invocation_id": inv.invocation_id, "dir": host.describe(),
                         **({"server": plan_server} if plan_server else {}),
                         "jobs": plan_jobs,
                         **({"auto_export": exports} if exports else {})},
                "scripts": rendered}
    return (f"{note}\n" if note else "") + dump_yaml(document)


class _BlockDumper(yaml.SafeDumper):
    """Multi-line strings (scripts) as readable ``|`` blocks."""


_BlockDumper.add_representer(str, lambda dumper, text: dumper.represent_scalar(
    "tag:yaml.org,2002:str", text, style="|" if "\n" in text else None))


def dump_yaml(document: Any) -> str:
    return yaml.dump(document, Dumper=_BlockDumper, sort_keys=False, width=100).rstrip()
