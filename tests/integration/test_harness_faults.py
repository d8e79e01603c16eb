"""Issue 5 on the real engine: the harness against a flaky endpoint, and a task container
killed at random moments then resumed, with the endpoint itself counting the requests."""

from __future__ import annotations

import contextlib
import random
import sqlite3
import subprocess
import time
from pathlib import Path

import docker
import pytest
import yaml

from launcher.harness.cache import cache_path
from tests.integration.test_job_management import GSM8K, Bench, wait_for

pytestmark = pytest.mark.integration

N = 24  # gsm8k items per fault run
M = 64  # gsm8k items in the kill-and-resume run


@pytest.fixture
def flaky(tmp_path, launcher_image, network, reference_endpoint, gsm8k_dir):
    def make(*extra: str, latency_ms: float = 20):
        endpoint = reference_endpoint(0.5, latency_ms, *extra)
        return endpoint, Bench(tmp_path, launcher_image, network.name, endpoint.url, gsm8k_dir)

    return make


def score(bench: Bench, invocation: str = "") -> float:
    (inv,) = [p for p in bench.invocations() if p.name.endswith(invocation)]
    data = yaml.safe_load((inv / "gsm8k.0" / "artifacts" / "results.yml").read_text())
    return data["results"]["tasks"]["gsm8k"]["metrics"]["exact_match"]["scores"][
        "exact_match"]["value"]


def committed(artifacts: Path) -> int:
    """Rows in the harness's response cache (read after its container is gone)."""
    with contextlib.closing(sqlite3.connect(cache_path(str(artifacts)))) as db:
        return int(db.execute("SELECT COUNT(*) FROM responses").fetchone()[0])


def gsm8k_counts(stats: dict) -> dict[str, int]:
    return {k: v for k, v in stats["items"].items() if k.startswith("gsm8k/")}


@pytest.mark.parametrize("fault", ["429", "500", "timeout", "reset", "garbage"])
def test_endpoint_failing_30_percent_still_gives_the_exact_score(flaky, fault):
    endpoint, b = flaky("--fail-rate", "0.3", "--fault", fault, "--seed", "11")
    config = b.config([GSM8K], limit=N, parallelism=4)
    params = "evaluation.nemo_evaluator_config.config.params"
    run = b.launcher("run", "--config", config, "-o", f"{params}.request_timeout=2",
                     "-o", f"{params}.max_retries=40")
    assert run.exit_code == 0, run.stderr[-3000:]
    assert score(b) == 0.5  # exactly: 12 of the first 24 items are answered right
    stats = endpoint.stats()
    assert stats["requests"][fault] > 0, stats["requests"]  # the fault really happened
    # every sample answered successfully exactly once: no success is ever requested again
    assert gsm8k_counts(stats) == {f"gsm8k/{i}": 1 for i in range(N)}


def test_killed_five_times_then_resumed_requests_each_success_once(flaky, docker_client):
    endpoint, b = flaky(latency_ms=200)
    parallelism = 4
    config = b.config([GSM8K], limit=M, parallelism=parallelism)
    rng = random.Random(5)
    kills = 0
    lost: list[int] = []  # after each kill: answers delivered so far that the cache lacks
    first = b.container("run", "--config", config)
    first.start()
    launchers = [first]
    try:
        inv = wait_for(lambda: b.invocations() and b.invocations()[0])
        invocation_id = inv.name.split("-", 1)[1]
        artifacts = inv / "gsm8k.0" / "artifacts"
        while kills < 5:
            before = len(endpoint.stats()["items"])
            current = launchers[-1].get_wrapped_container()

            def progressed(n: int = before, launcher=current) -> bool:
                launcher.reload()
                return len(endpoint.stats()["items"]) > n or launcher.status == "exited"

            # wait until this attempt has made progress, then kill at a random moment
            wait_for(progressed, timeout=90, every=0.1)
            time.sleep(rng.uniform(0.0, 0.4))
            victims = docker_client.containers.list(
                filters={"label": f"eval-launcher.job={invocation_id}.0"})
            if not victims:
                break  # it finished before we could kill it: fine, fewer kills
            for victim in victims:
                with contextlib.suppress(docker.errors.APIError):
                    victim.kill()  # SIGKILL: no chance to flush or clean up
            code = launchers[-1].get_wrapped_container().wait(timeout=120)["StatusCode"]
            if code == 0:
                break  # the task had just finished: the kill came too late
            assert code == 1
            time.sleep(0.3)  # answers the endpoint still had on its latency timer: now settled
            answered = sum(gsm8k_counts(endpoint.stats()).values())
            lost.append(answered - committed(artifacts))
            assert b.status(invocation_id)[0]["state"] == "failed"
            # A kill between writing the scores and the container's exit still fails the task
            # (resume runs it again, from the cache), but it did not interrupt the evaluation.
            late = (artifacts / "results.yml").exists()
            if not late:
                kills += 1
            resumed = b.container("resume", invocation_id)
            resumed.start()
            launchers.append(resumed)
            if late:
                break
        code = launchers[-1].get_wrapped_container().wait(timeout=180)["StatusCode"]
        assert code == 0, launchers[-1].get_logs()
    finally:
        for launcher in launchers:
            launcher.stop()
    assert kills >= 3, "the kills must land while the task runs"
    assert b.status(invocation_id)[0]["state"] == "success"
    assert score(b) == 0.5
    counts = gsm8k_counts(endpoint.stats())
    assert set(counts) == {f"gsm8k/{i}" for i in range(M)}  # every sample answered
    # A delivered answer is requested again only if a kill came between its arrival and its
    # commit (the cache's batch window, BATCH_S): `lost` counts those after each kill, at most
    # `parallelism` each time. Everything else, and all the cache held, is requested once.
    again = sum(c - 1 for c in counts.values())
    print(f"kills={kills} successes re-requested={again} (bound {kills * parallelism}), "
          f"answered but not cached after each kill (cumulative): {lost}")
    assert again <= kills * parallelism, (kills, counts)
    # Exactly the answers lost by the kills were requested again: nothing the cache held was.
    assert again == lost[-1], (again, lost)
    lines = (artifacts / "samples.jsonl").read_text().splitlines()
    assert len(lines) == M
    # rerunning the finished task from a host shell replays the cache: no request at all
    total = endpoint.stats()["requests"]["total"]
    (artifacts / "results.yml").unlink()
    rerun = subprocess.run(["bash", str(inv / "gsm8k.0" / "run.sh")], capture_output=True,
                           text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert score(b) == 0.5
    assert endpoint.stats()["requests"]["total"] == total
