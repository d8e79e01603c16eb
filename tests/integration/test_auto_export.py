"""Auto-export after a real run (the plain CLI on the host, the real engine, the reference
endpoint at accuracy 0.5): each job that succeeded is exported to a local JSON file, to W&B
in offline mode (read back from the files W&B writes) and to a real MLflow server, with the
values of its results.yml; the job's run.sh exports again after a rerun without duplicating
anything. A dead MLflow server is one line: the jobs stay `success`, the files as they were.
A detached run's supervisor (the launcher image, no W&B client) exports to local and notes
the wandb failure."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.integration.conftest import wait_for
from tests.integration.test_job_management import bench  # noqa: F401 (a fixture)
from tests.unit.test_export_mlflow import free_port, server  # noqa: F401 (a fixture)
from tests.unit.wandb_files import offline_runs

pytestmark = pytest.mark.integration
pytest.importorskip("wandb")
mlflow = pytest.importorskip("mlflow")
BIN = str(Path(sys.executable).parent)  # where the `launcher` command of this checkout is


def write_config(tmp_path: Path, network: str, url: str, gsm8k: Path, dests: list[str],
                 export: dict) -> Path:
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump({
        "execution": {"output_dir": str(tmp_path / "results"),
                      "extra_docker_args": f"--network {network}",
                      "auto_export": {"destinations": dests}},
        "target": {"api_endpoint": {"url": url, "model_id": "reference"}},
        "export": export,
        "evaluation": {"nemo_evaluator_config": {"config": {"params": {
                           "limit_samples": 4, "parallelism": 4}}},
                       "tasks": [{"name": "humaneval"},
                                 {"name": "gsm8k", "dataset_dir": str(gsm8k)}]},
    }))
    (tmp_path / "results").mkdir()
    return path


def launcher(*args: str, env: dict[str, str], timeout: float = 600):
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True,
                          text=True, env=env, timeout=timeout)


def environment(tmp_path: Path, image: str) -> dict[str, str]:
    env = {**os.environ, "EVAL_LAUNCHER_IMAGE": image,
           "WANDB_DATA_DIR": str(tmp_path / "wandb-data"),
           "WANDB_CACHE_DIR": str(tmp_path / "wandb-cache"),
           "WANDB_CONFIG_DIR": str(tmp_path / "wandb-config")}
    for name in ("WANDB_MODE", "WANDB_DIR", "WANDB_API_KEY", "MLFLOW_TRACKING_URI"):
        env.pop(name, None)
    return env


def scores(inv: Path) -> dict[tuple[str, str, str], float]:
    """(task, metric, score) → value, from every job's results.yml."""
    found = {}
    for results in inv.glob("*/artifacts/results.yml"):
        for task, block in yaml.safe_load(results.read_text())["results"]["tasks"].items():
            for metric, m in block["metrics"].items():
                for score, s in m["scores"].items():
                    found[(task, metric, score)] = s["value"]
    return found


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def wandb_name(task: str, metric: str, score: str) -> str:
    return f"{task}/{metric}" if metric == score else f"{task}/{metric}_{score}"


def test_auto_export_after_a_real_run_and_its_run_sh(tmp_path, launcher_image, network,
                                                     reference_endpoint, gsm8k_dir, server):  # noqa: F811
    endpoint = reference_endpoint(0.5)
    wandb_dir = tmp_path / "wandb"
    wandb_dir.mkdir()
    config = write_config(tmp_path, network.name, endpoint.url, gsm8k_dir,
                          ["local", "wandb", "mlflow"],
                          {"local": {"filename": "scores.json"},
                           "wandb": {"mode": "offline", "dir": str(wandb_dir), "project": "it",
                                     "tags": ["auto"]},
                           "mlflow": {"tracking_uri": server, "experiment_name": "auto"}})
    env = environment(tmp_path, launcher_image)
    run = launcher("run", "--config", str(config), env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "auto-export" not in run.stderr, run.stderr[-3000:]  # no failure line
    (inv,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    inv_id = inv.name.rsplit("-", 1)[1]
    expected = scores(inv)
    assert expected[("humaneval", "pass@1", "pass@1")] == 0.5
    assert expected[("gsm8k", "exact_match", "exact_match")] == 0.5
    log = (inv / "auto_export.log").read_text().splitlines()
    assert sorted(line.split()[1:] for line in log) == sorted(
        [f"{inv_id}.{i}", dest, "ok"] for i in (0, 1) for dest in ("local", "wandb", "mlflow"))

    def check_exports() -> None:
        rows = json.loads((tmp_path / "results" / "scores.json").read_text())
        assert {(r["task"], r["metric"], r["score"]): r["value"] for r in rows} == expected
        assert len(rows) == len(expected)  # one row per score: no duplicates
        runs = offline_runs(wandb_dir)
        assert sorted(r.run_id for r in runs) == [f"el-{inv_id}-0", f"el-{inv_id}-1"]
        for r in runs:
            assert r.project == "it" and r.tags == ["auto"]
            task = r.config["task"]
            mine = {k: v for k, v in expected.items() if k[0] == task}
            assert mine and all(r.summary[wandb_name(*k)] == v for k, v in mine.items())
        client = mlflow.tracking.MlflowClient(tracking_uri=server)
        found = client.search_runs([client.get_experiment_by_name("auto").experiment_id])
        assert sorted(r.data.tags["eval_launcher.job_id"] for r in found) == [
            f"{inv_id}.0", f"{inv_id}.1"]
        by_task = {r.data.tags["eval_launcher.task"]: r.data.metrics for r in found}
        assert by_task["gsm8k"]["exact_match"] == expected[("gsm8k", "exact_match",
                                                            "exact_match")]

    check_exports()

    # The job's own rerun script, from a host shell with the launcher CLI on PATH, exports the
    # rerun job again: the same runs and rows, none added.
    rerun = subprocess.run(["bash", str(inv / "gsm8k.1" / "run.sh")], capture_output=True,
                           text=True, env={**env, "PATH": f"{BIN}:{env['PATH']}"}, timeout=600)
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    said = rerun.stdout + rerun.stderr
    assert said.count("exported ") == 3 and "auto-export" not in said, said[-3000:]
    assert scores(inv) == expected
    check_exports()


def test_a_dead_destination_leaves_the_run_as_it_was(tmp_path, launcher_image, network,
                                                     reference_endpoint, gsm8k_dir):
    endpoint = reference_endpoint(0.5)
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    config = write_config(tmp_path, network.name, endpoint.url, gsm8k_dir, ["mlflow"],
                          {"mlflow": {"tracking_uri": dead}})
    env = environment(tmp_path, launcher_image)
    run = launcher("run", "--config", str(config), env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    lines = [line for line in run.stderr.splitlines() if "auto-export" in line]
    assert len(lines) == 2 and all("to mlflow failed" in line and dead in line
                                   for line in lines), run.stderr[-3000:]
    (inv,) = [p for p in (tmp_path / "results").iterdir() if p.is_dir()]
    assert scores(inv)[("gsm8k", "exact_match", "exact_match")] == 0.5
    status = launcher("status", inv.name.rsplit("-", 1)[1], "--json", "--output-dir",
                      str(tmp_path / "results"), env=env)
    assert [j["state"] for j in json.loads(status.stdout)] == ["success", "success"]

    before = snapshot(tmp_path / "results")
    again = launcher("export", inv.name.rsplit("-", 1)[1], "--dest", "mlflow", "--output-dir",
                     str(tmp_path / "results"), env=env, timeout=60)
    assert again.returncode == 3
    (line,) = again.stderr.strip().splitlines()
    assert line.startswith("error: ") and dead in line and "results are unchanged" in line
    assert snapshot(tmp_path / "results") == before  # byte-identical


def test_a_detached_runs_supervisor_exports_in_the_launcher_container(bench,  # noqa: F811
                                                                      docker_client):
    """The image ships no W&B client: local is exported by the supervisor, wandb fails with
    one line in auto_export.log, and the job is `success` all the same."""
    from tests.integration.test_job_management import GSM8K, labelled

    b = bench(0.5)
    config = b.config([GSM8K], limit=4, auto_export={"destinations": ["local", "wandb"]})
    detached = b.launcher("run", "--config", config, "--detach")
    assert detached.exit_code == 0, detached.stderr
    invocation_id = detached.stdout.strip().splitlines()[-1]
    wait_for(lambda: not labelled(docker_client, invocation_id), timeout=120)
    (job,) = b.status(invocation_id)
    assert (job["state"], job["value"]) == ("success", 0.5)
    rows = json.loads((b.results / "export.json").read_text())
    assert {(r["job_id"], r["score"], r["value"]) for r in rows} == {
        (f"{invocation_id}.0", "exact_match", 0.5)}
    (inv,) = b.invocations()
    local, wandb = (inv / "auto_export.log").read_text().splitlines()
    assert local.endswith(f"{invocation_id}.0 local ok")
    assert f"{invocation_id}.0 wandb failed:" in wandb and "eval-launcher[wandb]" in wandb
