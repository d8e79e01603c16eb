"""Built-in task params checked when the config is validated (``config validate``, ``run``,
``run --dry-run``), by the harness's own code, so a value the harness would reject inside the
container (``parallelism: -3``, ``request_timeout: "1h"``, ``temperature: 5``, humaneval
``n_samples: 0``, ``k: [5]`` with fewer samples) fails before anything starts, with the
message the harness gives.

The checks are not repeated here: the job's run config (what the container reads) goes
through ``launcher.harness.runconfig.parse_run_config`` and the task's own params parser
(``launcher.harness.tasks.get_task``). Their key (``config.params.parallelism``) becomes the
key the user wrote (``evaluation.nemo_evaluator_config.config.params.parallelism``, or the
task's own ``evaluation.tasks[i].nemo_evaluator_config...`` when the task sets it).

External harnesses validate their own params in their images: only built-in tasks are checked
by the harness's parser. For every task, ``check_blocks`` makes sure the blocks of a
``nemo_evaluator_config`` that the launcher itself merges into (``config``, ``config.params``,
``target``, ``target.api_endpoint``) are mappings.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from launcher import keypaths
from launcher.errors import ConfigError
from launcher.keypaths import Part

_BLOCKS = (("config",), ("config", "params"), ("target",), ("target", "api_endpoint"))


def check_blocks(evaluator_config: Mapping[str, Any], where: list[Part], *, source: str) -> None:
    """A ``nemo_evaluator_config`` (at ``where``) whose ``config``/``config.params``/``target``/
    ``target.api_endpoint`` is set to something other than a mapping: a ConfigError there."""
    for block in _BLOCKS:
        found, value = keypaths.lookup(evaluator_config, block)
        if not found or isinstance(value, Mapping):
            continue
        text = repr(value)
        got = ("nothing (the key is empty): give it keys or remove it" if value is None
               else f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}")
        raise ConfigError(f"expected a mapping, got {got}", source=source,
                          key=keypaths.render([*where, *block]))


def check(run_config: Mapping[str, Any], task: str, *, task_config: Mapping[str, Any],
          evaluation_config: Mapping[str, Any], index: int, source: str) -> None:
    """Parse task ``index``'s run config as the harness will; a ConfigError at the user's key.
    ``task_config``/``evaluation_config``: the task's and the evaluation's
    ``nemo_evaluator_config`` (to tell which one a bad value came from)."""
    from launcher.harness.runconfig import parse_run_config
    from launcher.harness.tasks import get_task

    try:
        parsed = parse_run_config(dict(run_config), warn=lambda _message: None)
        get_task(task, parsed.params.extra)
    except ConfigError as exc:
        key = (keypaths.where_set(task_config, evaluation_config, index, exc.key)
               if exc.key else None)
        raise ConfigError(exc.detail, source=source, key=key) from None
