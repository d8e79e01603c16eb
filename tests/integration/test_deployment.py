"""Issue 14 on the real engine: a ``deployment: generic`` model server (this repo's image
running the reference endpoint, as a model server would: loading first, then serving) shared
by the tasks of an invocation, with the launcher running as a container over the socket.
No registry and no GPU: the real server types are covered by tests/unit/test_deployment.py."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import docker
import pytest
import yaml

from tests.integration.conftest import (
    SESSION_LABELS,
    launcher_container,
    ours,
    run_launcher_container,
    wait_for,
)
from tests.integration.test_launcher_container import score

pytestmark = pytest.mark.integration

SERVER = "python -m launcher.testing.reference_endpoint --port 8000 --dataset-dir /data/gsm8k"


class Deployed:
    def __init__(self, tmp_path: Path, image: str, gsm8k: Path):
        self.results = tmp_path / "results"
        self.results.mkdir()
        self.config_dir = tmp_path / "config"
        self.config_dir.mkdir()
        self.image, self.gsm8k = image, gsm8k

    def volumes(self) -> list[tuple[str, str, str]]:
        return [(str(self.results), "/results", "rw"), (str(self.config_dir), "/config", "ro"),
                (str(self.gsm8k), "/data/gsm8k", "ro")]

    def launcher(self, *args: str):
        return run_launcher_container(self.image, list(args), volumes=self.volumes(),
                                      timeout=300)

    def write(self, server_args: str, tasks: list[dict], limit: int = 10,
              parallelism: int = 4, **execution) -> None:
        data = {
            "defaults": [{"execution": "local"}, {"deployment": "generic"}, "_self_"],
            "execution": {"output_dir": "/results",
                          "mounts": {"deployment": {"/data/gsm8k": "/data/gsm8k:ro"}},
                          **execution},
            "deployment": {"image": self.image, "served_model_name": "reference",
                           "command": f"{SERVER} {server_args}"},
            "evaluation": {"nemo_evaluator_config": {"config": {"params": {
                "limit_samples": limit, "parallelism": parallelism}}}, "tasks": tasks},
        }
        (self.config_dir / "eval.yaml").write_text(yaml.safe_dump(data))

    def run(self, server_args: str, tasks: list[dict], **execution):
        self.write(server_args, tasks, **execution)
        since = time.time() - 1
        return self.launcher("run", "--config", "/config/eval.yaml"), since

    def status(self, invocation_id: str) -> list[str]:
        run = self.launcher("status", invocation_id, "--json")
        assert run.exit_code == 0, run.stderr
        return [job["state"] for job in json.loads(run.stdout)]

    def invocation(self) -> tuple[Path, str]:
        (inv,) = [p for p in self.results.iterdir() if p.is_dir()]
        return inv, inv.name.split("-", 1)[1]


@pytest.fixture
def deployed(tmp_path, launcher_image, gsm8k_dir) -> Deployed:
    return Deployed(tmp_path, launcher_image, gsm8k_dir)


def starts(client: docker.DockerClient, invocation_id: str, since: float) -> list[str]:
    """The role (server, waiter) or task of every container of the invocation the engine
    started, from its event log."""
    events = client.events(since=int(since), until=int(time.time()) + 1, decode=True, filters={
        "type": "container", "event": "start",
        "label": [f"eval-launcher.invocation={invocation_id}"]})
    out = []
    for event in events:
        labels = event["Actor"]["Attributes"]
        out.append(labels.get("eval-launcher.role") or labels.get("eval-launcher.task", "?"))
    return out


def nothing_left(client: docker.DockerClient, invocation_id: str) -> bool:
    label = f"eval-launcher.invocation={invocation_id}"
    return not client.containers.list(all=True, ignore_removed=True, filters=ours(label)) and \
        not client.networks.list(filters=ours(label))


def test_parallel_tasks_share_one_generic_server(deployed, docker_client):
    run, since = deployed.run("--accuracy 0.5 --startup-delay-s 2",
                              [{"name": "humaneval"},
                               {"name": "gsm8k", "dataset_dir": "/data/gsm8k"}],
                              mode="parallel", max_parallel=2)
    assert run.exit_code == 0, run.stderr[-3000:]
    inv, invocation_id = deployed.invocation()
    assert score(inv / "humaneval.0" / "artifacts", "humaneval", "pass@1") == (0.5, 10)
    assert score(inv / "gsm8k.1" / "artifacts", "gsm8k", "exact_match") == (0.5, 10)
    started = starts(docker_client, invocation_id, since)
    assert started.count("server") == 1, started
    assert sorted(started) == ["gsm8k", "humaneval", "server", "waiter"], started
    assert nothing_left(docker_client, invocation_id)
    assert "loading the model for 2s" in (inv / "server.log").read_text()
    assert (inv / "server.state").read_text().startswith("stopped ")
    record = json.loads((inv / "invocation.json").read_text())
    assert record["server"]["container"]["labels"]["eval-launcher.role"] == "server"
    assert record["server"]["container"]["labels"] | SESSION_LABELS == record["server"][
        "container"]["labels"]
    assert "[server] ready after" in run.stderr


@pytest.mark.parametrize(("server_args", "execution", "needles"), [
    ("--startup-delay-s 1 --exit-before-ready 3", {},
     ["exited with code 3 before it was ready", "failed to load the model (exit 3)"]),
    ("--startup-delay-s 600", {"endpoint_readiness_timeout": 3},
     ["model server not ready after 3s", "loading the model for 600s"]),
])
def test_a_server_that_is_never_ready_fails_the_run_and_starts_no_task(
        deployed, docker_client, server_args, execution, needles):
    began = time.monotonic()
    run, since = deployed.run(server_args, [{"name": "gsm8k", "dataset_dir": "/data/gsm8k"}],
                              **execution)
    assert run.exit_code == 3, run.stderr[-3000:]
    assert time.monotonic() - began < 60  # at once, not after a 600 s default
    for needle in needles:  # why, and the last lines of the server's log
        assert needle in run.stderr, run.stderr[-3000:]
    inv, invocation_id = deployed.invocation()
    started = starts(docker_client, invocation_id, since)
    assert "gsm8k" not in started and started.count("server") == 1, started
    assert nothing_left(docker_client, invocation_id)
    assert (inv / "server.state").read_text().startswith("failed ")
    assert (inv / "gsm8k.0" / "logs" / "stage.exit").read_text().split()[2] == "failed"


def servers(client: docker.DockerClient, invocation_id: str) -> list:
    return client.containers.list(all=True, ignore_removed=True, filters={"label": [
        *ours()["label"], f"eval-launcher.invocation={invocation_id}",
        "eval-launcher.role=server"]})


def start_in_background(deployed: Deployed):
    """A launcher container running the config, and the invocation once a job runs."""
    launcher = launcher_container(deployed.image, ["run", "--config", "/config/eval.yaml"],
                                  volumes=deployed.volumes())
    launcher.start()
    inv = wait_for(lambda: [p for p in deployed.results.iterdir() if p.is_dir()])[0]
    wait_for(lambda: (inv / "gsm8k.0" / "logs" / "stage.running").exists())
    return launcher, inv, inv.name.split("-", 1)[1]


def test_kill_mid_run_stops_the_server(deployed, docker_client):
    deployed.write("--latency-ms 500", [{"name": "gsm8k", "dataset_dir": "/data/gsm8k"}],
                   parallelism=1)
    launcher, inv, invocation_id = start_in_background(deployed)
    try:
        assert [c.status for c in servers(docker_client, invocation_id)] == ["running"]
        killed = deployed.launcher("kill", invocation_id)
        assert killed.exit_code == 0, killed.stderr
        launcher.get_wrapped_container().wait(timeout=60)
        assert deployed.status(invocation_id) == ["killed"]
        assert nothing_left(docker_client, invocation_id)
    finally:
        launcher.stop()


def test_sigkilled_launcher_leaves_a_server_kill_finds_and_resume_restarts(
        deployed, docker_client):
    deployed.write("--accuracy 0.5 --latency-ms 300",
                   [{"name": "gsm8k", "dataset_dir": "/data/gsm8k"}], parallelism=1)
    launcher, inv, invocation_id = start_in_background(deployed)
    try:
        launcher.get_wrapped_container().kill(signal="SIGKILL")
        # the server outlives the launcher, found by its labels by a new launcher
        assert [c.status for c in servers(docker_client, invocation_id)] == ["running"]
        assert "container running" in deployed.launcher("status", invocation_id).stdout
        killed = deployed.launcher("kill", invocation_id)
        assert killed.exit_code == 0, killed.stderr
        assert nothing_left(docker_client, invocation_id)
        since = time.time() - 1
        resumed = deployed.launcher("resume", invocation_id)
        assert resumed.exit_code == 0, resumed.stderr[-3000:]
        assert deployed.status(invocation_id) == ["success"]
        assert score(inv / "gsm8k.0" / "artifacts", "gsm8k", "exact_match") == (0.5, 10)
        assert starts(docker_client, invocation_id, since).count("server") == 1
        assert nothing_left(docker_client, invocation_id)
    finally:
        launcher.stop()


def test_rerun_scripts_start_wait_for_and_stop_the_server(deployed, docker_client):
    """run_all.sh (one server for both jobs) and a job's run.sh (its own) from a host shell
    with only docker: the same scores, and nothing left."""
    run, _ = deployed.run("--accuracy 0.5 --startup-delay-s 1",
                          [{"name": "gsm8k", "dataset_dir": "/data/gsm8k"},
                           {"name": "humaneval"}])
    assert run.exit_code == 0, run.stderr[-3000:]
    inv, invocation_id = deployed.invocation()
    results = [inv / "gsm8k.0" / "artifacts", inv / "humaneval.1" / "artifacts"]
    for script in (inv / "run_all.sh", inv / "gsm8k.0" / "run.sh"):
        for folder in results:
            (folder / "results.yml").unlink(missing_ok=True)
        since = time.time() - 1
        rerun = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                               timeout=300)
        assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
        assert "eval-launcher: model server ready" in rerun.stderr
        assert score(results[0], "gsm8k", "exact_match") == (0.5, 10)
        if script.name == "run_all.sh":
            assert score(results[1], "humaneval", "pass@1") == (0.5, 10)
        started = starts(docker_client, invocation_id, since)
        assert started.count("server") == 1, started
        assert nothing_left(docker_client, invocation_id)
    assert "reference endpoint (not a model)" in (inv / "server.log").read_text()


def test_rerun_script_of_a_server_that_dies_says_so(deployed, docker_client):
    run, _ = deployed.run("--startup-delay-s 1", [{"name": "gsm8k",
                                                   "dataset_dir": "/data/gsm8k"}])
    assert run.exit_code == 0, run.stderr[-3000:]
    inv, invocation_id = deployed.invocation()
    script = (inv / "server.sh").read_text()
    assert "--startup-delay-s \\\n" in script  # one word a line: make it a crash instead
    (inv / "server.sh").write_text(script.replace("--startup-delay-s \\\n",
                                                  "--exit-before-ready \\\n"))
    rerun = subprocess.run(["bash", str(inv / "gsm8k.0" / "run.sh")], capture_output=True,
                           text=True, timeout=300)
    assert rerun.returncode == 125, rerun.stderr
    assert "the model server exited before it was ready" in rerun.stderr
    assert "failed to load the model (exit 1)" in rerun.stderr
    assert nothing_left(docker_client, invocation_id)


def test_detached_run_serves_from_the_supervisor(deployed, docker_client):
    deployed.write("--accuracy 0.5", [{"name": "gsm8k", "dataset_dir": "/data/gsm8k"},
                                      {"name": "humaneval"}], mode="parallel")
    run = deployed.launcher("run", "--config", "/config/eval.yaml", "--detach")
    assert run.exit_code == 0, run.stderr[-3000:]
    invocation_id = run.stdout.strip().splitlines()[-1]
    wait_for(lambda: deployed.status(invocation_id) == ["success", "success"], timeout=120,
             every=1)
    inv, _ = deployed.invocation()
    assert score(inv / "gsm8k.0" / "artifacts", "gsm8k", "exact_match") == (0.5, 10)
    wait_for(lambda: nothing_left(docker_client, invocation_id), timeout=30)
    assert (inv / "server.state").read_text().startswith("stopped ")
    assert "[server] ready after" in (inv / "supervisor.log").read_text()
