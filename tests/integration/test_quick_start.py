"""The seeds' quick-start command shape, on the real engine: ``run --config-dir DIR
--config-name NAME -o target.api_endpoint.api_key=NAME`` (the older spelling of api_key_name),
with a NeMo-shaped config (sibling defaults file, helper block, host/lit/runtime env values,
metadata), as a dry run and as a real run against the reference endpoint; then the
invocation's ``run_all.sh`` reruns every task from a host shell."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml

from tests.integration.conftest import run_launcher_container

pytestmark = pytest.mark.integration

KEY_NAME = "QUICK_START_KEY"
SECRET = "sk-quick-start-0123456789abcdefABCDEF"
NOTE = ("note: target.api_endpoint.api_key is the older spelling of "
        "target.api_endpoint.api_key_name")


def score(artifacts, task: str, metric: str) -> float:
    data = yaml.safe_load((artifacts / "results.yml").read_text())
    return data["results"]["tasks"][task]["metrics"][metric]["scores"][metric]["value"]


def test_quick_start_shape_dry_run_real_run_and_run_all(tmp_path, launcher_image,
                                                        reference_endpoint, network, gsm8k_dir):
    endpoint = reference_endpoint(0.5)
    config_dir = tmp_path / "examples"
    config_dir.mkdir()
    # NeMo-shaped: the target in a sibling file of the defaults list, a top-level helper block
    # used through ${...}, env values of all three forms, user_provided_metadata.
    (config_dir / "_endpoints.yaml").write_text(yaml.safe_dump({
        "target": {"api_endpoint": {"url": endpoint.url, "model_id": "reference",
                                    "api_key_name": "NGC_API_KEY"}}}))
    (config_dir / "local_quick_start.yaml").write_text(yaml.safe_dump({
        "defaults": [{"execution": "local"}, {"deployment": "none"}, "_endpoints", "_self_"],
        "common": {"limit": 6},
        "execution": {"output_dir": "/results",
                      "extra_docker_args": f"--network {network.name}"},
        "env_vars": {"RUN_MODE": "lit:quick", "SCRATCH": "runtime:QUICK_START_UNSET_VAR"},
        "user_provided_metadata": {"team": "evals"},
        "evaluation": {"nemo_evaluator_config": {"config": {"params": {
                           "limit_samples": "${common.limit}"}}},
                       "tasks": [{"name": "humaneval"},
                                 {"name": "gsm8k", "dataset_dir": "/data/gsm8k"}]},
    }, sort_keys=False))
    results = tmp_path / "results"
    results.mkdir()
    volumes = [(str(results), "/results", "rw"), (str(config_dir), "/examples", "ro"),
               (str(gsm8k_dir), "/data/gsm8k", "ro")]
    args = ["run", "--config-dir", "/examples", "--config-name", "local_quick_start",
            "-o", f"target.api_endpoint.api_key={KEY_NAME}"]

    dry = run_launcher_container(launcher_image, [*args, "--dry-run"], volumes=volumes,
                                 env={KEY_NAME: SECRET})
    assert dry.exit_code == 0, dry.stderr
    assert dry.stderr.startswith(NOTE)
    document = yaml.safe_load(dry.stdout)
    assert document["config"]["target"]["api_endpoint"]["api_key_name"] == KEY_NAME
    assert SECRET not in dry.stdout + dry.stderr
    assert list(results.iterdir()) == []

    real = run_launcher_container(launcher_image, args, volumes=volumes, env={KEY_NAME: SECRET})
    assert real.exit_code == 0, real.stderr
    assert real.stderr.startswith(NOTE) and SECRET not in real.stdout + real.stderr
    (inv,) = [p for p in results.iterdir() if p.is_dir() and not p.name.startswith(".")]
    he, gs = inv / "humaneval.0" / "artifacts", inv / "gsm8k.1" / "artifacts"
    assert (score(he, "humaneval", "pass@1"), score(gs, "gsm8k", "exact_match")) == (0.5, 0.5)

    # run_all.sh and run_all.sequential.sh: the same script; it reruns both tasks.
    run_all = inv / "run_all.sh"
    assert run_all.read_text() == (inv / "run_all.sequential.sh").read_text()
    assert f"-e {KEY_NAME}" in (inv / "gsm8k.1" / "run.sh").read_text()
    for path in inv.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
    (he / "results.yml").unlink()
    (gs / "results.yml").unlink()
    rerun = subprocess.run(["bash", str(run_all)], capture_output=True, text=True,
                           env={**os.environ, KEY_NAME: SECRET}, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    assert (score(he, "humaneval", "pass@1"), score(gs, "gsm8k", "exact_match")) == (0.5, 0.5)
