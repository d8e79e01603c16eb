"""Harness request-phase throughput and memory, against the reference endpoint on loopback.

Starts ``python -m launcher.testing.reference_endpoint --latency-ms 50`` (a subprocess on a
free port of 127.0.0.1) and measures, each in a fresh subprocess:

* ours: N requests (default 2000) at parallelism 64 through the harness's real fetch path
  (``launcher.harness.fetch.fetch_responses``: asyncio client, adaptive limiter, response cache
  committed to SQLite in a temp dir, progress.json). Ideal time = N * latency / parallelism
  (1.56 s); efficiency = ideal / achieved (median of ``--repeat`` runs);
* the same workload through a peer harness, inspect-ai (``pip install .[bench]``): its
  ``openai-api`` provider pointed at the endpoint, ``max_connections=64``, ``max_samples=64``;
  prints peer time / our time;
* our peak RSS (VmHWM, i.e. ``ru_maxrss`` without what Linux carries over an exec) for 1,000
  and 10,000 requests: the request machinery is O(parallelism); what grows is the prompts and
  answers the run keeps for scoring;
* the endpoint's CPU use during our run, to tell whether the endpoint is the bottleneck.

    pip install '.[bench]' && python benchmarks/harness_throughput.py
    python benchmarks/harness_throughput.py --no-peer --repeat 5

The last line is ``RESULT efficiency=<x> peer_ratio=<y|na> peak_mb=<z>``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from endpoint_load import cpu_seconds, start_server  # benchmarks/ is sys.path[0]

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def prompt(i: int) -> str:
    # Unknown to the endpoint (a fixed answer), distinct per request (distinct cache keys).
    return f"Question {i}: Natalia sold {i} clips in April and half as many in May. How many?"


# -- workers (run in their own subprocess; print one JSON line) --------------------------------


def peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not ru_maxrss: on Linux ru_maxrss survives execve, so a
    child forked from a big parent would report the parent's size."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def worker_ours(url: str, n: int, parallelism: int, out: str) -> dict[str, Any]:
    from launcher.harness.fetch import fetch_responses
    from launcher.harness.runconfig import parse_run_config

    cfg = parse_run_config({
        "config": {"type": "bench", "output_dir": out,
                   "params": {"parallelism": parallelism, "max_new_tokens": 100}},
        "target": {"api_endpoint": {"url": url, "model_id": "reference", "type": "chat"}},
    })
    prompts = ([{"role": "user", "content": prompt(i)}] for i in range(n))
    messages = list(prompts)
    started = time.monotonic()
    result = fetch_responses(cfg, messages, say=lambda _: None)
    elapsed = time.monotonic() - started
    assert len(result.answers) == n and all(a[0].text for a in result.answers)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"elapsed": elapsed, "cpu": usage.ru_utime + usage.ru_stime,
            "maxrss_mb": peak_rss_mb(), "stats": result.stats}


def worker_inspect(url: str, n: int, parallelism: int, out: str) -> dict[str, Any]:
    os.environ["REFBENCH_BASE_URL"] = url.rsplit("/chat/completions", 1)[0]
    os.environ["REFBENCH_API_KEY"] = "unused"
    from inspect_ai import Task
    from inspect_ai import eval as inspect_eval
    from inspect_ai.dataset import MemoryDataset, Sample
    from inspect_ai.solver import generate

    task = Task(dataset=MemoryDataset([Sample(input=prompt(i)) for i in range(n)]),
                solver=generate())
    started = time.monotonic()
    logs = inspect_eval(task, model="openai-api/refbench/reference", max_connections=parallelism,
                        max_samples=parallelism, display="none", log_dir=out, temperature=0.0,
                        max_tokens=100, log_samples=False)
    elapsed = time.monotonic() - started
    if logs[0].status != "success":
        raise SystemExit(f"inspect-ai run failed: {logs[0].status} {logs[0].error}")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"elapsed": elapsed, "cpu": usage.ru_utime + usage.ru_stime,
            "maxrss_mb": peak_rss_mb()}


WORKERS = {"ours": worker_ours, "inspect": worker_inspect}


def run_worker(kind: str, url: str, n: int, parallelism: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"harness-bench-{kind}-") as out:
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", kind, "--url", url, "--requests", str(n),
             "--parallelism", str(parallelism), "--out", out],
            capture_output=True, text=True, cwd=ROOT,
        )
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# -- the endpoint -----------------------------------------------------------------------------


class Endpoint:
    """The reference endpoint on a free loopback port, answering unknown prompts (no data set)."""

    def __init__(self, latency_ms: float) -> None:
        self.proc, port = start_server(
            [sys.executable, "-m", "launcher.testing.reference_endpoint"],
            latency_ms, dataset=False, stderr=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{port}/v1/chat/completions"
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=10):
            pass

    def cpu_seconds(self) -> float:
        return cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--parallelism", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours (median)")
    parser.add_argument("--rss-sizes", default="1000,10000")
    parser.add_argument("--no-peer", action="store_true", help="skip the inspect-ai run")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = WORKERS[args.worker](args.url, args.requests, args.parallelism, args.out)
        print(json.dumps(result))
        return 0

    n, p = args.requests, args.parallelism
    ideal = n * args.latency_ms / 1000 / p
    endpoint = Endpoint(args.latency_ms)
    try:
        print(f"endpoint {endpoint.url} latency {args.latency_ms:g} ms; {n} requests at "
              f"parallelism {p}; ideal {ideal:.2f} s; {os.cpu_count()} CPUs, load "
              f"{os.getloadavg()[0]:.1f}")
        times = []
        for i in range(args.repeat):
            cpu0 = endpoint.cpu_seconds()
            r = run_worker("ours", endpoint.url, n, p)
            server_cpu = endpoint.cpu_seconds() - cpu0
            times.append(r["elapsed"])
            lat = r["stats"].get("latency_s", {})
            print(f"ours run {i + 1}: {r['elapsed']:.3f} s, efficiency {ideal / r['elapsed']:.3f};"
                  f" harness CPU {r['cpu']:.2f} s (incl. start-up), endpoint CPU"
                  f" {server_cpu:.2f} s ({server_cpu / r['elapsed']:.0%} of one core);"
                  f" latency p50 {lat.get('p50', 0) * 1000:.1f} ms p99"
                  f" {lat.get('p99', 0) * 1000:.1f} ms")
        ours = statistics.median(times)
        efficiency = ideal / ours
        print(f"ours: median {ours:.3f} s for {n} requests (ideal {ideal:.2f} s):"
              f" efficiency {efficiency:.3f}")

        peer_ratio = "na"
        if not args.no_peer:
            if importlib.util.find_spec("inspect_ai") is None:
                print("peer: inspect-ai is not installed (pip install '.[bench]'); skipped")
            else:
                r = run_worker("inspect", endpoint.url, n, p)
                ratio = r["elapsed"] / ours
                peer_ratio = f"{ratio:.2f}"
                print(f"peer inspect-ai {importlib.metadata.version('inspect-ai')}:"
                      f" {r['elapsed']:.3f} s (CPU {r['cpu']:.1f} s, peak RSS"
                      f" {r['maxrss_mb']:.0f} MB); peer time / our time = {ratio:.2f}")

        peak = 0.0
        for size in [int(s) for s in args.rss_sizes.split(",") if s]:
            r = run_worker("ours", endpoint.url, size, p)
            peak = r["maxrss_mb"]
            print(f"ours peak RSS for {size} requests: {r['maxrss_mb']:.1f} MB"
                  f" ({r['elapsed']:.2f} s)")
    finally:
        endpoint.stop()
    print(f"RESULT efficiency={efficiency:.3f} peer_ratio={peer_ratio} peak_mb={peak:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
