"""The example pipelines (examples/ci/github-actions.yml, gitlab-ci.yml) cannot drift from the
script they call: both are valid YAML, call examples/ci/eval-gate.sh by that path, and the
arguments they pass are accepted by the script (its --dry-run parses them and prints the
docker commands, starting nothing), with the JUnit file the gate writes being the one the
pipeline uploads. Also the script's own checks: nothing to gate, keys by name only."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
SCRIPT_PATH = "examples/ci/eval-gate.sh"
CI = REPO / "examples" / "ci"
SECRET = "sk-ci-recipe-0123456789abcdefABCDEF"


def dry_run(args: list[str], env: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if k not in ("GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT", "EVAL_LAUNCHER_IMAGE",
                           "EVAL_LAUNCHER_LABELS")}
    return subprocess.run(["bash", SCRIPT_PATH, *args, "--dry-run"], cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          env={**clean, **(env or {})})


def script_args(command: str) -> list[str]:
    """The arguments of the one eval-gate.sh call in a shell line (YAML folds `>-` to one)."""
    words = shlex.split(command)
    assert words[:2] == ["bash", SCRIPT_PATH], command
    return words[2:]


def option(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def github() -> dict[Any, Any]:
    return yaml.safe_load((CI / "github-actions.yml").read_text())


def gitlab() -> dict[Any, Any]:
    return yaml.safe_load((CI / "gitlab-ci.yml").read_text())


def test_github_workflow_calls_the_script_and_uploads_what_it_writes() -> None:
    workflow = github()
    # PyYAML reads the bare key `on` as True (YAML 1.1); GitHub reads it as "on".
    assert set(workflow.get("on", workflow.get(True))) == {"pull_request", "workflow_dispatch"}
    (job,) = workflow["jobs"].values()
    steps = job["steps"]
    assert steps[0]["uses"].startswith("actions/checkout@")
    (gate,) = [s for s in steps if SCRIPT_PATH in s.get("run", "")]
    args = script_args(gate["run"])
    assert option(args, "--min-score") == "0.7"
    junit, results = option(args, "--junit"), option(args, "--results")
    upload = next(s for s in steps if s.get("uses", "").startswith("actions/upload-artifact@"))
    assert upload["if"] == "always()"
    assert junit.startswith(upload["with"]["path"]) and upload["with"]["path"] == f"{results}/"
    status = steps[-1]
    assert status["if"] == "always()"
    # The outputs it reads are the ones the script writes to $GITHUB_OUTPUT.
    assert {v.split(".")[-1].rstrip(" }") for v in status["env"].values()} == {
        "verdict", "exit_code", "invocation"}
    text = (REPO / SCRIPT_PATH).read_text()
    assert "verdict=%s\\nexit_code=%s\\ninvocation=%s" in text
    assert gate["id"] == "gate" and all(f"steps.{gate['id']}." in v
                                        for v in status["env"].values())

    proc = dry_run(args)
    assert proc.returncode == 0, proc.stderr
    gate_cmd = proc.stdout.strip().splitlines()[-1]
    assert f"--junit {REPO / junit}" in gate_cmd and "--min-score 0.7" in gate_cmd
    assert f"--output-dir {REPO / results}" in gate_cmd


def test_gitlab_job_calls_the_script_and_reports_its_junit() -> None:
    (job,) = gitlab().values()
    assert job["image"].startswith("docker:")
    assert job["services"][0]["name"].startswith("docker:") and "dind" in job["services"][0][
        "name"]
    assert job["variables"]["DOCKER_HOST"].startswith("tcp://docker:")
    (call,) = [line for line in job["script"] if SCRIPT_PATH in line]
    args = script_args(call)
    junit, results = option(args, "--junit"), option(args, "--results")
    assert job["artifacts"]["when"] == "always"
    assert job["artifacts"]["reports"]["junit"] == junit
    assert f"{results}/" in job["artifacts"]["paths"]

    proc = dry_run(args)
    assert proc.returncode == 0, proc.stderr
    gate_cmd = proc.stdout.strip().splitlines()[-1]
    assert f"--junit {REPO / junit}" in gate_cmd and "--min-score 0.7" in gate_cmd


def test_both_pipelines_pass_the_same_arguments() -> None:
    (gh,) = [s["run"] for s in next(iter(github()["jobs"].values()))["steps"]
             if SCRIPT_PATH in s.get("run", "")]
    (gl,) = [line for line in next(iter(gitlab().values()))["script"] if SCRIPT_PATH in line]
    assert script_args(gh) == script_args(gl)


def test_dry_run_of_the_built_in_example_plans_endpoint_run_and_gate() -> None:
    proc = dry_run(["--min-score", "0.7", "--image", "eval-launcher:ci-test"])
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].startswith("bash ") and "scripts/build-images.sh --quiet --tag "\
        "eval-launcher:ci-test" in lines[0]
    network, endpoint, run, gate = lines[1:]
    assert network.startswith("docker network create --label eval-launcher.ci-run=")
    assert "reference-endpoint --port 8000 --accuracy 0.8" in endpoint
    assert "-v /var/run/docker.sock:/var/run/docker.sock" in run
    assert "-e EVAL_LAUNCHER_IMAGE=eval-launcher:ci-test" in run
    assert "-t humaneval -t custom" in run and "limit_samples=10" in run
    assert "--user" in gate and "docker.sock" not in gate
    label = network.split("--label ")[1].split()[0]
    assert all(f"--label {label}" in line for line in (endpoint, run, gate))


def test_a_real_model_config_passes_the_key_by_name_only() -> None:
    args = ["--config", "examples/hosted_endpoint.yaml", "-e", "NGC_API_KEY", "--limit", "50",
            "--policy", "examples/gate/policy.yaml", "--no-build"]
    proc = dry_run(args, env={"NGC_API_KEY": SECRET})
    assert proc.returncode == 0, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    run, gate = proc.stdout.strip().splitlines()  # no build, no network, no endpoint
    assert " -e NGC_API_KEY " in run and "reference-endpoint" not in proc.stdout
    assert f"--config {REPO}/examples/hosted_endpoint.yaml" in run
    assert f"--policy {REPO}/examples/gate/policy.yaml" in gate


@pytest.mark.parametrize(("args", "env", "code", "message"), [
    ([], {}, 2, "the gate has nothing to check"),
    (["--min-score", "high"], {}, 2, "--min-score takes a number"),
    (["--min-score", "0.5", "-e", f"NGC_API_KEY={SECRET}"], {}, 2, "-e takes a variable NAME"),
    (["--min-score", "0.5", "-e", "CI_RECIPE_UNSET_KEY"], {}, 3,
     "the variable CI_RECIPE_UNSET_KEY is not set"),
    (["--policy", "examples/gate/nope.yaml"], {}, 2, "does not exist"),
    (["--min-score", "0.5", "--load", "/nonexistent/image.tar"], {}, 3, "docker save -o"),
    (["--min-score", "0.5", "--bogus"], {}, 2, "unknown option '--bogus'"),
])
def test_bad_options_fail_before_anything_starts(args: list[str], env: dict[str, str],
                                                 code: int, message: str) -> None:
    proc = dry_run(args, env)
    assert proc.returncode == code, proc.stdout + proc.stderr
    assert proc.stdout == ""  # not even a planned command
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("eval-gate.sh: error: ") and message in line
    assert SECRET not in line
