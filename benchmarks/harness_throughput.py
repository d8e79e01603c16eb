"""Harness request-phase throughput and memory, against the reference endpoint on loopback.

Starts ``python -m launcher.testing.reference_endpoint --latency-ms 50`` (a subprocess on a
free port of 127.0.0.1) and measures, each in a fresh subprocess:

* ours: N requests (default 2000) at parallelism 64 through the harness's real fetch path
  (``launcher.harness.fetch.fetch_responses``: aiohttp, our retries and adaptive limiter,
  response cache committed to SQLite in a temp dir, progress.json). Ideal time = N * latency /
  parallelism (1.56 s); efficiency = ideal / achieved (median of ``--repeat`` runs); and our
  CPU per request in that call;
* the same workload through a peer harness, inspect-ai (``pip install .[bench]``): its
  ``openai-api`` provider pointed at the endpoint, ``max_connections=64``, ``max_samples=64``;
  prints peer time / our time;
* a whole task on both sides against lm-evaluation-harness (``lm_eval[api]``, its
  ``local-chat-completions`` model at ``num_concurrent=64``): the same N prompts in a JSONL
  file the benchmark writes, a task YAML for lm-eval and a ``custom`` task run by our
  ``run_eval``; request phase, whole process (wall time of the subprocess) and peak RSS;
* our peak RSS (VmHWM, i.e. ``ru_maxrss`` without what Linux carries over an exec) for 1,000
  and 10,000 requests: the request machinery is O(parallelism); what grows is the prompts and
  answers the run keeps for scoring;
* the endpoint's CPU use during our run, to tell whether the endpoint is the bottleneck.

    pip install '.[bench]' && python benchmarks/harness_throughput.py
    python benchmarks/harness_throughput.py --no-peer --repeat 5
    python benchmarks/harness_throughput.py --no-inspect    # ours and lm-eval only
    sudo python benchmarks/harness_throughput.py --realtime # on a shared machine (SCHED_FIFO)

The last line is ``RESULT efficiency=<x> peer_ratio=<y|na> lm_eval_ratio=<z|na> peak_mb=<m>``.
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
    # Distinct per request (distinct cache keys); the endpoint knows them as custom-task items
    # (it never answers a prompt it does not know), so each gets a short fixed answer.
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
    imported = time.monotonic()
    from launcher.harness.fetch import fetch_responses  # aiohttp with it (harness start-up)
    from launcher.harness.runconfig import parse_run_config

    imported = time.monotonic() - imported

    cfg = parse_run_config({
        "config": {"type": "bench", "output_dir": out,
                   "params": {"parallelism": parallelism, "max_new_tokens": 100}},
        "target": {"api_endpoint": {"url": url, "model_id": "reference", "type": "chat"}},
    })
    prompts = ([{"role": "user", "content": prompt(i)}] for i in range(n))
    messages = list(prompts)
    started, cpu0 = time.monotonic(), time.process_time()
    result = fetch_responses(cfg, messages, say=lambda _: None)
    elapsed, cpu_fetch = time.monotonic() - started, time.process_time() - cpu0
    assert len(result.answers) == n and all(a[0].text for a in result.answers)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"elapsed": elapsed, "cpu": usage.ru_utime + usage.ru_stime, "cpu_fetch": cpu_fetch,
            "maxrss_mb": peak_rss_mb(), "stats": result.stats, "import_s": imported}


# The task-level comparison with lm-evaluation-harness: both read the same JSONL file (written
# by the benchmark into a temp dir), send one chat request per line, score exact match and
# write their results. The parent times the whole process; the worker times the request phase.


def write_task_files(d: Path, n: int, url: str, parallelism: int) -> None:
    """data.jsonl, our run config (a custom task) and lm-eval's task YAML, in ``d``."""
    with open(d / "data.jsonl", "w") as f:
        for i in range(n):
            f.write(json.dumps({"question": prompt(i), "answer": str(i)}) + "\n")
    ours = {
        "config": {"type": "custom", "output_dir": str(d / "ours-out"),
                   "params": {"parallelism": parallelism, "max_new_tokens": 100,
                              "temperature": 0.0,
                              "extra": {"dataset_dir": str(d), "dataset_path": "data.jsonl",
                                        "prompt_template": "{question}"}}},
        "target": {"api_endpoint": {"url": url, "model_id": "reference", "type": "chat"}},
    }  # fmt: skip
    (d / "run_config.json").write_text(json.dumps(ours))  # JSON is YAML
    (d / "lm_eval_tasks").mkdir()
    (d / "lm_eval_tasks" / "harness_bench.yaml").write_text(f"""\
task: harness_bench
dataset_path: json
dataset_kwargs:
  data_files:
    test: {d / "data.jsonl"}
test_split: test
output_type: generate_until
doc_to_text: "{{{{question}}}}"
doc_to_target: "{{{{answer}}}}"
generation_kwargs:
  until: ["\\n\\n"]
  max_gen_toks: 100
  temperature: 0.0
  do_sample: false
metric_list:
  - metric: exact_match
    aggregation: mean
    higher_is_better: true
""")


def worker_ours_task(url: str, n: int, parallelism: int, out: str) -> dict[str, Any]:
    import contextlib
    import io

    import launcher.harness.run_eval as run_eval

    phase: dict[str, float] = {}
    fetch = run_eval.fetch_responses

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return fetch(*args, **kwargs)
        finally:
            phase["requests"] = time.monotonic() - started

    run_eval.fetch_responses = timed  # type: ignore[assignment]
    with contextlib.redirect_stdout(io.StringIO()):
        code = run_eval.main(str(Path(out) / "run_config.json"))
    if code != 0:
        raise SystemExit(f"run_eval exited {code}")
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"requests": phase["requests"], "cpu": usage.ru_utime + usage.ru_stime,
            "maxrss_mb": peak_rss_mb()}


def worker_lm_eval(url: str, n: int, parallelism: int, out: str) -> dict[str, Any]:
    d = Path(out)
    # Offline, and a fresh Hugging Face cache (the JSON file is converted on first use).
    os.environ.update(HF_HOME=str(d / "hf"), HF_DATASETS_OFFLINE="1", HF_HUB_OFFLINE="1",
                      TOKENIZERS_PARALLELISM="false")
    import lm_eval  # type: ignore[import-untyped]
    from lm_eval.models.api_models import TemplateAPI  # type: ignore[import-untyped]
    from lm_eval.tasks import TaskManager  # type: ignore[import-untyped]

    phase: dict[str, float] = {}
    generate = TemplateAPI.generate_until

    def timed(self: Any, *args: Any, **kwargs: Any) -> Any:
        started = time.monotonic()
        try:
            return generate(self, *args, **kwargs)
        finally:
            phase["requests"] = time.monotonic() - started

    TemplateAPI.generate_until = timed  # type: ignore[method-assign]
    results = lm_eval.simple_evaluate(
        model="local-chat-completions",
        model_args={"model": "reference", "base_url": url, "num_concurrent": parallelism,
                    "max_retries": 3, "tokenized_requests": False},
        tasks=["harness_bench"], task_manager=TaskManager(include_path=str(d / "lm_eval_tasks")),
        apply_chat_template=True, log_samples=False, bootstrap_iters=0,
    )
    assert results is not None and "harness_bench" in results["results"], results
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"requests": phase["requests"], "cpu": usage.ru_utime + usage.ru_stime,
            "maxrss_mb": peak_rss_mb()}


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


WORKERS = {"ours": worker_ours, "inspect": worker_inspect, "ours-task": worker_ours_task,
           "lm-eval": worker_lm_eval}


def run_worker(kind: str, url: str, n: int, parallelism: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix=f"harness-bench-{kind}-") as out:
        if kind in ("ours-task", "lm-eval"):
            write_task_files(Path(out), n, url, parallelism)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, __file__, "--worker", kind, "--url", url, "--requests", str(n),
             "--parallelism", str(parallelism), "--out", out],
            capture_output=True, text=True, cwd=ROOT,
        )
        whole = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} worker failed:\n{proc.stderr[-3000:]}")
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "whole": whole}


# -- the endpoint -----------------------------------------------------------------------------


class Endpoint:
    """The reference endpoint on a free loopback port, knowing the first ``n`` prompts."""

    def __init__(self, latency_ms: float, n: int) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="harness-bench-endpoint-")
        known = Path(self._dir.name) / "prompts.jsonl"
        known.write_text("".join(json.dumps({"question": prompt(i), "answer": str(i)}) + "\n"
                                 for i in range(n)))
        self.proc, port = start_server(
            [sys.executable, "-m", "launcher.testing.reference_endpoint", "--dataset",
             str(known)], latency_ms, dataset=False, stderr=subprocess.DEVNULL)
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
        self._dir.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--parallelism", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--repeat", type=int, default=3, help="runs of ours (median)")
    parser.add_argument("--rss-sizes", default="1000,10000")
    parser.add_argument("--no-peer", action="store_true", help="skip the peers (both)")
    parser.add_argument("--no-inspect", action="store_true", help="skip the inspect-ai run")
    parser.add_argument("--no-lm-eval", action="store_true", help="skip the lm-eval run")
    parser.add_argument("--realtime", action="store_true",
                        help="run this process and its children (endpoint, workers, peers) "
                             "under SCHED_FIFO so other tenants of a shared machine do not "
                             "preempt them (needs root or CAP_SYS_NICE)")
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        result = WORKERS[args.worker](args.url, args.requests, args.parallelism, args.out)
        print(json.dumps(result))
        return 0

    scheduling = "normal (other processes on the machine compete for its CPUs)"
    if args.realtime:
        try:  # inherited by every subprocess started below
            os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(10))
            scheduling = "SCHED_FIFO 10 (--realtime)"
        except (OSError, AttributeError) as e:
            raise SystemExit(f"--realtime: cannot switch to SCHED_FIFO ({e}); run as root"
                             ) from None
    n, p = args.requests, args.parallelism
    ideal = n * args.latency_ms / 1000 / p
    sizes = [int(s) for s in args.rss_sizes.split(",") if s]
    endpoint = Endpoint(args.latency_ms, max([n, *sizes]))
    try:
        print(f"endpoint {endpoint.url} latency {args.latency_ms:g} ms; {n} requests at "
              f"parallelism {p}; ideal {ideal:.2f} s; {os.cpu_count()} CPUs, load "
              f"{os.getloadavg()[0]:.1f}; scheduling {scheduling}")
        times = []
        for i in range(args.repeat):
            cpu0 = endpoint.cpu_seconds()
            r = run_worker("ours", endpoint.url, n, p)
            server_cpu = endpoint.cpu_seconds() - cpu0
            times.append(r["elapsed"])
            lat = r["stats"].get("latency_s", {})
            print(f"ours run {i + 1}: {r['elapsed']:.3f} s, efficiency {ideal / r['elapsed']:.3f};"
                  f" harness CPU {r['cpu']:.2f} s (incl. start-up, of which imports"
                  f" {r['import_s']:.2f} s; request phase {r['cpu_fetch'] / n * 1e6:.0f} us per"
                  f" request), endpoint CPU {server_cpu:.2f} s"
                  f" ({server_cpu / r['elapsed']:.0%} of one core); latency p50"
                  f" {lat.get('p50', 0) * 1000:.1f} ms p99 {lat.get('p99', 0) * 1000:.1f} ms")
        ours = statistics.median(times)
        efficiency = ideal / ours
        print(f"ours: median {ours:.3f} s for {n} requests (ideal {ideal:.2f} s):"
              f" efficiency {efficiency:.3f}")

        peer_ratio = "na"
        if not (args.no_peer or args.no_inspect):
            if importlib.util.find_spec("inspect_ai") is None:
                print("peer: inspect-ai is not installed (pip install '.[bench]'); skipped")
            else:
                r = run_worker("inspect", endpoint.url, n, p)
                ratio = r["elapsed"] / ours
                peer_ratio = f"{ratio:.2f}"
                print(f"peer inspect-ai {importlib.metadata.version('inspect-ai')}:"
                      f" {r['elapsed']:.3f} s (CPU {r['cpu']:.1f} s, peak RSS"
                      f" {r['maxrss_mb']:.0f} MB); peer time / our time = {ratio:.2f}")

        lm_ratio = "na"
        if not (args.no_peer or args.no_lm_eval):
            if importlib.util.find_spec("lm_eval") is None:
                print("peer: lm-eval is not installed (pip install '.[bench]'); skipped")
            else:
                mine = run_worker("ours-task", endpoint.url, n, p)
                theirs = run_worker("lm-eval", endpoint.url, n, p)
                for name, r in (("ours (run_eval, custom task)", mine),
                                (f"lm-eval {importlib.metadata.version('lm_eval')}", theirs)):
                    print(f"{name}: request phase {r['requests']:.3f} s (efficiency"
                          f" {ideal / r['requests']:.2f}), whole process {r['whole']:.2f} s"
                          f" (start-up etc. {r['whole'] - r['requests']:.2f} s), CPU"
                          f" {r['cpu']:.2f} s, peak RSS {r['maxrss_mb']:.0f} MB")
                lm_ratio = f"{theirs['requests'] / mine['requests']:.2f}"
                print(f"lm-eval / ours: request phase {lm_ratio}, whole process"
                      f" {theirs['whole'] / mine['whole']:.2f}, peak RSS"
                      f" {theirs['maxrss_mb'] / mine['maxrss_mb']:.2f}")

        peak = 0.0
        for size in [int(s) for s in args.rss_sizes.split(",") if s]:
            r = run_worker("ours", endpoint.url, size, p)
            peak = r["maxrss_mb"]
            print(f"ours peak RSS for {size} requests: {r['maxrss_mb']:.1f} MB"
                  f" ({r['elapsed']:.2f} s)")
    finally:
        endpoint.stop()
    print(f"RESULT efficiency={efficiency:.3f} peer_ratio={peer_ratio} lm_eval_ratio={lm_ratio}"
          f" peak_mb={peak:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
