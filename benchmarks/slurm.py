"""The Slurm executor against the local one, on the same machine (a single-node Slurm cluster
from scripts/slurm-cluster.sh, container_runtime: docker, so both run the same containers).

1. Submit -> first evaluation request: from `launcher run` starting (the plain CLI on this
   machine, --skip-endpoint-check) to the reference endpoint counting its first completion
   request (its GET /stats, polled every 20 ms), for one humaneval task.
2. 8 tasks: the wall time of 8 gsm8k tasks (SAMPLES items each, one at a time, LATENCY ms per
   answer) on the cluster, relative to the local executor with mode: parallel, max_parallel: 8.

    sudo python benchmarks/slurm.py [--repeat 3] [--samples 30] [--latency-ms 100]

Needs root (it starts the cluster) and the image (EVAL_LAUNCHER_IMAGE, default
eval-launcher:latest; scripts/build-images.sh builds it). Last line:
RESULT slurm_first_request_s=<median> local_first_request_s=<median> slurm8_s=<wall>
       local8_s=<wall> ratio=<slurm8/local8>
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import yaml

from launcher.testing.synthetic import write_gsm8k

REPO = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("EVAL_LAUNCHER_IMAGE", "eval-launcher:latest")
NETWORK = "eval-launcher-bench-slurm"
ENDPOINT = "eval-launcher-bench-slurm-refep"
PORT = 18911


def sh(*args: str) -> None:
    subprocess.run(args, check=True, capture_output=True)


def requests_seen() -> int:
    """The completion requests the endpoint has answered (its GET /stats)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{PORT}/stats", timeout=2) as r:
        return int(json.load(r)["requests"]["total"])


def reset() -> None:
    urllib.request.urlopen(urllib.request.Request(f"http://127.0.0.1:{PORT}/stats/reset",
                                                  method="POST"), timeout=2).read()


def write_config(folder: Path, executor: str, tasks: list[dict], samples: int) -> Path:
    execution: dict = {"output_dir": str(folder / "results"),
                       "extra_docker_args": f"--network {NETWORK}"}
    if executor == "slurm":
        defaults = [{"execution": "slurm/default"}, "_self_"]
        execution |= {"partition": "debug", "gres": None, "walltime": "00:30:00",
                      "sbatch_extra_flags": {"exclusive": False}, "container_runtime": "docker"}
    else:
        defaults = [{"execution": "local"}, "_self_"]
        execution |= {"mode": "parallel", "max_parallel": 8}
    path = folder / f"{executor}-{len(tasks)}.yaml"
    path.write_text(yaml.safe_dump({
        "defaults": defaults, "execution": execution,
        "target": {"api_endpoint": {"url": f"http://{ENDPOINT}:8000/v1/chat/completions",
                                    "model_id": "reference"}},
        "evaluation": {"nemo_evaluator_config": {"config": {"params": {
            "limit_samples": samples, "parallelism": 1}}}, "tasks": tasks}}, sort_keys=False))
    return path


def run(config: Path) -> tuple[float, float | None]:
    """(wall time, seconds to the endpoint's first request) of one `launcher run`."""
    reset()
    first: list[float] = []
    done = threading.Event()

    def watch(start: float) -> None:
        while not done.is_set():
            try:
                if requests_seen() > 0:
                    first.append(time.monotonic() - start)
                    return
            except OSError:
                pass
            time.sleep(0.02)

    env = {**os.environ, "EVAL_LAUNCHER_IMAGE": IMAGE}
    start = time.monotonic()
    watcher = threading.Thread(target=watch, args=(start,), daemon=True)
    watcher.start()
    proc = subprocess.run([sys.executable, "-m", "launcher", "run", "-c", str(config),
                           "--skip-endpoint-check"], env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    done.set()
    if proc.returncode != 0:
        sys.exit(f"error: launcher run -c {config} exited {proc.returncode}:\n{proc.stderr}")
    return wall, first[0] if first else None


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--latency-ms", type=int, default=100)
    args = parser.parse_args()
    subprocess.run(["bash", str(REPO / "scripts" / "slurm-cluster.sh"), "start"], check=True)
    data = Path(tempfile.mkdtemp(prefix="eval-launcher-bench-gsm8k-"))
    data.chmod(0o755)
    write_gsm8k(data, 1000)
    subprocess.run(["docker", "rm", "-f", ENDPOINT], capture_output=True)
    subprocess.run(["docker", "network", "rm", NETWORK], capture_output=True)
    sh("docker", "network", "create", NETWORK)
    sh("docker", "run", "-d", "--init", "--name", ENDPOINT, "--network", NETWORK,
       "-p", f"127.0.0.1:{PORT}:8000", "-v", f"{data}:/data/gsm8k:ro", IMAGE,
       "reference-endpoint", "--port", "8000", "--latency-ms", str(args.latency_ms),
       "--dataset-dir", "/data/gsm8k")
    try:
        for _ in range(100):
            try:
                requests_seen()
                break
            except OSError:
                time.sleep(0.1)
        with tempfile.TemporaryDirectory(prefix="eval-launcher-bench-slurm-") as tmp:
            folder = Path(tmp)
            (folder / "results").mkdir()
            os.chmod(folder, 0o755)
            firsts: dict[str, list[float]] = {"slurm": [], "local": []}
            for _ in range(args.repeat):
                for executor in firsts:
                    _, first = run(write_config(folder, executor, [{"name": "humaneval"}], 5))
                    if first is not None:
                        firsts[executor].append(first)
            for executor, values in firsts.items():
                print(f"{executor}: launcher run -> first evaluation request: "
                      + ", ".join(f"{v:.2f}s" for v in values)
                      + f"; median {statistics.median(values):.2f}s")
            eight = [{"name": "gsm8k", "dataset_dir": str(data)} for _ in range(8)]
            walls = {executor: run(write_config(folder, executor, eight, args.samples))[0]
                     for executor in ("slurm", "local")}
            print(f"8 gsm8k tasks x {args.samples} items at {args.latency_ms} ms: slurm "
                  f"{walls['slurm']:.1f}s, local (parallel 8) {walls['local']:.1f}s")
            print(f"RESULT slurm_first_request_s={statistics.median(firsts['slurm']):.2f} "
                  f"local_first_request_s={statistics.median(firsts['local']):.2f} "
                  f"slurm8_s={walls['slurm']:.1f} local8_s={walls['local']:.1f} "
                  f"ratio={walls['slurm'] / walls['local']:.2f}")
    finally:
        subprocess.run(["docker", "rm", "-f", ENDPOINT], capture_output=True)
        subprocess.run(["docker", "network", "rm", NETWORK], capture_output=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
