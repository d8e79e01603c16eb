"""The task catalog: which image and command run a task, and what endpoint type it needs.

Built-in tasks run in the launcher's own image (``launcher harness run_eval``). A task may pin
another image that honours the same contract through ``evaluation.tasks[].container``.
"""

from __future__ import annotations

import difflib
import os

import attrs

from launcher.errors import ConfigError

DEFAULT_IMAGE = "eval-launcher:latest"
IMAGE_ENV = "EVAL_LAUNCHER_IMAGE"  # overrides the image of the built-in tasks


@attrs.frozen
class TaskSpec:
    name: str
    harness: str
    image: str
    endpoint_types: tuple[str, ...]
    builtin: bool
    description: str = ""
    needs_dataset: bool = False

    def entrypoint(self) -> str:
        """Set explicitly, so the command does not depend on the image's ENTRYPOINT."""
        return "launcher" if self.builtin else "nemo-evaluator"

    def command(self, run_config_path: str) -> list[str]:
        if self.builtin:
            return ["harness", "run_eval", "--run_config", run_config_path]
        return ["run_eval", "--run_config", run_config_path]


def harness_image() -> str:
    return os.environ.get(IMAGE_ENV) or DEFAULT_IMAGE


def builtin_tasks() -> dict[str, TaskSpec]:
    image = harness_image()
    return {
        "humaneval": TaskSpec(
            "humaneval", "eval-launcher", image, ("chat",), True,
            "HumanEval: 164 Python problems, pass@1 by executing the model's code",
        ),
        "gsm8k": TaskSpec(
            "gsm8k", "eval-launcher", image, ("chat",), True,
            "GSM8K test split: 1319 grade-school maths problems, exact match on the final number",
            needs_dataset=True,
        ),
    }


def lookup(name: str, *, source: str, key: str) -> TaskSpec:
    tasks = builtin_tasks()
    short = name.split(".", 1)[1] if name.startswith("eval-launcher.") else name
    if short in tasks:
        return tasks[short]
    close = difflib.get_close_matches(short, list(tasks), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else (
        f"known tasks: {', '.join(sorted(tasks))}"
    )
    raise ConfigError(f"unknown task '{name}'; {hint} (list them with `launcher ls tasks`)",
                      source=source, key=key)
