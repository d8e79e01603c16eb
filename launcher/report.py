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
    path = os.path.join(artifacts_dir, "results.yml")
    try:  # never through a link planted there (see safe_fs.open_read)
        with safe_fs.open_read(path) as fh:
            data: Any = yaml.safe_load(fh) or {}
    except (OSError, LauncherError, ValueError, yaml.YAMLError):
        return []
    scores = []
    tasks = ((data.get("results") or {}).get("tasks") or {}) if isinstance(data, dict) else {}
    for task, body in tasks.items():
        for metric, mbody in ((body or {}).get("metrics") or {}).items():
            for name, sbody in ((mbody or {}).get("scores") or {}).items():
                stats = (sbody or {}).get("stats") or {}
                value = (sbody or {}).get("value")
                if isinstance(value, int | float):
                    scores.append(Score(task, metric, name, float(value), stats.get("stderr"),
                                        stats.get("count")))
    return scores


def format_table(rows: Sequence[Sequence[object]], header: tuple[str, ...]) -> str:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
             for row in [header, *rows]]
    return "\n".join(lines)
