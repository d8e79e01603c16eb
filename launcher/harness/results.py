"""Write results.yml (eval-factory shape) and samples.jsonl, each atomically.

results.yml::

    config: {type, output_dir, params: {...}}          # the parsed run config, defaults filled
    target: {api_endpoint: {model_id, url}}
    results:
      tasks:
        <task>:
          metrics:
            <metric>:                                  # the first metric is the headline
              scores:
                <score>: {value, stats: {count, stderr}}
          request_stats: {...}                         # when the run tracked them (stats.py)
      groups:                                          # only for tasks with parts (MMLU)
        <task>:
          metrics: {...as above...}
          groups:
            <part>: {metrics: {...}}

samples.jsonl: one line per response: ``id``, ``prompt`` (the messages for chat endpoints, the
prompt text for completions), ``response``, ``score``, ``target``, ``sample`` (its index, only
when a task asks for several responses per item) and the task's details (``extracted``,
``reason``...).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from launcher import safe_fs
from launcher.harness.client import completion_prompt
from launcher.harness.scoring import Score, Summary
from launcher.harness.tasks.base import Item, Scored

RESULTS_FILE = "results.yml"
SAMPLES_FILE = "samples.jsonl"


def results_document(
    task: str,
    summary: Summary,
    config: dict[str, Any],
    model_id: str,
    url: str,
    request_stats: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"metrics": _metrics(summary)}
    if request_stats:
        body["request_stats"] = request_stats
    results: dict[str, Any] = {"tasks": {task: body}}
    if summary.groups:
        results["groups"] = {task: _group(summary)}
    document: dict[str, Any] = {
        "config": config,
        "target": {"api_endpoint": {"model_id": model_id, "url": url}},
        "results": results,
    }
    if metadata:
        document["user_provided_metadata"] = metadata
    return document


def _metrics(summary: Summary) -> dict[str, Any]:
    return {
        metric: {"scores": {name: _score(score) for name, score in scores.items()}}
        for metric, scores in summary.metrics.items()
    }


def _score(score: Score) -> dict[str, Any]:
    return score.as_dict()


def _group(summary: Summary) -> dict[str, Any]:
    body: dict[str, Any] = {"metrics": _metrics(summary)}
    if summary.groups:
        body["groups"] = {name: _group(part) for name, part in summary.groups.items()}
    return body


def headline(task: str, summary: Summary) -> str:
    """The last stdout line: ``<task> <metric>=<value> (n=<count>)``."""
    metric, _, score = summary.headline
    return f"{task} {metric}={score.value:.4f} (n={score.count})"


def sample_records(
    items: Sequence[Item],
    responses: Sequence[Sequence[str]],
    scored: Sequence[Sequence[Scored]],
    endpoint_type: str = "chat",
    raw_responses: Sequence[Sequence[str]] | None = None,
) -> Iterator[dict[str, Any]]:
    """samples.jsonl records, one per response (see the module docstring)."""
    for i, (item, texts, item_scores) in enumerate(zip(items, responses, scored, strict=True)):
        if endpoint_type == "chat":
            prompt: Any = item.messages
        else:
            prompt = completion_prompt(item.messages)  # as sent
        several = len(texts) > 1
        for s, (text, result) in enumerate(zip(texts, item_scores, strict=True)):
            record: dict[str, Any] = {"id": item.id}
            if several:
                record["sample"] = s
            record.update(prompt=prompt, response=text)
            raw = raw_responses[i][s] if raw_responses is not None else text
            if raw != text:
                record["raw_response"] = raw
            record.update(score=result.score, target=item.target, **result.details)
            yield record


def write_results(output_dir: str | os.PathLike[str], document: dict[str, Any]) -> Path:
    text = yaml.safe_dump(document, sort_keys=False, default_flow_style=False, allow_unicode=True)
    return atomic_write(Path(output_dir) / RESULTS_FILE, text)


def write_samples(output_dir: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> Path:
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return atomic_write(Path(output_dir) / SAMPLES_FILE, text)


def atomic_write(path: Path, text: str) -> Path:
    """Write via a temp file in the same dir + rename, so readers never see half a file; never
    through a link planted where the file goes (see :mod:`launcher.safe_fs`)."""
    safe_fs.write_atomic(str(path), text, 0o644)
    return path
