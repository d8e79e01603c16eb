"""compose/docker-compose.yml, profiles "reference" (offline, built-in data) and
"reference-gsm8k" (plus GSM8K from GSM8K_DATA_DIR): endpoint + launcher container, real engine."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest
import yaml

from tests.integration.conftest import REPO

pytestmark = pytest.mark.integration

METRICS = {"humaneval": ("pass@1",), "gsm8k": ("exact_match",), "custom": ("accuracy",)}


def compose_command() -> list[str]:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    probe = subprocess.run(["docker", "compose", "version"], capture_output=True)
    if probe.returncode == 0:
        return ["docker", "compose"]
    pytest.fail("neither docker-compose nor the docker compose plugin is installed",
                pytrace=False)


@pytest.mark.parametrize(("profile", "service", "tasks"), [
    ("reference", "eval-reference", ("humaneval", "custom")),
    ("reference-gsm8k", "eval-reference-gsm8k", ("humaneval", "gsm8k", "custom")),
])
def test_reference_profiles(tmp_path, launcher_image, gsm8k_dir, profile, service, tasks):
    results = tmp_path / "results"
    results.mkdir()
    env = {**os.environ, "RESULTS_DIR": str(results), "GSM8K_DATA_DIR": str(gsm8k_dir),
           "ACCURACY": "0.5", "EVAL_LAUNCHER_IMAGE": launcher_image,
           "COMPOSE_PROJECT_NAME": f"elt{os.getpid()}{profile.replace('-', '')}"}
    base = [*compose_command(), "--profile", profile]
    cwd = REPO / "compose"
    try:
        up = subprocess.run([*base, "up", "--abort-on-container-exit", "--exit-code-from",
                             service], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=600)
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
    finally:
        subprocess.run([*base, "down", "--remove-orphans"], cwd=cwd, env=env,
                       capture_output=True, timeout=120)
    (inv,) = list(results.iterdir())
    # -t keeps the configured order; job folders are numbered among the tasks run.
    jobs = [f"{task}.{i}" for i, task in enumerate(tasks)]
    assert sorted(p.name for p in inv.iterdir() if p.is_dir()) == sorted(jobs)
    for task, job in zip(tasks, jobs, strict=True):
        (metric,) = METRICS[task]
        data = yaml.safe_load((inv / job / "artifacts" / "results.yml").read_text())
        value = data["results"]["tasks"][task]["metrics"][metric]["scores"][metric]["value"]
        assert value == 0.5, (task, value)  # 10 custom questions at 0.5: exactly 5 right
