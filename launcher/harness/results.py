"""Write results.yml (eval-factory shape) and samples.jsonl, each atomically."""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

RESULTS_FILE = "results.yml"
SAMPLES_FILE = "samples.jsonl"


def mean_and_stderr(scores: Sequence[int | float]) -> tuple[float, float]:
    """Mean and its standard error sqrt(p(1-p)/(n-1)) (0 when n < 2)."""
    n = len(scores)
    if n == 0:
        return 0.0, 0.0
    p = sum(scores) / n
    stderr = math.sqrt(p * (1 - p) / (n - 1)) if n > 1 else 0.0
    return p, stderr


def results_document(
    task: str,
    metric: str,
    scores: Sequence[int | float],
    config: dict[str, Any],
    model_id: str,
    url: str,
) -> dict[str, Any]:
    value, stderr = mean_and_stderr(scores)
    score = {"value": value, "stats": {"count": len(scores), "stderr": stderr}}
    return {
        "config": config,
        "target": {"api_endpoint": {"model_id": model_id, "url": url}},
        "results": {"tasks": {task: {"metrics": {metric: {"scores": {metric: score}}}}}},
    }


def write_results(output_dir: str | os.PathLike[str], document: dict[str, Any]) -> Path:
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return atomic_write(Path(output_dir) / RESULTS_FILE, text)


def write_samples(output_dir: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return atomic_write(Path(output_dir) / SAMPLES_FILE, text)


def atomic_write(path: Path, text: str) -> Path:
    """Write via a temp file in the same dir + os.replace, so readers never see half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
