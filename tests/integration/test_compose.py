"""compose/docker-compose.yml, profile "reference": endpoint + launcher container, real engine."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from tests.integration.conftest import REPO

pytestmark = pytest.mark.integration


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    if probe.returncode == 0:
        return ["docker", "compose"]
    pytest.fail("neither docker-compose nor the docker compose plugin is installed",
                pytrace=False)


def test_reference_profile_runs_both_tasks(tmp_path, launcher_image, gsm8k_dir):
    results = tmp_path / "results"
    results.mkdir()
    env = {**os.environ, "RESULTS_DIR": str(results), "GSM8K_DATA_DIR": str(gsm8k_dir),
           "ACCURACY": "0.5", "EVAL_LAUNCHER_IMAGE": launcher_image,
           "COMPOSE_PROJECT_NAME": f"elt{os.getpid()}"}
    base = [*compose_command(), "--profile", "reference"]
    cwd = REPO / "compose"
    try:
        up = subprocess.run([*base, "up", "--abort-on-container-exit", "--exit-code-from",
                             "eval-reference"], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=600)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    finally:
        subprocess.run([*base, "down", "--remove-orphans"], cwd=cwd, env=env,
                       capture_output=True, timeout=120)
    (inv,) = list(results.iterdir())
    for task, job, metric in (("humaneval", "humaneval.0", "pass@1"),
                              ("gsm8k", "gsm8k.1", "exact_match")):
        data = yaml.safe_load((inv / job / "artifacts" / "results.yml").read_text())
        value = data["results"]["tasks"][task]["metrics"][metric]["scores"][metric]["value"]
        assert value == 0.5, (task, value)
