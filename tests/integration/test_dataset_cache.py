"""A run whose gsm8k task has no data, offline and with an empty dataset cache: one line naming
the key and a pasteable fix, exit 3, nothing written and no container started (the plain CLI
on the host, real engine)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import ours

pytestmark = pytest.mark.integration


def test_run_offline_without_cached_gsm8k_exits_3_before_anything_starts(tmp_path: Path,
                                                                        docker_client):
    out = tmp_path / "out"
    out.mkdir()
    config = tmp_path / "eval.yaml"
    config.write_text(yaml.safe_dump({
        "execution": {"output_dir": str(out)},
        "target": {"api_endpoint": {"url": "http://127.0.0.1:9/v1/chat/completions",
                                    "model_id": "m"}},
        "evaluation": {"tasks": [{"name": "humaneval"}, {"name": "gsm8k"}]}}))
    cache = tmp_path / "cache"
    env = {**os.environ, "EVAL_LAUNCHER_CACHE": str(cache),
           "EVAL_LAUNCHER_GSM8K_URL": "http://127.0.0.1:9/test.jsonl"}
    env.pop("GSM8K_DATA_DIR", None)
    mine = ours("eval-launcher.invocation")  # this test session's (other sessions run too)
    before = {c.id for c in docker_client.containers.list(all=True, filters=mine)}
    proc = subprocess.run([sys.executable, "-m", "launcher", "run", "-c", str(config)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 3, proc.stderr
    (line,) = proc.stderr.splitlines()
    assert line.startswith(f"error: {config}, key 'evaluation.tasks[1].dataset_dir': GSM8K is"
                           f" not in the dataset cache {cache} and cannot be fetched")
    assert line.endswith("-o evaluation.tasks.1.dataset_dir=/path/to/gsm8k")
    assert list(out.iterdir()) == []
    assert {c.id for c in docker_client.containers.list(all=True, filters=mine)} == before
    # --dry-run never downloads: it plans without the cache.
    dry = subprocess.run([sys.executable, "-m", "launcher", "run", "--dry-run", "-c",
                          str(config)], capture_output=True, text=True, env=env, timeout=120)
    assert dry.returncode == 0, dry.stderr
    assert not cache.exists() or not list(cache.rglob("*.jsonl"))
