"""The task registry: task name (``config.type``) -> task."""

from __future__ import annotations

from launcher.errors import ConfigError
from launcher.harness.tasks.base import Item, Scored, Task
from launcher.harness.tasks.gsm8k import Gsm8kTask
from launcher.harness.tasks.humaneval import HumanEvalTask

TASKS: dict[str, type[Task]] = {"gsm8k": Gsm8kTask, "humaneval": HumanEvalTask}

__all__ = ["TASKS", "Item", "Scored", "Task", "get_task"]


def get_task(name: str) -> Task:
    try:
        return TASKS[name]()
    except KeyError:
        known = ", ".join(sorted(TASKS))
        message = f"unknown task {name!r}; this harness runs: {known}"
        raise ConfigError(message, key="config.type") from None
