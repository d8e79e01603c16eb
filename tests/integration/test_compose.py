"""compose/docker-compose.yml, profiles "reference" (offline, built-in data) and
"reference-gsm8k" (plus GSM8K from GSM8K_DATA_DIR): endpoint + launcher container, real engine;
"generic-deployment": the launcher alone, serving the model itself."""

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


def test_generic_deployment_profile(tmp_path, launcher_image, docker_client):
    """The launcher alone: it serves the model (this image as the reference endpoint) for
    both tasks and removes the server afterwards."""
    from tests.integration.conftest import ours

    results = tmp_path / "results"
    results.mkdir()
    service = "eval-generic-deployment"
    env = {**os.environ, "RESULTS_DIR": str(results), "EVAL_LAUNCHER_IMAGE": launcher_image,
           "COMPOSE_PROJECT_NAME": f"elt{os.getpid()}generic"}
    base = [*compose_command(), "--profile", "generic-deployment"]
    cwd = REPO / "compose"
    try:
        run = subprocess.run([*base, "run", "--rm", service], cwd=cwd, env=env,
                             capture_output=True, text=True, timeout=600)
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    finally:
        subprocess.run([*base, "down", "--remove-orphans"], cwd=cwd, env=env,
                       capture_output=True, timeout=120)
    (inv,) = list(results.iterdir())
    for job in ("humaneval.0", "humaneval.1"):
        data = yaml.safe_load((inv / job / "artifacts" / "results.yml").read_text())
        assert data["results"]["tasks"]["humaneval"]["metrics"]["pass@1"]["scores"][
            "pass@1"]["value"] == 0.5
    invocation = f"eval-launcher.invocation={inv.name.split('-', 1)[1]}"
    assert not docker_client.containers.list(all=True, filters=ours(invocation))
