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

External harnesses validate their own params in their images: of theirs only
``limit_samples`` is checked (a positive integer or null). For every task, ``check_blocks``
makes sure the blocks of a ``nemo_evaluator_config`` that the launcher itself merges into
(``config``, ``config.params``, ``target``, ``target.api_endpoint``) are mappings.
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
        got = ("nothing (the key is empty): give it keys or remove it" if value is None
               else _shown(value))
        raise ConfigError(f"expected a mapping, got {got}", source=source,
                          key=keypaths.render([*where, *block]))


def check(run_config: Mapping[str, Any], task: str, *, builtin: bool,
          task_config: Mapping[str, Any], evaluation_config: Mapping[str, Any], index: int,
          source: str) -> None:
    """Task ``index``'s run config: a built-in task's parsed as the harness will, an external
    one's ``limit_samples`` (the one param the launcher reads the same way for every harness);
    a ConfigError at the user's key. ``task_config``/``evaluation_config``: the task's and the
    evaluation's ``nemo_evaluator_config`` (to tell which one a bad value came from)."""
    try:
        if builtin:
            _harness_check(run_config, task)
        else:
            _limit_check(run_config)
    except ConfigError as exc:
        key = (keypaths.where_set(task_config, evaluation_config, index, exc.key)
               if exc.key else None)
        raise ConfigError(exc.detail, source=source, key=key) from None


def _harness_check(run_config: Mapping[str, Any], task: str) -> None:
    from launcher.harness.runconfig import parse_run_config
    from launcher.harness.tasks import get_task

    parsed = parse_run_config(dict(run_config), warn=lambda _message: None)
    get_task(task, parsed.params.extra)


def _limit_check(run_config: Mapping[str, Any]) -> None:
    found, limit = keypaths.lookup(run_config, ("config", "params", "limit_samples"))
    bad = isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
    if found and limit is not None and bad:
        raise ConfigError(f"expected a positive integer or null, got {_shown(limit)}",
                          key="config.params.limit_samples")


def _shown(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
