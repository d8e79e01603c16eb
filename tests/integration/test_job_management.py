"""Issue 4 on the real engine, with the launcher running as a container over the socket:
state with the results, modes, probe, timeout, progress, detach, status, kill, resume,
ls runs, and the faults (non-zero exit, OOM, container removed, launcher SIGKILLed,
concurrent invocations)."""

from __future__ import annotations

import json
import os
import re
import uuid
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

pytestmark = pytest.mark.integration


class Bench:
    """One output folder, one config folder, and the launcher image over the socket."""

    def __init__(self, tmp_path: Path, image: str, network: str, url: str, gsm8k: Path):
        self.results = tmp_path / "results"
        self.results.mkdir()
        self.config_dir = tmp_path / "config"
        self.config_dir.mkdir(exist_ok=True)  # tests may write their data there first
        self.empty = tmp_path / "empty"
        self.empty.mkdir()
        self.image, self.network, self.url, self.gsm8k = image, network, url, gsm8k

    def volumes(self):
        return [(str(self.results), "/results", "rw"), (str(self.config_dir), "/config", "ro"),
                (str(self.gsm8k), "/data/gsm8k", "ro"), (str(self.empty), "/data/empty", "ro")]

    def config(self, tasks: list[dict], *, limit: int = 4, name: str = "eval.yaml",
               url: str | None = None, model: str = "reference", parallelism: int = 4,
               **execution) -> str:
        data = {
            "execution": {"output_dir": "/results",
                          "extra_docker_args": f"--network {self.network}", **execution},
            "target": {"api_endpoint": {"url": url or self.url, "model_id": model}},
            "evaluation": {"nemo_evaluator_config": {"config": {"params": {
                "limit_samples": limit, "parallelism": parallelism}}}, "tasks": tasks},
        }
        (self.config_dir / name).write_text(yaml.safe_dump(data))
        return f"/config/{name}"

    def launcher(self, *args: str, env: dict[str, str] | None = None):
        return run_launcher_container(self.image, list(args), volumes=self.volumes(), env=env)

    def container(self, *args: str, env: dict[str, str] | None = None):
        return launcher_container(self.image, list(args), volumes=self.volumes(), env=env)

    def status(self, ident: str) -> list[dict]:
        run = self.launcher("status", ident, "--json")
        assert run.exit_code == 0, run.stderr
        return json.loads(run.stdout)

    def invocations(self) -> list[Path]:
        return sorted(p for p in self.results.iterdir() if p.is_dir())


GSM8K = {"name": "gsm8k", "dataset_dir": "/data/gsm8k"}


@pytest.fixture
def bench(tmp_path, launcher_image, network, reference_endpoint, gsm8k_dir):
    def make(accuracy: float = 1.0, latency_ms: float = 0) -> Bench:
        endpoint = reference_endpoint(accuracy, latency_ms)
        return Bench(tmp_path, launcher_image, network.name, endpoint.url, gsm8k_dir)

    return make


def labelled(client: docker.DockerClient, invocation_id: str) -> list:
    return client.containers.list(all=True, ignore_removed=True,
                                  filters=ours(f"eval-launcher.invocation={invocation_id}"))


def test_parallel_equals_sequential_and_a_failing_task_does_not_stop_others(bench):
    b = bench(0.5)
    tasks = [{"name": "humaneval"}, GSM8K,
             {"name": "gsm8k", "dataset_dir": "/data/empty"},  # no test.jsonl: this one fails
             {"name": "humaneval", "nemo_evaluator_config": {"config": {"params": {
                 "limit_samples": 6}}}}]
    seq = b.launcher("run", "--config", b.config(tasks, name="seq.yaml"))
    par = b.launcher("run", "--config", b.config(tasks, name="par.yaml", mode="parallel",
                                                 max_parallel=3))
    assert seq.exit_code == 1 and par.exit_code == 1, (seq.stderr, par.stderr)
    (first, second) = b.invocations()
    for inv in (first, second):
        ids = inv.name.split("-", 1)[1]
        states = {j["task"] + str(j["job_id"][-1]): j["state"] for j in b.status(ids)}
        assert states == {"humaneval0": "success", "gsm8k1": "success", "gsm8k2": "failed",
                          "humaneval3": "success"}
    for job in ("humaneval.0", "gsm8k.1", "humaneval.3"):
        one = yaml.safe_load((first / job / "artifacts" / "results.yml").read_text())
        two = yaml.safe_load((second / job / "artifacts" / "results.yml").read_text())
        for doc in (one, two):  # request timings differ from run to run by nature
            for task in doc["results"]["tasks"].values():
                task.pop("request_stats", None)
        assert one["results"] == two["results"], job
        a = [json.loads(x)["score"] for x in (first / job / "artifacts" / "samples.jsonl")
             .read_text().splitlines()]
        c = [json.loads(x)["score"] for x in (second / job / "artifacts" / "samples.jsonl")
             .read_text().splitlines()]
        assert a == c


def test_probe_fails_fast_on_dead_endpoint_and_unknown_model(bench, docker_client):
    b = bench()
    before = {c.id for c in docker_client.containers.list(
        all=True, ignore_removed=True, filters=ours("eval-launcher.job"))}
    dead = b.launcher("run", "--config", b.config([GSM8K], url="http://nowhere:8000/v1/chat/"
                                                  "completions", endpoint_readiness_timeout=2))
    assert dead.exit_code == 3, dead.stderr
    assert "is not reachable from the evaluation containers" in dead.stderr
    unknown = b.launcher("run", "--config", b.config([GSM8K], model="no-such-model"))
    assert unknown.exit_code == 2, unknown.stderr
    assert "does not serve model 'no-such-model'" in unknown.stderr
    assert b.invocations() == []  # nothing written
    assert {c.id for c in docker_client.containers.list(  # nothing started
        all=True, ignore_removed=True, filters=ours("eval-launcher.job"))} == before


def test_a_network_that_does_not_exist_is_one_line_and_nothing_starts(bench, docker_client):
    b = bench()
    before = {c.id for c in docker_client.containers.list(
        all=True, ignore_removed=True, filters=ours("eval-launcher.invocation"))}
    missing = "eval-launcher-no-such-network-4f1c"
    run = b.launcher("run", "--config", b.config([GSM8K]), "-o",
                     f"execution.extra_docker_args=--network {missing}")
    assert run.exit_code == 3, run.stderr
    lines = run.stderr.strip().splitlines()
    assert lines[-1].startswith("error: ") and "Traceback" not in run.stderr
    assert f"network '{missing}'" in lines[-1] and f"docker network create {missing}" in lines[-1]
    assert b.invocations() == []  # nothing written
    assert {c.id for c in docker_client.containers.list(  # nothing started, not even the probe
        all=True, ignore_removed=True, filters=ours("eval-launcher.invocation"))} == before


def test_timeout_marks_the_task_failed(bench):
    b = bench(1.0, latency_ms=500)
    run = b.launcher("run", "--config", b.config([dict(GSM8K, timeout=3)], limit=40,
                                                 parallelism=1))
    assert run.exit_code == 1
    (inv,) = b.invocations()
    (job,) = b.status(inv.name.split("-", 1)[1])
    assert job["state"] == "failed" and job["exit_code"] == 124
    assert "task timeout" in (inv / "gsm8k.0" / "logs" / "stdout.log").read_text()


def test_detach_status_logs_ls_runs_and_progress(bench, docker_client):
    b = bench(1.0, latency_ms=150)
    config = b.config([GSM8K], limit=20, parallelism=1)
    path = b.config_dir / "eval.yaml"  # with a key the jobs need: the supervisor must hand it on
    data = yaml.safe_load(path.read_text())
    data["target"]["api_endpoint"]["api_key_name"] = "EVAL_TEST_KEY"
    path.write_text(yaml.safe_dump(data))
    key = "sk-supervisor-" + uuid.uuid4().hex
    detached = b.launcher("run", "--config", config, "--detach", env={"EVAL_TEST_KEY": key})
    assert detached.exit_code == 0, detached.stderr
    invocation_id = detached.stdout.strip().splitlines()[-1]
    assert re.fullmatch(r"[0-9a-f]{16}", invocation_id)
    supervisor = [c for c in labelled(docker_client, invocation_id)
                  if c.labels.get("eval-launcher.role") == "supervisor"]
    assert supervisor, "a supervisor container runs the detached invocation"
    # its values came over stdin: `docker inspect` of the supervisor shows none of them
    assert key not in json.dumps(docker_client.api.inspect_container(supervisor[0].id))
    assert b.status(invocation_id[:6])[0]["state"] in ("pending", "running")
    jobs = wait_for(lambda: (s := b.status(invocation_id)) and s[0]["state"] == "success" and s)
    assert set(jobs[0]) >= {"job_id", "task", "state", "exit_code"}
    assert jobs[0]["exit_code"] == 0 and jobs[0]["value"] == 1.0
    wait_for(lambda: not labelled(docker_client, invocation_id))  # supervisor and job gone
    logs = b.launcher("logs", f"{invocation_id}.0")
    assert "gsm8k exact_match=1.0000 (n=20)" in logs.stdout
    runs = json.loads(b.launcher("ls", "runs", "--json").stdout)
    assert [(r["invocation_id"], r["state"]) for r in runs] == [(invocation_id, "success")]
    # an attached run prints plain progress lines when not on a TTY
    attached = b.launcher("run", "--config", config, env={"EVAL_LAUNCHER_PROGRESS_EVERY": "0.5",
                                                           "EVAL_TEST_KEY": key})
    assert attached.exit_code == 0, attached.stderr
    assert re.search(r"progress gsm8k\.0\s+running\s+\d+/20", attached.stderr), attached.stderr


def test_unknown_and_ambiguous_ids(bench):
    b = bench()
    for name in ("20260101_000000-aaaa000000000001", "20260101_000001-aaaa000000000002"):
        (b.results / name).mkdir()
        (b.results / name / "invocation.json").write_text(json.dumps(
            {"invocation_id": name.split("-")[1], "jobs": []}))
    unknown = b.launcher("status", "bbbb")
    assert unknown.exit_code == 2 and "no invocation 'bbbb'" in unknown.stderr
    ambiguous = b.launcher("status", "aaaa")
    assert ambiguous.exit_code == 2 and "'aaaa' is ambiguous" in ambiguous.stderr
    missing = b.launcher("status", "aaaa", "--output-dir", "/nonexistent")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


def test_sigkilled_launcher_then_status_kill_resume(bench, docker_client):
    b = bench(1.0, latency_ms=200)
    config = b.config([GSM8K, dict(GSM8K, name="gsm8k")], limit=25, parallelism=1)
    bystander = docker_client.containers.run(
        b.image, ["reference-endpoint", "--port", "9999"], detach=True,
        name=f"eval-launcher-bystander-{os.getpid()}",
        labels={"eval-launcher.test": "x", **SESSION_LABELS})
    launcher = b.container("run", "--config", config)
    launcher.start()
    try:
        inv = wait_for(lambda: b.invocations() and b.invocations()[0])
        invocation_id = inv.name.split("-", 1)[1]
        wait_for(lambda: (inv / "gsm8k.0" / "logs" / "stage.running").exists())
        launcher.get_wrapped_container().kill(signal="SIGKILL")
        states = [j["state"] for j in b.status(invocation_id)]
        assert states == ["running", "pending"], states  # the truth, after the launcher died
        killed = b.launcher("kill", invocation_id)
        assert killed.exit_code == 0, killed.stderr
        assert [j["state"] for j in b.status(invocation_id)] == ["killed", "killed"]
        assert not labelled(docker_client, invocation_id)
        bystander.reload()
        assert bystander.status == "running"  # never touches containers that are not ours
        resumed = b.launcher("resume", invocation_id[:8])
        assert resumed.exit_code == 0, resumed.stderr
        assert [j["state"] for j in b.status(invocation_id)] == ["success", "success"]
        assert [j["value"] for j in b.status(invocation_id)] == [1.0, 1.0]
    finally:
        launcher.stop()
        bystander.remove(force=True)


def test_oom_and_container_removed_mid_run(bench, docker_client):
    b = bench(1.0, latency_ms=200)
    # 6 MB (the engine's minimum) is below what the harness's Python needs in anonymous memory,
    # so the kernel must OOM-kill it; at ~12 MB it may instead thrash on page cache (no swap).
    # The task timeout only guards the test against such a hang.
    oom = b.launcher("run", "--config", b.config([dict(GSM8K, timeout=120)], name="oom.yaml",
                                                 extra_docker_args=f"--network {b.network} "
                                                                   "-m 6m"))
    assert oom.exit_code == 1
    (inv,) = b.invocations()
    (job,) = b.status(inv.name.split("-", 1)[1])
    assert job["state"] == "failed" and "OOM" in job["note"], job

    launcher = b.container("run", "--config", b.config([GSM8K, GSM8K], name="rm.yaml", limit=15,
                                                       parallelism=1))
    launcher.start()
    try:
        inv2 = wait_for(lambda: len(b.invocations()) == 2 and [
            p for p in b.invocations() if p != inv][0])
        invocation_id = inv2.name.split("-", 1)[1]
        wait_for(lambda: (inv2 / "gsm8k.0" / "logs" / "stage.running").exists())
        for c in docker_client.containers.list(
                filters={"label": f"eval-launcher.job={invocation_id}.0"}):
            c.remove(force=True)  # by hand, mid-run
        code = launcher.get_wrapped_container().wait(timeout=120)["StatusCode"]
        assert code == 1
        states = b.status(invocation_id)
        assert [j["state"] for j in states] == ["failed", "success"]
        assert states[0]["note"] == "container removed while running"
        # resume --detach: a supervisor reruns only the failed job; the launcher returns at once
        resumed = b.launcher("resume", invocation_id, "--detach")
        assert resumed.exit_code == 0, resumed.stderr
        assert resumed.stdout.strip().splitlines()[-1] == invocation_id
        assert "resuming 1 job(s)" in resumed.stderr
        final = wait_for(lambda: (s := b.status(invocation_id)) and all(
            j["state"] == "success" for j in s) and s, timeout=90)
        assert [j["value"] for j in final] == [1.0, 1.0]
        wait_for(lambda: not labelled(docker_client, invocation_id))  # supervisor removed itself
        assert "gsm8k.0" in (inv2 / "supervisor.log").read_text()
    finally:
        launcher.stop()


def test_two_invocations_at_once_into_one_folder(bench):
    b = bench(0.5)
    config = b.config([GSM8K], limit=6)
    one, two = b.container("run", "--config", config), b.container("run", "--config", config)
    one.start()
    two.start()
    try:
        codes = [c.get_wrapped_container().wait(timeout=120)["StatusCode"] for c in (one, two)]
    finally:
        one.stop()
        two.stop()
    assert codes == [0, 0]
    invs = b.invocations()
    assert len(invs) == 2
    for inv in invs:
        record = json.loads((inv / "invocation.json").read_text())
        assert inv.name.endswith(record["invocation_id"])
        data = yaml.safe_load((inv / "gsm8k.0" / "artifacts" / "results.yml").read_text())
        assert data["results"]["tasks"]["gsm8k"]["metrics"]["exact_match"]["scores"][
            "exact_match"]["value"] == 0.5


def test_api_key_file_reaches_the_endpoint_and_nothing_else(tmp_path, launcher_image, network,
                                                             reference_endpoint, gsm8k_dir,
                                                             docker_client):
    key = "sk-file-" + uuid.uuid4().hex
    endpoint = reference_endpoint(1.0, 0, "--api-key-env", "EP_KEY", env={"EP_KEY": key})
    b = Bench(tmp_path, launcher_image, network.name, endpoint.url, gsm8k_dir)
    config = b.config([GSM8K], limit=4)
    path = b.config_dir / "eval.yaml"
    data = yaml.safe_load(path.read_text())
    data["target"]["api_endpoint"]["api_key_file"] = "/config/key"
    path.write_text(yaml.safe_dump(data))
    (b.config_dir / "key").write_text("sk-wrong\n")  # the endpoint refuses it: the probe says so
    refused = b.launcher("run", "--config", config)
    assert refused.exit_code != 0 and not b.invocations(), refused.stderr
    (b.config_dir / "key").write_text(key + "\n")
    run = b.launcher("run", "--config", config)
    assert run.exit_code == 0, run.stderr
    (inv,) = b.invocations()
    (job,) = b.status(inv.name.split("-", 1)[1])
    assert job["state"] == "success" and job["value"] == 1.0
    for f in inv.rglob("*"):  # the key is in no file the run wrote, nor in its output
        assert not f.is_file() or key.encode() not in f.read_bytes(), f
    assert key not in run.stdout + run.stderr
    assert "/run/secrets/eval-launcher-api-key" in (inv / "gsm8k.0" / "run.sh").read_text()
