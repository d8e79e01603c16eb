"""The launcher image, started as a container with the host's Docker socket, runs real
evaluation containers as siblings and leaves the results on the host, owned by the user."""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path

import docker
import pytest
import yaml

from tests.integration.conftest import SESSION_LABELS, ours, run_launcher_container

pytestmark = pytest.mark.integration

OWNER = (4242, 4343)  # a non-root uid:gid that owns the output folder
SECRET = "sk-test-0123456789abcdef-never-on-disk"
INVOCATION_DIR = re.compile(r"^\d{8}_\d{6}-[0-9a-f]{16}$")


def write_config(folder: Path, url: str, network: str, *, tasks: list[dict],
                 limit: int | None, output_dir: str = "/results",
                 api_key_name: str | None = None) -> Path:
    config = {
        "execution": {"output_dir": output_dir, "extra_docker_args": f"--network {network}"},
        "target": {"api_endpoint": {"url": url, "model_id": "reference",
                                    "api_key_name": api_key_name}},
        "evaluation": {
            "nemo_evaluator_config": {"config": {"params": {"limit_samples": limit,
                                                            "parallelism": 8}}},
            "tasks": tasks,
        },
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "eval.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def only_invocation(results: Path) -> Path:
    found = [p for p in results.iterdir() if p.is_dir()]
    assert len(found) == 1, found
    assert INVOCATION_DIR.match(found[0].name), found[0].name
    return found[0]


def score(artifacts: Path, task: str, metric: str) -> tuple[float, int]:
    data = yaml.safe_load((artifacts / "results.yml").read_text())
    body = data["results"]["tasks"][task]["metrics"][metric]["scores"][metric]
    return body["value"], body["stats"]["count"]


def no_containers_left(client: docker.DockerClient, invocation_id: str) -> bool:
    return not client.containers.list(
        all=True, ignore_removed=True,
        filters={"label": f"eval-launcher.invocation={invocation_id}"})


def test_different_paths_exact_scores_owner_and_rerun(
        tmp_path, launcher_image, reference_endpoint, network, gsm8k_dir, docker_client):
    """-v $PWD/results:/results: both tasks, exact scores, files on the host owned by the user,
    the secret nowhere on disk, and run.sh reruns the task from a host shell."""
    endpoint = reference_endpoint(0.5)
    results = tmp_path / "results"
    results.mkdir()
    os.chown(results, *OWNER)
    config = write_config(tmp_path / "config", endpoint.url, network.name, limit=10,
                          api_key_name="TEST_API_KEY",
                          tasks=[{"name": "humaneval"},
                                 {"name": "gsm8k", "dataset_dir": "/data/gsm8k"}])
    run = run_launcher_container(
        launcher_image, ["run", "--config", "/config/eval.yaml"],
        volumes=[(str(results), "/results", "rw"), (str(config.parent), "/config", "ro"),
                 (str(gsm8k_dir), "/data/gsm8k", "ro")],
        env={"TEST_API_KEY": SECRET})
    assert run.exit_code == 0, run.stderr
    inv = only_invocation(results)
    invocation_id = inv.name.split("-", 1)[1]
    he, gs = inv / "humaneval.0" / "artifacts", inv / "gsm8k.1" / "artifacts"
    assert score(he, "humaneval", "pass@1") == (0.5, 10)
    assert score(gs, "gsm8k", "exact_match") == (0.5, 10)
    assert len((gs / "samples.jsonl").read_text().splitlines()) == 10
    assert re.search(r"humaneval\s+success\s+pass@1\s+0\.5000", run.stdout), run.stdout
    assert re.search(r"gsm8k\s+success\s+exact_match\s+0\.5000", run.stdout), run.stdout

    for path in [inv, he, he / "results.yml", he / "samples.jsonl", gs / "results.yml",
                 inv / "invocation.json", inv / "gsm8k.1" / "run.sh",
                 inv / "gsm8k.1" / "logs" / "stdout.log", inv / "gsm8k.1" / "logs" / "stage.exit"]:
        st = path.stat()
        assert (st.st_uid, st.st_gid) == OWNER, path
    assert (inv / "gsm8k.1" / "logs" / "stage.exit").read_text().split()[1:] == ["0", "success"]

    record = json.loads((inv / "invocation.json").read_text())
    assert record["invocation_id"] == invocation_id
    assert [j["task"] for j in record["jobs"]] == ["humaneval", "gsm8k"]
    assert record["host_dir"] == str(inv)
    assert no_containers_left(docker_client, invocation_id)

    for path in inv.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path
    assert SECRET not in run.stdout + run.stderr

    # The rerun script uses HOST paths and passes the key by name: it works from a host shell.
    script = (inv / "gsm8k.1" / "run.sh").read_text()
    assert f"src={gs}" in script and "-e TEST_API_KEY" in script and SECRET not in script
    (gs / "results.yml").unlink()
    rerun = subprocess.run(["bash", str(inv / "gsm8k.1" / "run.sh")], capture_output=True,
                           text=True, env={**os.environ, "TEST_API_KEY": SECRET}, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert score(gs, "gsm8k", "exact_match") == (0.5, 10)
    assert (gs / "results.yml").stat().st_uid == OWNER[0]


def test_same_paths_full_humaneval_accuracy_one(
        tmp_path, launcher_image, reference_endpoint, network, gsm8k_dir):
    """-v $PWD:$PWD -w $PWD with a relative output_dir; all 164 HumanEval problems at A=1.0."""
    endpoint = reference_endpoint(1.0)
    work = tmp_path / "project"
    work.mkdir()
    os.chown(work, *OWNER)
    write_config(work, endpoint.url, network.name, limit=None, output_dir="./results",
                 tasks=[{"name": "humaneval"}])
    run = run_launcher_container(
        launcher_image, ["run", "--config", "eval.yaml"],
        volumes=[(str(work), str(work), "rw")], workdir=str(work))
    assert run.exit_code == 0, run.stderr
    inv = only_invocation(work / "results")
    he = inv / "humaneval.0" / "artifacts"
    assert score(he, "humaneval", "pass@1") == (1.0, 164)
    assert he.stat().st_uid == OWNER[0]


def test_named_volume_output_dir(tmp_path, launcher_image, reference_endpoint, network,
                                 gsm8k_dir, docker_client):
    """-v <named volume>:/results: sibling containers write into the volume."""
    endpoint = reference_endpoint(0.0)
    volume = docker_client.volumes.create(labels={"eval-launcher.test": "volume",
                                                  **SESSION_LABELS})
    try:
        config = write_config(tmp_path / "config", endpoint.url, network.name, limit=5,
                              tasks=[{"name": "gsm8k", "dataset_dir": "/data/gsm8k"}])
        run = run_launcher_container(
            launcher_image, ["run", "--config", "/config/eval.yaml"],
            volumes=[(volume.name, "/results", "rw"), (str(config.parent), "/config", "ro"),
                     (str(gsm8k_dir), "/data/gsm8k", "ro")])
        assert run.exit_code == 0, run.stderr
        inspected = docker_client.api.inspect_volume(volume.name)
        inv = only_invocation(Path(inspected["Mountpoint"]))
        assert score(inv / "gsm8k.0" / "artifacts", "gsm8k", "exact_match") == (0.0, 5)
    finally:
        volume.remove(force=True)


def _labelled_jobs(client: docker.DockerClient) -> set[str]:
    return {c.id for c in client.containers.list(
        all=True, ignore_removed=True, filters=ours("eval-launcher.invocation"))}


@pytest.mark.parametrize(
    ("case", "args", "socket", "exit_code", "needle"),
    [
        ("no socket", ["run", "--config", "/config/eval.yaml"], False, 3,
         "-v /var/run/docker.sock:/var/run/docker.sock"),
        ("socket not permitted", ["run", "--config", "/config/eval.yaml"], "4242:4242", 3,
         "permission denied on the Docker engine"),
        ("output under no mount", ["run", "--config", "/config/eval.yaml",
                                   "-o", "execution.output_dir=/nowhere/results"], True, 3,
         "add `-v /path/on/host:/nowhere/results`"),
        ("unknown task", ["run", "--config", "/config/eval.yaml",
                          "-o", "evaluation.tasks.0.name=gsm9k"], True, 2,
         "/config/eval.yaml, key 'evaluation.tasks[0].name': unknown task 'gsm9k'"),
        ("missing url", ["run", "--config", "/config/eval.yaml",
                         "-o", "target.api_endpoint.url=???"], True, 2,
         "key 'target.api_endpoint.url'"),
        ("unreadable config", ["run", "--config", "/config/missing.yaml"], True, 2,
         "/config/missing.yaml: file not found"),
        ("api key unset", ["run", "--config", "/config/eval.yaml",
                           "-o", "target.api_endpoint.api_key_name=NOT_SET_ANYWHERE"], True, 2,
         "NOT_SET_ANYWHERE is not set"),
    ],
)
def test_bad_input_in_container(tmp_path, launcher_image, docker_client, case, args, socket,
                                exit_code, needle):
    results = tmp_path / "results"
    results.mkdir()
    os.chown(results, 4242, 4242)  # writable for the "socket not permitted" user
    config = write_config(tmp_path / "config", "http://refep:8000/v1/chat/completions",
                          "bridge", limit=2, tasks=[{"name": "gsm8k"}])
    before = _labelled_jobs(docker_client)
    run = run_launcher_container(
        launcher_image, args, socket=bool(socket),
        user=socket if isinstance(socket, str) else None,
        volumes=[(str(results), "/results", "rw"), (str(config.parent), "/config", "ro")])
    assert run.exit_code == exit_code, (case, run.stdout, run.stderr)
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), run.stderr
    assert needle in lines[0], lines[0]
    assert "Traceback" not in run.stderr
    assert list(results.iterdir()) == []  # nothing written
    assert _labelled_jobs(docker_client) == before  # nothing started
