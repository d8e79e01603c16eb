"""The task registry: task name (``config.type``) -> task, built with ``config.params.extra``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from launcher.errors import ConfigError
from launcher.harness.tasks.base import Item, Scored, Task
from launcher.harness.tasks.custom import CustomTask
from launcher.harness.tasks.gsm8k import Gsm8kTask
from launcher.harness.tasks.humaneval import HumanEvalTask
from launcher.harness.tasks.mmlu import MmluTask

TASKS: dict[str, Callable[[Mapping[str, Any] | None], Task]] = {
    "custom": CustomTask,
    "gsm8k": Gsm8kTask,
    "humaneval": HumanEvalTask,
    "mmlu": MmluTask,
}

__all__ = ["TASKS", "Item", "Scored", "Task", "get_task"]


def get_task(name: str, params: Mapping[str, Any] | None = None) -> Task:
    """The task ``name`` configured by ``params`` (``config.params.extra``); ConfigError if the
    name is unknown or a param is wrong."""
    try:
        factory = TASKS[name]
    except KeyError:
        known = ", ".join(sorted(TASKS))
        message = f"unknown task {name!r}; this harness runs: {known}"
        raise ConfigError(message, key="config.type") from None
    return factory(params)
