"""Every example config passes ``config validate`` and ``run --dry-run`` (nothing written)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.yaml"))
ENV = {"NGC_API_KEY": "sk-example-secret", "HF_TOKEN": "hf-example-secret"}


def launcher(*args: str, cwd: Path):
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True,
                          text=True, env={**os.environ, **ENV}, cwd=cwd, timeout=60)


def test_examples_exist():
    names = {p.name for p in EXAMPLES}
    assert {"local_reference.yaml", "hosted_endpoint.yaml", "host_endpoint.yaml",
            "env_vars.yaml", "parallel.yaml"} <= names


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.name)
def test_validate_and_dry_run(example, tmp_path):
    overrides = ["-o", "target.api_endpoint.model_id=m"] if "host_endpoint" in example.name else []
    custom_index = {"custom_task.yaml": 0, "local_reference.yaml": 2}.get(example.name)
    if custom_index is not None:  # its custom dataset_dir is relative to the repo root
        overrides = ["-o", f"evaluation.tasks.{custom_index}.dataset_dir="
                           f"{example.parent / 'data' / 'custom'}"]
    proc = launcher("config", "validate", str(example), *overrides, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"ok: {example}")
    proc = launcher("run", "--config", str(example), "--dry-run", *overrides, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    document = yaml.safe_load(proc.stdout)
    assert document["plan"]["jobs"]
    for secret in ENV.values():
        assert secret not in proc.stdout + proc.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written


def test_env_vars_example_resolves_all_forms(tmp_path):
    proc = launcher("run", "--config", str(EXAMPLES[0].parent / "env_vars.yaml"), "--dry-run",
                    cwd=tmp_path)
    document = yaml.safe_load(proc.stdout)
    gsm8k = document["plan"]["jobs"][0]
    assert gsm8k["env"] == ["HF_TOKEN", "MY_HF_TOKEN=$HF_TOKEN", "LOG_LEVEL=<literal>",
                            "NGC_API_KEY"]
    script = next(v for k, v in document["scripts"].items() if k.endswith("gsm8k.0/run.sh"))
    assert '-e MY_HF_TOKEN="${HF_TOKEN}"' in script and "-e LOG_LEVEL=debug" in script
    assert document["config"]["evaluation"]["tasks"][0]["nemo_evaluator_config"]["config"][
        "params"]["limit_samples"] == 25
    assert document["config"]["execution"]["output_dir"] == "./results"


def test_reference_keys_example_reads_as_documented(tmp_path):
    """docs/reference-keys.md's example: the post_cmd is noted (not run) in a dry run, wraps
    both tasks' commands, mmlu asks its completions URL, the metadata is in the config."""
    example = EXAMPLES[0].parent / "reference_keys.yaml"
    env_without = {k: v for k, v in os.environ.items() if k != "NEMO_EVALUATOR_TRUST_PRE_CMD"}
    env_without["DOCKER_HOST"] = f"unix://{tmp_path}/nowhere.sock"  # nothing may start
    proc = subprocess.run([sys.executable, "-m", "launcher", "run", "--config", str(example),
                           "--dry-run"], capture_output=True, text=True, env=env_without,
                          cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert f"note: {example}, key 'evaluation.post_cmd': runs shell commands" in proc.stderr
    document = yaml.safe_load(proc.stdout)
    for job in document["plan"]["jobs"]:
        assert job["command"][0] == "/bin/sh" and "ls -l /results" in job["command"]
    assert document["config"]["user_provided_metadata"]["experiment"] == "ablations-0820"
    proc = subprocess.run([sys.executable, "-m", "launcher", "run", "--config", str(example)],
                          capture_output=True, text=True, env=env_without, cwd=tmp_path,
                          timeout=60)
    assert proc.returncode == 2 and "NEMO_EVALUATOR_TRUST_PRE_CMD=1" in proc.stderr
    assert list(tmp_path.iterdir()) == []
