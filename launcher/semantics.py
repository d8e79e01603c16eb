"""Checks of a structured ``Config`` that the schema alone cannot express: allowed values
(URL scheme, endpoint type, executor, mode), at least one task, env var names, and the shape of
each ``nemo_evaluator_config`` block. Each problem is one ``ConfigError`` at the key as written.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from launcher import deployment, exportopts, keypaths, taskparams
from launcher.errors import ConfigError

if TYPE_CHECKING:
    from launcher.config import Config


def check(config: Config, source: str) -> None:
    """What the schema alone cannot say: allowed values, and the task params' blocks."""
    ep = config.target.api_endpoint
    if not ep.url.startswith(("http://", "https://")):
        raise ConfigError(
            f"expected an http(s) URL of an OpenAI-compatible endpoint, got '{ep.url}'",
            source=source,
            key="target.api_endpoint.url",
        )
    if ep.type not in ("chat", "completions"):
        raise ConfigError(
            f"expected 'chat' or 'completions', got '{ep.type}'",
            source=source,
            key="target.api_endpoint.type",
        )
    if config.execution.type not in ("local", "slurm"):
        raise ConfigError(
            f"expected 'local' (this Docker host) or 'slurm', got '{config.execution.type}'",
            source=source,
            key="execution.type",
        )
    from launcher import slurm_settings

    if config.execution.type == "slurm":
        slurm_settings.settings(config.execution, source)
    else:
        slurm_settings.check_local(config.execution, source)
    deployment.check(config.deployment, source, config.execution, config.evaluation.tasks)
    if ep.api_key_file is not None and ep.api_key_name:
        raise ConfigError("api_key_name and api_key_file are both set: keep one (the key comes "
                          "from the variable, or from the file mounted read-only)",
                          source=source, key="target.api_endpoint.api_key_file")
    if config.execution.max_parallel < 1:
        raise ConfigError(f"expected a positive integer, got {config.execution.max_parallel}",
                          source=source, key="execution.max_parallel")
    if config.execution.mode not in ("sequential", "parallel"):
        raise ConfigError(
            f"expected 'sequential' or 'parallel', got '{config.execution.mode}'",
            source=source,
            key="execution.mode",
        )
    if not config.evaluation.tasks:
        raise ConfigError(
            "no tasks: list at least one, e.g. tasks: [{name: gsm8k}]",
            source=source,
            key="evaluation.tasks",
        )
    check_export(config, source)
    taskparams.check_blocks(config.evaluation.nemo_evaluator_config,
                            ["evaluation", "nemo_evaluator_config"], source=source)
    for i, task in enumerate(config.evaluation.tasks):
        if task.endpoint_type is not None and task.endpoint_type not in ("chat", "completions"):
            raise ConfigError(f"expected 'chat' or 'completions', got '{task.endpoint_type}' (or "
                              "remove it: the task then uses target.api_endpoint.type)",
                              source=source, key=f"evaluation.tasks[{i}].endpoint_type")
        taskparams.check_blocks(task.nemo_evaluator_config,
                                ["evaluation", "tasks", i, "nemo_evaluator_config"], source=source)
        scopes: list[tuple[list[keypaths.Part], dict[str, str]]] = [
            (["env_vars"], config.env_vars),
            (["evaluation", "env_vars"], config.evaluation.env_vars),
            (["evaluation", "tasks", i, "env_vars"], task.env_vars)]
        for scope, env in scopes:
            for name in env:
                if not name.isidentifier():
                    raise ConfigError(f"'{name}' is not a valid environment variable name",
                                      source=source, key=keypaths.render([*scope, name]))


def check_export(config: Config, source: str) -> None:
    """``execution.auto_export.destinations`` names exporters that exist, and every
    ``export.<dest>`` block has only that exporter's keys, in shapes it takes."""
    for i, dest in enumerate(config.execution.auto_export.destinations):
        if dest not in exportopts.KEYS:
            raise ConfigError(exportopts.unknown_dest(dest), source=source,
                              key=f"execution.auto_export.destinations[{i}]")
    for dest, section in config.export.items():
        exportopts.from_section(str(dest), section, source)
