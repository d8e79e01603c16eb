"""Wall time of `launcher export ID --dest mlflow` for one invocation of 8 tasks, to a local
MLflow tracking server (sqlite backend, loopback) that the benchmark starts itself.

    python benchmarks/export_mlflow.py [--repeat 3]

The invocation is made by a real `run` against the test suite's fake engine (no Docker),
then each job gets a results.yml and a 200-line samples.jsonl. The first export creates the 8
runs of a cold server (and client), then fresh experiments (8 runs created each) and
exports again (8 runs updated, the idempotent path). Needs the test extra (full mlflow).
Last line: RESULT cold_s=<first export> create8_s=<median> update8_s=<median>
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from launcher import backends, runs  # noqa: E402
from launcher.commands import run as run_cmd  # noqa: E402
from launcher.commands.export import export  # noqa: E402
from launcher.prepare import ConfigOptions  # noqa: E402
from tests.unit.fake_backend import FakeBackend  # noqa: E402
from tests.unit.fake_runs import results_yml  # noqa: E402

TASKS = 8
SAMPLES = 200


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(root: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri",
         f"sqlite:///{root / 'mlflow.db'}", "--default-artifact-root", str(root / "artifacts"),
         "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
        start_new_session=True,  # its workers in its own process group, stopped with it
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2):
                return proc, uri
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                raise SystemExit("the mlflow server did not start") from None
            time.sleep(0.3)


def make_invocation(root: Path) -> tuple[str, str]:
    out = root / "out"
    config = root / "eval.yaml"
    config.write_text(yaml.safe_dump({
        "execution": {"output_dir": str(out)},
        "target": {"api_endpoint": {"url": "http://ep:8000/v1/chat/completions",
                                    "model_id": "m"}},
        "evaluation": {"tasks": [{"name": "humaneval"} for _ in range(TASKS)]},
    }))
    backend = FakeBackend()
    backends.connect = lambda: backend  # type: ignore[assignment]
    assert run_cmd.run(ConfigOptions(config=str(config)), (), dry_run=False,
                       host_output_dir=None, detach=False) == 0
    (run,) = runs.all_runs(str(out))
    for n, job in enumerate(run.invocation().jobs):
        artifacts = Path(job.job_dir) / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        scores = [int((i + n) % 3 != 0) for i in range(SAMPLES)]
        (artifacts / "results.yml").write_text(yaml.safe_dump(
            results_yml(job.task, sum(scores) / SAMPLES, SAMPLES), sort_keys=False))
        (artifacts / "samples.jsonl").write_text("".join(
            json.dumps({"id": f"HumanEval/{i}", "prompt": [], "response": "x" * 400,
                        "score": s, "target": "y"}) + "\n" for i, s in enumerate(scores)))
    return str(out), run.invocation_id


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out, invocation = make_invocation(root)
        proc, uri = start_server(root)
        try:
            def timed(experiment: str) -> float:
                start = time.perf_counter()
                export(out, [invocation], "mlflow", [f"export.mlflow.tracking_uri={uri}",
                                                     f"export.mlflow.experiment_name={experiment}"])
                return time.perf_counter() - start

            cold = timed("cold")  # the server's (and the client's) first requests
            fresh = [timed(f"fresh-{n}") for n in range(args.repeat)]  # 8 runs created
            again = [timed("fresh-0") for _ in range(args.repeat)]  # 8 runs updated
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    print(f"RESULT cold_s={cold:.2f} create8_s={statistics.median(fresh):.2f} "
          f"update8_s={statistics.median(again):.2f}")


if __name__ == "__main__":
    main()
