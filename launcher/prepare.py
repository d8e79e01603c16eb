"""From command-line options to a checked plan: locate and load the config, pick tasks, plan,
and resolve env values from the host. Shared by ``run``, ``run --dry-run`` and ``config``.
No Docker; nothing is written except the dataset cache (``with_dataset_cache`` in a real run)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import attrs

from launcher import config as config_mod
from launcher import dataset_cache, dotenv, hooks, plan
from launcher.config import Config
from launcher.envvars import resolve
from launcher.errors import ConfigError
from launcher.hostpaths import read_own_container_id


@attrs.frozen
class ConfigOptions:
    config: str | None = None
    config_dir: str | None = None
    config_name: str | None = None
    overrides: tuple[str, ...] = ()
    env_file: str | None = None


@attrs.frozen
class Loaded:
    source: str
    config: Config
    raw: dict[str, Any]
    environ: dict[str, str]


@attrs.frozen
class Prepared:
    loaded: Loaded
    invocation: plan.Invocation
    env_values: dict[str, dict[str, str]]  # job id → values for the engine (memory only)


def load(options: ConfigOptions) -> Loaded:
    path = config_mod.locate(options.config, options.config_dir, options.config_name)
    environ = dotenv.host_environment(path, options.env_file)
    config, raw = config_mod.load_config(path, options.overrides, environ)
    return Loaded(path or "<built-in defaults>", config, raw, environ)


def select_tasks(loaded: Loaded, names: Sequence[str]) -> Loaded:
    """``-t/--task NAME`` (repeatable): keep only these configured tasks, in config order."""
    if not names:
        return loaded
    tasks = loaded.config.evaluation.tasks
    configured = [t.name for t in tasks]
    for name in names:
        if name not in configured and not any(c.endswith(f".{name}") for c in configured):
            raise ConfigError(f"--task {name} is not in the config (configured: "
                              f"{', '.join(configured)})", source=loaded.source,
                              key="evaluation.tasks")
    keep = [t for t in tasks if t.name in names or t.name.rsplit(".", 1)[-1] in names]
    evaluation = attrs.evolve(loaded.config.evaluation, tasks=keep)
    return attrs.evolve(loaded, config=attrs.evolve(loaded.config, evaluation=evaluation))


def check_output_dir(path: str, source: str) -> None:
    """The output folder (or the ancestor it will be created in) must be a writable folder."""
    probe = path
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe) or not os.access(probe, os.W_OK | os.X_OK):
        what = "is not a folder" if not os.path.isdir(probe) else "is not writable"
        raise ConfigError(f"output folder {path} cannot be created: {probe} {what}; choose "
                          "another execution.output_dir", source=source,
                          key="execution.output_dir")


def prepare(options: ConfigOptions, tasks: Sequence[str] = (), *,
            running: bool = False) -> Prepared:
    """``running``: for a real run (pre_cmd/post_cmd without the trust switch refused, where a
    dry run or a validation only notes it)."""
    loaded = select_tasks(load(options), tasks)
    invocation = plan.build(loaded.config, source=loaded.source)
    hooks.check(loaded.config, source=loaded.source, running=running,
                in_container=read_own_container_id() is not None)
    check_output_dir(invocation.output_dir, loaded.source)
    return _resolved(loaded, invocation)


def with_dataset_cache(prepared: Prepared, *, download: bool) -> Prepared:
    """The same plan, with the dataset cache's folder as the data of each built-in task that
    has none (see :mod:`launcher.dataset_cache`). ``download``: fetch what the cache lacks
    (exit 3 when it cannot: real runs); else use only what it already holds (dry runs)."""
    loaded = prepared.loaded
    config = dataset_cache.fill(loaded.config, source=loaded.source, download=download)
    if config is loaded.config:
        return prepared
    loaded = attrs.evolve(loaded, config=config)
    inv = prepared.invocation
    invocation = plan.build(config, source=loaded.source, invocation_id=inv.invocation_id,
                            now=datetime.fromisoformat(inv.created))
    return _resolved(loaded, invocation)


def _resolved(loaded: Loaded, invocation: plan.Invocation) -> Prepared:
    env_values = {job.job_id: resolve(job.env, loaded.environ, source=loaded.source)
                  for job in invocation.jobs}
    return Prepared(loaded, invocation, env_values)
