"""Finished invocations as the launcher leaves them: a real `run` against the fake engine
(invocation.json, job folders), then each job's artifacts/results.yml and samples.jsonl in
the harness's shapes. For compare, gate and export tests."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import yaml

from launcher import runs
from launcher.commands import run as run_cmd
from launcher.prepare import ConfigOptions


def write_config(tmp_path: Path, tasks: Sequence[str], model: str = "m") -> str:
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump({
        "execution": {"output_dir": str(tmp_path / "out")},
        "target": {"api_endpoint": {"url": "http://ep:8000/v1/chat/completions",
                                    "model_id": model}},
        "evaluation": {"tasks": [{"name": t} for t in tasks]},
    }))
    return str(path)


def results_yml(task: str, value: float, count: int, model: str = "m") -> dict:
    stderr = math.sqrt(value * (1 - value) / max(1, count - 1))
    return {"config": {"type": task}, "target": {"api_endpoint": {"model_id": model}},
            "results": {"tasks": {task: {"metrics": {"accuracy": {"scores": {
                "accuracy": {"value": value, "stats": {"count": count, "stderr": stderr}}}}}}}}}


def make_run(tmp_path: Path, per_task: Mapping[str, Sequence[int] | None],
             model: str = "m") -> runs.Run:
    """A finished invocation of the tasks in ``per_task`` (0/1 per item, in order; None: the
    job wrote no results). Needs the ``fake`` fixture."""
    before = {r.invocation_id for r in _all(tmp_path)}
    options = ConfigOptions(config=write_config(tmp_path, list(per_task), model))
    assert run_cmd.run(options, (), dry_run=False, host_output_dir=None, detach=False) == 0
    (run,) = [r for r in _all(tmp_path) if r.invocation_id not in before]
    for job in run.invocation().jobs:
        scores = per_task[job.task]
        if scores is None:
            continue
        artifacts = Path(job.job_dir) / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        value = sum(scores) / len(scores)
        (artifacts / "results.yml").write_text(
            yaml.safe_dump(results_yml(job.task, value, len(scores), model), sort_keys=False))
        (artifacts / "samples.jsonl").write_text("".join(
            json.dumps({"id": f"{job.task}/{i}", "prompt": [], "response": "x",
                        "score": s, "target": "y"}) + "\n" for i, s in enumerate(scores)))
    return run


def _all(tmp_path: Path) -> list[runs.Run]:
    out = tmp_path / "out"
    return runs.all_runs(str(out)) if out.exists() else []


def snapshot(folder: str) -> dict[str, bytes]:
    """Every file under ``folder`` and its bytes (to show that nothing changed)."""
    return {str(p): p.read_bytes() for p in Path(folder).rglob("*") if p.is_file()}
