"""Issue 15's CI recipes on the real engine: examples/ci/eval-gate.sh, the script both example
pipelines call, run end to end as a CI runner would (bash, docker, this session's image tag):
it gets the image (builds it; `docker load`s a saved tarball), starts the reference endpoint,
runs the built-in offline example through the launcher container and gates. A GO exits 0 with
a JUnit report, the job summary and the step outputs; a NO-GO exits 1 with the failure in the
JUnit report; with your own config the API key goes by name (-e NAME) and reaches the
endpoint, never a file or the log. Every container and network the script started is gone
afterwards, also after a config error and a SIGTERM."""

from __future__ import annotations

import os
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path

import docker
import pytest
import yaml

from tests.integration.conftest import REPO, SESSION

pytestmark = pytest.mark.integration

SCRIPT = REPO / "examples" / "ci" / "eval-gate.sh"
CI_LABEL = "eval-launcher.ci-run"
# When the project's own CI is GitHub Actions, the script must not write to its files.
NO_GITHUB = {"GITHUB_STEP_SUMMARY": "", "GITHUB_OUTPUT": ""}


def run_script(args: list[str], cwd: Path, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    # The conftest put this session's label in EVAL_LAUNCHER_LABELS: the script adds it to
    # everything it starts, so the session's sweep would find any leftover.
    return subprocess.run(["bash", str(SCRIPT), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600,
                          env={**os.environ, **NO_GITHUB, **(env or {})})


def suite(junit: Path) -> ET.Element:
    root = ET.parse(junit).getroot()
    return root if root.tag == "testsuite" else next(root.iter("testsuite"))


def leftovers(client: docker.DockerClient) -> list[str]:
    filters = {"label": [SESSION, CI_LABEL]}
    return ([c.name for c in client.containers.list(all=True, filters=filters)]
            + [n.name for n in client.networks.list(filters=filters)])


def test_eval_gate_script_go_builds_the_image_and_writes_junit_and_summary(
        tmp_path, launcher_image, docker_client):
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs.txt"
    summary.write_text("# earlier step\n")
    build = ["--no-build"] if os.environ.get("EVAL_LAUNCHER_SKIP_BUILD") == "1" else []
    started = time.monotonic()
    proc = run_script(["--image", launcher_image, "--min-score", "0.7", "--results", "results",
                       "--junit", "reports/gate.xml", *build], cwd=tmp_path,
                      env={"GITHUB_STEP_SUMMARY": str(summary), "GITHUB_OUTPUT": str(outputs)})
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "gate GO" in proc.stdout, proc.stdout
    if not build:
        assert f"Built {launcher_image}" in proc.stderr

    cases = suite(tmp_path / "reports" / "gate.xml")
    assert (cases.get("tests"), cases.get("failures"), cases.get("errors")) == ("2", "0", "0")
    assert sorted(c.get("classname") for c in cases.iter("testcase")) == ["custom", "humaneval"]
    assert not [c for c in cases.iter("testcase") if len(c.findall("failure"))]

    text = summary.read_text()
    assert text.startswith("# earlier step\n")  # appended to, not replaced
    assert "### Evaluation gate: **GO**" in text
    for task in ("humaneval", "custom"):
        assert f"| {task} | min_score: score >= 0.7 | critical | 0.8000 |" in text
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert (values["verdict"], values["exit_code"]) == ("GO", "0")
    assert values["junit"] == str(tmp_path / "reports" / "gate.xml")
    (inv,) = (tmp_path / "results").glob(f"*-{values['invocation']}")
    scores = yaml.safe_load((inv / "custom.1" / "artifacts" / "results.yml").read_text())
    assert scores["results"]["tasks"]["custom"]["metrics"]["accuracy"]["scores"][
        "accuracy"]["value"] == 0.8
    assert leftovers(docker_client) == []
    print(f"eval-gate.sh GO run: {elapsed:.1f} s")


def test_eval_gate_script_no_go_from_a_policy_with_a_loaded_image(
        tmp_path, launcher_image, docker_client):
    tarball = tmp_path / "image.tar"
    docker_client.images.get(launcher_image)  # present; saved as a CI job would hand it over
    subprocess.run(["docker", "save", "-o", str(tarball), launcher_image], check=True)
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump({"tasks": {"custom": {"min_score": 0.9},
                                                "humaneval": {"min_score": 0.7}}}))
    outputs = tmp_path / "outputs.txt"
    started = time.monotonic()
    proc = run_script(["--image", launcher_image, "--load", str(tarball), "--policy",
                       "policy.yaml", "--accuracy", "0.8", "--limit", "5"], cwd=tmp_path,
                      env={"GITHUB_OUTPUT": str(outputs)})
    elapsed = time.monotonic() - started
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "docker load" in proc.stderr and "gate NO-GO" in proc.stdout

    cases = suite(tmp_path / "results" / "gate.xml")  # the default: RESULTS/gate.xml
    assert (cases.get("tests"), cases.get("failures")) == ("2", "1")
    failed = {c.get("classname"): c.find("failure") for c in cases.iter("testcase")}
    assert failed["humaneval"] is None
    assert failed["custom"] is not None and "0.8000 < 0.9" in failed["custom"].get("message")
    values = dict(line.split("=", 1) for line in outputs.read_text().splitlines())
    assert (values["verdict"], values["exit_code"]) == ("NO-GO", "1")
    assert leftovers(docker_client) == []
    print(f"eval-gate.sh NO-GO run: {elapsed:.1f} s")


def test_eval_gate_script_cleans_up_on_a_config_error_and_when_interrupted(
        tmp_path, launcher_image, docker_client):
    # A config error in the launcher: its exit code (2), no gate, the endpoint removed.
    proc = run_script(["--image", launcher_image, "--no-build", "--min-score", "0.5",
                       "-o", "evaluation.nemo_evaluator_config.config.params.limit_samples=-1"],
                      cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "limit_samples" in proc.stderr and "gate on invocation" not in proc.stderr
    assert leftovers(docker_client) == []

    # SIGTERM (a cancelled CI job) while a task runs: exit 143, every container removed.
    script = subprocess.Popen(["bash", str(SCRIPT), "--image", launcher_image, "--no-build",
                               "--min-score", "0.5", "-t", "humaneval", "--limit", "164"],
                              cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, env={**os.environ, **NO_GITHUB})
    try:
        deadline = time.monotonic() + 60
        while not docker_client.containers.list(
                filters={"label": [SESSION, CI_LABEL, "eval-launcher.job"]}):
            assert script.poll() is None and time.monotonic() < deadline, "no task started"
            time.sleep(0.2)
        script.terminate()
        out, _ = script.communicate(timeout=60)
    finally:
        if script.poll() is None:
            script.kill()
    assert script.returncode == 143, out[-3000:]
    assert leftovers(docker_client) == []


def test_eval_gate_script_with_a_config_passes_the_api_key_by_name(
        tmp_path, launcher_image, docker_client, network, reference_endpoint):
    # A "real model" setup: your config, an endpoint that requires a key, -e NAME.
    key = "sk-ci-" + uuid.uuid4().hex
    endpoint = reference_endpoint(1.0, 0, "--api-key-env", "EP_KEY", env={"EP_KEY": key})
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump({
        "execution": {"output_dir": "./results",
                      "extra_docker_args": f"--network {network.name}"},
        "target": {"api_endpoint": {"url": endpoint.url, "model_id": "reference",
                                    "api_key_name": "CI_RECIPE_KEY"}},
        "evaluation": {"nemo_evaluator_config": {"config": {"params": {"limit_samples": 4}}},
                       "tasks": [{"name": "humaneval"}]}}))
    args = ["--image", launcher_image, "--no-build", "--config", "eval.yaml",
            "-e", "CI_RECIPE_KEY", "--min-score", "0.9"]
    wrong = run_script(args, cwd=tmp_path, env={"CI_RECIPE_KEY": "sk-wrong"})
    assert wrong.returncode == 3, wrong.stdout[-3000:] + wrong.stderr[-3000:]  # the probe
    proc = run_script(args, cwd=tmp_path, env={"CI_RECIPE_KEY": key})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "gate GO" in proc.stdout and key not in proc.stdout + proc.stderr
    suite_ = suite(tmp_path / "results" / "gate.xml")
    assert (suite_.get("tests"), suite_.get("failures")) == ("1", "0")
    for path in (tmp_path / "results").rglob("*"):  # the key is in no file of the run
        assert not path.is_file() or key.encode() not in path.read_bytes(), path
    assert leftovers(docker_client) == []
