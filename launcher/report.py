"""Scores: read each job's ``results.yml`` (reference shape) and format a table. No Docker."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import attrs
import yaml

from launcher import safe_fs
from launcher.errors import LauncherError


@attrs.frozen
class Score:
    task: str
    metric: str
    score: str
    value: float
    stderr: float | None
    count: int | None


def read_scores(artifacts_dir: str) -> list[Score]:
    """The scores of ``results.yml`` in ``artifacts_dir``; [] when it is missing, unreadable or
    not of the harness's shape (the folder is writable by others: nothing here may raise)."""
    data = _load_results(artifacts_dir)
    scores = []
    for task, body in _mapping(_mapping(_mapping(data).get("results")).get("tasks")).items():
        for metric, mbody in _mapping(_mapping(body).get("metrics")).items():
            for name, sbody in _mapping(_mapping(mbody).get("scores")).items():
                stats = _mapping(_mapping(sbody).get("stats"))
                value = _mapping(sbody).get("value")
                if isinstance(value, int | float) and not isinstance(value, bool):
                    stderr: Any = stats.get("stderr")
                    count: Any = stats.get("count")
                    scores.append(Score(
                        str(task), str(metric), str(name), float(value),
                        float(stderr) if _number(stderr) else None,
                        int(count) if isinstance(count, int) and _number(count) else None))
    return scores


def read_request_stats(artifacts_dir: str) -> dict[str, dict[str, Any]]:
    """``request_stats`` of each task in ``results.yml`` (see harness/stats.py), by task; {}
    when there are none or the file is missing or not of the harness's shape."""
    tasks = _mapping(_mapping(_mapping(_load_results(artifacts_dir)).get("results")).get("tasks"))
    return {str(task): stats for task, body in tasks.items()
            if (stats := _mapping(_mapping(body).get("request_stats")))}


def _load_results(artifacts_dir: str) -> Any:
    """The parsed ``results.yml`` in ``artifacts_dir``, None when it is missing or unreadable."""
    from launcher import yamlfile

    path = os.path.join(artifacts_dir, "results.yml")
    try:  # never through a link planted there (see safe_fs.open_read), bounded YAML
        with safe_fs.open_read(path) as fh:
            text = fh.read(yamlfile.MAX_BYTES + 1).decode("utf-8")
        return yamlfile.load(text, path)
    except (OSError, LauncherError, ValueError, yaml.YAMLError, RecursionError):
        return None


def _mapping(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def format_table(rows: Sequence[Sequence[object]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    return "\n".join(lines)
