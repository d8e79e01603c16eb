"""Job-management overhead of the launcher container, on the real Docker Engine.

1. Launcher overhead: from the launcher container's start to its first evaluation (sibling)
   container's start, with the endpoint probe (default) and without (--skip-endpoint-check).
   Timestamps are the engine's own (container start events), so the host's `docker run`
   client is not counted.
2. Parallel mode: 8 gsm8k tasks with `execution.mode: parallel, max_parallel: 8`, each answering
   SAMPLES items one at a time from the reference endpoint at LATENCY ms; the wall time of the
   whole run relative to a run of the longest single task alone (1.0 would be perfect overlap).

    python benchmarks/job_overhead.py [--repeat 3] [--samples 30] [--latency-ms 100]

Needs the image (scripts/build-images.sh runs first, warm in seconds). The gsm8k tasks read
GSM8K_DATA_DIR if set, else GSM8K-shaped problems the benchmark writes itself (the timing does
not depend on the questions). Last line:
RESULT overhead_s=<median, with probe> overhead_noprobe_s=<median> parallel8_ratio=<ratio>
       engine_floor_ratio=<8 plain containers at once / one>
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import docker
import yaml

from launcher.testing.synthetic import write_gsm8k

REPO = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("EVAL_LAUNCHER_IMAGE", "eval-launcher:latest")
NETWORK = "eval-launcher-bench"
ENDPOINT = "eval-launcher-bench-refep"


@functools.cache
def gsm8k_dir() -> Path:
    if os.environ.get("GSM8K_DATA_DIR"):
        path = Path(os.environ["GSM8K_DATA_DIR"])
        if not (path / "test.jsonl").is_file():
            sys.exit(f"error: no gsm8k test.jsonl in {path} (GSM8K_DATA_DIR)")
        return path.resolve()
    folder = Path(tempfile.mkdtemp(prefix="eval-launcher-bench-gsm8k-"))
    folder.chmod(0o755)
    write_gsm8k(folder, 1000)
    return folder


class StartEvents:
    """Engine `start` events of containers labelled as our jobs, by invocation id."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.starts: dict[str, list[float]] = {}
        self._stream = client.events(decode=True, filters={"event": "start", "type": "container"})
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for event in self._stream:
                attrs = (event.get("Actor") or {}).get("Attributes") or {}
                key = attrs.get("eval-launcher.invocation") if "eval-launcher.job" in attrs \
                    else attrs.get("eval-launcher.bench")
                if key:
                    self.starts.setdefault(key, []).append(event["timeNano"] / 1e9)
        except Exception:  # the stream is closed at the end
            pass

    def close(self) -> None:
        self._stream.close()


def write_config(folder: Path, tasks: int, samples: int, parallel: bool) -> Path:
    config = {
        "defaults": [{"execution": "local"}, {"deployment": "none"}, "_self_"],
        "execution": {"output_dir": "/results", "mode": "parallel" if parallel else "sequential",
                      "max_parallel": 8, "extra_docker_args": f"--network {NETWORK}"},
        "target": {"api_endpoint": {"url": f"http://{ENDPOINT}:8000/v1/chat/completions",
                                    "model_id": "reference"}},
        "evaluation": {
            "nemo_evaluator_config": {"config": {"params": {"limit_samples": samples,
                                                            "parallelism": 1}}},
            "tasks": [{"name": "gsm8k", "dataset_dir": "/data/gsm8k"} for _ in range(tasks)],
        },
    }
    path = folder / f"bench-{tasks}-{int(parallel)}.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def launch(client: docker.DockerClient, folder: Path, config: Path, tag: str,
           *extra: str) -> tuple[float, int]:
    """Run the launcher container attached; (end time, exit code). Start times come from the
    engine's events (``StartEvents``)."""
    container = client.containers.run(
        IMAGE, ["run", "--config", f"/config/{config.name}", *extra], detach=True,
        labels={"eval-launcher.bench": tag},
        volumes={"/var/run/docker.sock": {"bind": "/var/run/docker.sock", "mode": "rw"},
                 str(folder / "results"): {"bind": "/results", "mode": "rw"},
                 str(folder): {"bind": "/config", "mode": "ro"},
                 str(gsm8k_dir()): {"bind": "/data/gsm8k", "mode": "ro"}},
    )
    try:
        code = container.wait()["StatusCode"]
        end = time.time()
        if code != 0:
            print(container.logs().decode()[-2000:], file=sys.stderr)
        return end, code
    finally:
        container.remove(force=True)


def engine_floor(client: docker.DockerClient, seconds: float) -> float:
    """Wall time of 8 containers of our image (create, start, wait, remove) started at once,
    relative to one: what the engine itself costs, whatever the launcher does."""
    def one() -> None:
        c = client.containers.run(IMAGE, ["-c", f"import time; time.sleep({seconds})"],
                                  entrypoint=["python3"], detach=True)
        c.wait()
        c.remove(force=True)

    def timed(n: int) -> float:
        threads = [threading.Thread(target=one) for _ in range(n)]
        start = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        return time.monotonic() - start

    return timed(8) / timed(1)


def invocation_of(folder: Path, before: set[str]) -> str:
    (new,) = {p.name for p in (folder / "results").iterdir() if p.is_dir()} - before
    return new.split("-", 1)[1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--samples", type=int, default=30)
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--no-build", action="store_true")
    args = parser.parse_args()
    if not args.no_build:
        subprocess.run(["bash", "scripts/build-images.sh", "--quiet", "--tag", IMAGE],
                       cwd=REPO, check=True)
    client = docker.from_env()
    subprocess.run(["docker", "rm", "-f", ENDPOINT], capture_output=True)
    subprocess.run(["docker", "network", "rm", NETWORK], capture_output=True)
    client.networks.create(NETWORK)
    endpoint = client.containers.run(
        IMAGE, ["reference-endpoint", "--port", "8000", "--latency-ms", str(args.latency_ms),
                "--dataset-dir", "/data/gsm8k"],
        name=ENDPOINT, network=NETWORK, detach=True, init=True,
        volumes={str(gsm8k_dir()): {"bind": "/data/gsm8k", "mode": "ro"}})
    events = StartEvents(client)
    try:
        with tempfile.TemporaryDirectory(prefix="eval-launcher-bench-") as tmp:
            folder = Path(tmp)
            (folder / "results").mkdir()
            os.chmod(folder, 0o755)
            one = write_config(folder, 1, 5, parallel=False)
            overheads: dict[str, list[float]] = {"probe": [], "noprobe": []}
            for i in range(args.repeat):
                for kind, extra in (("probe", ()), ("noprobe", ("--skip-endpoint-check",))):
                    before = {p.name for p in (folder / "results").iterdir()}
                    tag = f"{kind}-{i}"
                    _, code = launch(client, folder, one, tag, *extra)
                    if code != 0:
                        print(f"error: launcher exited {code}", file=sys.stderr)
                        return 1
                    inv = invocation_of(folder, before)
                    time.sleep(0.3)  # let the event thread catch up
                    overheads[kind].append(events.starts[inv][0] - events.starts[tag][0])
            for kind, values in overheads.items():
                print(f"launcher start -> first sibling start ({kind}): "
                      + ", ".join(f"{v:.2f}s" for v in values)
                      + f"; median {statistics.median(values):.2f}s")

            single = write_config(folder, 1, args.samples, parallel=False)
            eight = write_config(folder, 8, args.samples, parallel=True)
            walls = {}
            for name, config in (("single", single), ("parallel8", eight)):
                tag = f"wall-{name}"
                end, code = launch(client, folder, config, tag, "--skip-endpoint-check")
                if code != 0:
                    print(f"error: launcher exited {code}", file=sys.stderr)
                    return 1
                time.sleep(0.3)
                walls[name] = end - events.starts[tag][0]
            ratio = walls["parallel8"] / walls["single"]
            ideal = args.samples * args.latency_ms / 1000
            print(f"1 task  ({args.samples} samples x {args.latency_ms} ms, ideal {ideal:.1f}s):"
                  f" run wall {walls['single']:.2f}s")
            print(f"8 tasks in parallel (max_parallel 8): run wall {walls['parallel8']:.2f}s"
                  f" = {ratio:.2f}x the single task")
            floor = engine_floor(client, ideal)
            print(f"engine floor: 8 plain containers sleeping {ideal:.1f}s started at once take"
                  f" {floor:.2f}x one (container start cost on this engine)")
            subprocess.run(["chmod", "-R", "u+rwX", str(folder)], check=False)
    finally:
        events.close()
        endpoint.remove(force=True)
        client.networks.get(NETWORK).remove()
    print(f"RESULT overhead_s={statistics.median(overheads['probe']):.2f}"
          f" overhead_noprobe_s={statistics.median(overheads['noprobe']):.2f}"
          f" parallel8_ratio={ratio:.2f} engine_floor_ratio={floor:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
