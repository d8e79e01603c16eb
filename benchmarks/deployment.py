"""Deployment benchmark on the real engine: (1) server healthy -> first evaluation request,
(2) the wall time of N tasks on ONE shared server vs a server per task (the reference's way),
with a server that takes a known time to load.

The server is ``deployment: generic`` running this repo's image as the reference endpoint
with ``--startup-delay-s LOAD``; it logs the time of its first health answer and of its first
completion answer (``server.log``), so (1) is read from the server's own clock.

    EVAL_LAUNCHER_IMAGE=eval-launcher:latest python benchmarks/deployment.py --tasks 4 --load-s 10

Prints one line per measurement and a last line:
RESULT healthy_to_first_request_s=<s> shared_s=<s> per_task_s=<s> tasks=<N> load_s=<s>
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

FIRST = re.compile(r"reference endpoint: first (health answer|completion answer) at ([0-9.]+)")


def config(folder: Path, image: str, tasks: int, load_s: float, mode: str) -> Path:
    data = {
        "defaults": [{"execution": "local"}, {"deployment": "generic"}, "_self_"],
        "execution": {"output_dir": str(folder / "results"), "mode": mode,
                      "max_parallel": tasks},
        "deployment": {"image": image, "served_model_name": "reference",
                       "command": "python -m launcher.testing.reference_endpoint --port 8000 "
                                  f"--startup-delay-s {load_s:g}"},
        "evaluation": {"nemo_evaluator_config": {"config": {"params": {"limit_samples": 10}}},
                       "tasks": [{"name": "humaneval"}] * tasks},
    }
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"eval-{tasks}-{mode}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def launch(path: Path) -> float:
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "launcher", "run", "--config", str(path)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"launcher run failed:\n{proc.stderr[-3000:]}")
    return time.monotonic() - start


def first_times(results: Path) -> list[float]:
    """healthy -> first completion, per invocation in ``results``."""
    out = []
    for log in sorted(results.glob("*/server.log")):
        seen = dict(FIRST.findall(log.read_text()))
        out.append(float(seen["completion answer"]) - float(seen["health answer"]))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=4)
    parser.add_argument("--load-s", type=float, default=10.0)
    parser.add_argument("--image", default=os.environ.get("EVAL_LAUNCHER_IMAGE",
                                                          "eval-launcher:latest"))
    args = parser.parse_args()
    os.environ["EVAL_LAUNCHER_IMAGE"] = args.image  # the tasks run the same image
    os.environ.setdefault("EVAL_LAUNCHER_LABELS", "benchmark=deployment")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        shared = launch(config(folder / "shared", args.image, args.tasks, args.load_s,
                               "sequential"))
        print(f"shared server, {args.tasks} tasks sequential: {shared:.1f}s")
        parallel = launch(config(folder / "parallel", args.image, args.tasks, args.load_s,
                                 "parallel"))
        print(f"shared server, {args.tasks} tasks parallel:   {parallel:.1f}s")
        per_task = sum(launch(config(folder / "per-task", args.image, 1, args.load_s,
                                     "sequential")) for _ in range(args.tasks))
        print(f"a server per task, {args.tasks} tasks:        {per_task:.1f}s")
        gaps = first_times(folder / "shared" / "results") + first_times(
            folder / "parallel" / "results") + first_times(folder / "per-task" / "results")
        worst = max(gaps)
        print(f"server healthy -> first evaluation request: median "
              f"{sorted(gaps)[len(gaps) // 2]:.2f}s, worst {worst:.2f}s over {len(gaps)} runs")
    print(f"RESULT healthy_to_first_request_s={worst:.2f} shared_s={shared:.1f} "
          f"shared_parallel_s={parallel:.1f} per_task_s={per_task:.1f} tasks={args.tasks} "
          f"load_s={args.load_s:g}")


if __name__ == "__main__":
    main()
