"""The Slurm executor on a real single-node Slurm cluster (scripts/slurm-cluster.sh: Debian's
slurm-wlm and munge on this machine), with ``container_runtime: docker``: each task is a batch
job whose script runs the task's container with ``docker run`` on the node.

The launcher runs as a plain CLI on this machine (it needs sbatch); the jobs' containers join
the reference endpoint's network. Covered: humaneval + gsm8k with exact scores, status while
running, kill (nothing left in squeue, no container left), resume, a walltime timeout that
resubmits the job, and the same over ssh to an sshd on 127.0.0.1."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import REPO, SESSION_ID, wait_for

pytestmark = pytest.mark.integration

KEY_NAME = "SLURM_TEST_KEY"
SECRET = "sk-slurm-test-0123456789ab"  # 26 characters; the jobs check its length only
SSH_PORT = "2222"


def _cluster(*args: str, env: dict[str, str] | None = None) -> None:
    if os.geteuid() != 0:
        pytest.fail("the Slurm tests start a single-node cluster (scripts/slurm-cluster.sh) "
                    "and need root", pytrace=False)
    proc = subprocess.run(["bash", str(REPO / "scripts" / "slurm-cluster.sh"), *args],
                          capture_output=True, text=True, env={**os.environ, **(env or {})},
                          timeout=600)
    if proc.returncode != 0:
        pytest.fail(f"scripts/slurm-cluster.sh {' '.join(args)} failed:\n{proc.stderr}",
                    pytrace=False)


@pytest.fixture(scope="session")
def slurm_cluster() -> None:
    _cluster("start")


@pytest.fixture(scope="session")
def ssh_key(slurm_cluster: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A test-only key authorised for root on an sshd at 127.0.0.1:2222."""
    key = tmp_path_factory.mktemp("ssh") / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    _cluster("sshd", env={"SLURM_TEST_SSH_KEY": str(key), "SLURM_TEST_SSH_PORT": SSH_PORT})
    return key


def ours(invocation: str) -> list[list[str]]:
    """This invocation's Slurm jobs, as squeue lists them: [id, state, comment]."""
    out = subprocess.run(["squeue", "--me", "-h", "-t", "all", "-o", "%i|%T|%k"],
                         capture_output=True, text=True, check=True).stdout
    return sorted((line.split("|", 2) for line in out.splitlines()
                   if f"eval-launcher.invocation={invocation}" in line), key=lambda j: int(j[0]))


def active(invocation: str) -> list[list[str]]:
    return [j for j in ours(invocation) if j[1] in ("PENDING", "RUNNING", "COMPLETING",
                                                     "CONFIGURING")]


def containers(docker_client, invocation: str) -> list:
    return docker_client.containers.list(
        all=True, filters={"label": [f"eval-launcher.invocation={invocation}"]})


@pytest.fixture
def slurm_run(slurm_cluster: None, tmp_path: Path, network, gsm8k_dir: Path, launcher_image: str):
    """Factory: write a Slurm config and run ``launcher ARGS`` on this machine."""
    results = tmp_path / "results"
    results.mkdir()
    env = {**os.environ, KEY_NAME: SECRET, "EVAL_LAUNCHER_IMAGE": launcher_image,
           "NEMO_EVALUATOR_TRUST_PRE_CMD": "1", "EVAL_LAUNCHER_OUTPUT_DIR": str(results)}

    def config(tasks: list[dict], limit: int = 6, **execution: object) -> Path:
        path = tmp_path / f"slurm-{len(list(tmp_path.glob('slurm-*.yaml')))}.yaml"
        path.write_text(yaml.safe_dump({
            "defaults": [{"execution": "slurm/default"}, "_self_"],
            "execution": {"output_dir": str(results), "partition": "debug", "gres": None,
                          "walltime": "00:10:00", "sbatch_extra_flags": {"exclusive": False},
                          "container_runtime": "docker",
                          "extra_docker_args": f"--network {network.name}", **execution},
            "target": {"api_endpoint": {"url": "http://refep:8000/v1/chat/completions",
                                        "model_id": "reference", "api_key_name": KEY_NAME}},
            "evaluation": {"nemo_evaluator_config": {"config": {"params": {
                               "limit_samples": limit, "parallelism": 1}}},
                           "pre_cmd": f'test "$(printf %s "${KEY_NAME}" | wc -c)" '
                                      f'-eq {len(SECRET)}',
                           "tasks": tasks}}, sort_keys=False))
        return path

    def launcher(*args: str, timeout: float = 300, extra: dict[str, str] | None = None,
                 background: bool = False):
        argv = [sys.executable, "-m", "launcher", *args]
        if background:
            return subprocess.Popen(argv, env={**env, **(extra or {})}, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return subprocess.run(argv, env={**env, **(extra or {})}, capture_output=True,
                              text=True, timeout=timeout)

    yield config, launcher, results
    for inv in results.iterdir():  # nothing of ours left queued, whatever a test did
        if inv.is_dir() and "-" in inv.name:
            ids = [j[0] for j in active(inv.name.rsplit("-", 1)[1])]
            if ids:
                subprocess.run(["scancel", *ids], check=False)


def score(job_dir: Path, task: str, metric: str) -> float:
    data = yaml.safe_load((job_dir / "artifacts" / "results.yml").read_text())
    return data["results"]["tasks"][task]["metrics"][metric]["scores"][metric]["value"]


def only_invocation(results: Path) -> Path:
    (inv,) = [p for p in results.iterdir() if p.is_dir() and not p.name.startswith(".")]
    return inv


def no_secret_on_disk(results: Path) -> None:
    for path in results.rglob("*"):
        if path.is_file():
            assert SECRET not in path.read_text(errors="replace"), path


def test_humaneval_and_gsm8k_on_slurm_with_exact_scores(slurm_run, reference_endpoint,
                                                        docker_client, gsm8k_dir) -> None:
    config, launcher, results = slurm_run
    reference_endpoint(0.5)
    path = config([{"name": "humaneval"}, {"name": "gsm8k", "dataset_dir": str(gsm8k_dir)}])
    run = launcher("run", "-c", str(path))
    assert run.returncode == 0, run.stderr
    assert "Slurm on this machine" in run.stderr
    inv = only_invocation(results)
    invocation = inv.name.rsplit("-", 1)[1]
    assert (score(inv / "humaneval.0", "humaneval", "pass@1"),
            score(inv / "gsm8k.1", "gsm8k", "exact_match")) == (0.5, 0.5)
    run_sub = (inv / "humaneval.0" / "run.sub").read_text()
    assert "#SBATCH --partition debug" in run_sub and f"-e {KEY_NAME}" in run_sub
    assert list((inv / "humaneval.0" / "logs").glob("slurm-*.log"))
    status = json.loads(launcher("status", invocation, "--json").stdout)
    assert [j["state"] for j in status] == ["success", "success"]
    # the probe and the two tasks; each one's queued successor was cancelled when it ended
    assert [j[1] for j in ours(invocation) if "resubmit-of" not in j[2]] == ["COMPLETED"] * 3
    assert {j[1] for j in ours(invocation) if "resubmit-of" in j[2]} == {"CANCELLED"}
    assert not containers(docker_client, invocation)
    listed = launcher("ls", "runs", "--json")
    assert json.loads(listed.stdout)[0]["state"] == "success"
    assert "run.sub" in launcher("info", invocation).stdout
    no_secret_on_disk(results)
    assert SECRET not in run.stdout + run.stderr


def test_status_kill_and_resume_on_slurm(slurm_run, reference_endpoint, docker_client) -> None:
    config, launcher, results = slurm_run
    reference_endpoint(0.5, 800)  # 0.8 s per answer: the job runs for a while
    proc = launcher("run", "-c", str(config([{"name": "humaneval"}])), background=True)
    try:
        inv = wait_for(lambda: next((p for p in results.iterdir() if p.is_dir()
                                     and (p / "invocation.json").exists()), None), 60)
        invocation = inv.name.rsplit("-", 1)[1]

        def running() -> bool:
            status = json.loads(launcher("status", invocation, "--json").stdout or "[]")
            return bool(status) and status[0]["state"] == "running" and bool(
                containers(docker_client, invocation))

        wait_for(running, 60, every=0.3)
        # the job, and the one it queued in case it times out
        assert sorted(j[1] for j in active(invocation)) == ["PENDING", "RUNNING"]
        killed = launcher("kill", invocation)
        assert killed.returncode == 0, killed.stderr
        assert proc.wait(timeout=60) != 0
    finally:
        if proc.poll() is None:
            proc.kill()
    wait_for(lambda: not active(invocation) and not containers(docker_client, invocation), 30)
    status = json.loads(launcher("status", invocation, "--json").stdout)
    assert status[0]["state"] == "killed"

    resumed = launcher("resume", invocation)
    assert resumed.returncode == 0, resumed.stderr
    assert score(inv / "humaneval.0", "humaneval", "pass@1") == 0.5
    assert json.loads(launcher("status", invocation, "--json").stdout)[0]["state"] == "success"
    assert not active(invocation) and not containers(docker_client, invocation)
    no_secret_on_disk(results)


def test_a_walltime_timeout_resubmits_the_job(slurm_run, reference_endpoint) -> None:
    """The first job outlives its 1-minute walltime (its pre_cmd sleeps on the first attempt
    only); Slurm ends it with TIMEOUT, the job it queued when it started runs and finishes."""
    config, launcher, results = slurm_run
    reference_endpoint(0.5)
    first_only = "if [ ! -e /results/.slept ]; then touch /results/.slept; sleep 600; fi"
    path = config([{"name": "humaneval", "pre_cmd": first_only}], walltime="00:01:00",
                  max_walltime="00:30:00")
    run = launcher("run", "-c", str(path), timeout=400)
    assert run.returncode == 0, run.stderr
    inv = only_invocation(results)
    invocation = inv.name.rsplit("-", 1)[1]
    assert score(inv / "humaneval.0", "humaneval", "pass@1") == 0.5
    states = [j[1] for j in ours(invocation) if "eval-launcher.job=" in j[2]]
    assert states == ["TIMEOUT", "COMPLETED", "CANCELLED"], states
    log = (inv / "humaneval.0" / "logs" / "stdout.log").read_text()
    assert "ended with TIMEOUT: resuming" in log
    assert json.loads(launcher("status", invocation, "--json").stdout)[0]["state"] == "success"


def test_slurm_over_ssh(slurm_run, reference_endpoint, ssh_key: Path, docker_client) -> None:
    config, launcher, results = slurm_run
    reference_endpoint(0.5)
    path = config([{"name": "humaneval"}], hostname="127.0.0.1", username="root")
    ssh_args = (f"-p {SSH_PORT} -i {ssh_key} -o StrictHostKeyChecking=no "
                "-o UserKnownHostsFile=/dev/null -o LogLevel=ERROR")
    env = {"EVAL_LAUNCHER_SSH_ARGS": ssh_args}
    run = launcher("run", "-c", str(path), "--detach", extra=env)  # a supervise process follows
    assert run.returncode == 0, run.stderr
    assert "Slurm on root@127.0.0.1 (ssh)" in run.stderr
    invocation = run.stdout.strip().splitlines()[-1]
    inv = only_invocation(results)

    def state() -> str:
        return json.loads(launcher("status", invocation, "--json", extra=env).stdout)[0]["state"]

    wait_for(lambda: state() not in ("pending", "running"), 90, every=0.5)
    assert state() == "success", (inv / "supervisor.log").read_text()
    assert score(inv / "humaneval.0", "humaneval", "pass@1") == 0.5
    assert not active(invocation) and not containers(docker_client, invocation)
    no_secret_on_disk(results)
    assert SESSION_ID  # the jobs' containers carry this session's label (swept at the end)


def test_a_deployment_runs_inside_each_slurm_job(slurm_run, docker_client,
                                                 launcher_image: str) -> None:
    """deployment: generic (this repo's reference endpoint as the model server): each task's
    job starts its own server on a network of its own, waits for its health, evaluates and
    removes both."""
    config, launcher, results = slurm_run
    path = config([{"name": "humaneval"}])
    data = yaml.safe_load(path.read_text())
    data["defaults"] = [{"execution": "slurm/default"}, {"deployment": "generic"}, "_self_"]
    del data["target"]
    data["execution"].pop("extra_docker_args")
    data["evaluation"].pop("pre_cmd")  # no API key without a target
    data["deployment"] = {"image": launcher_image, "served_model_name": "reference",
                          "command": "python -m launcher.testing.reference_endpoint --port 8000"
                                     " --accuracy 0.5"}
    path.write_text(yaml.safe_dump(data))
    run = launcher("run", "-c", str(path))
    assert run.returncode == 0, run.stderr
    inv = only_invocation(results)
    invocation = inv.name.rsplit("-", 1)[1]
    assert score(inv / "humaneval.0", "humaneval", "pass@1") == 0.5
    assert (inv / "humaneval.0" / "logs" / "server.log").stat().st_size > 0
    assert "probe-endpoint" in (inv / "humaneval.0" / "run.sub").read_text()
    assert not active(invocation) and not containers(docker_client, invocation)
    assert not docker_client.networks.list(filters={"name": f"eval-launcher-{invocation}"})
