"""Load test of the reference endpoint: requests/s and CPU at N keep-alive connections.

Starts ``launcher reference-endpoint`` (``python -m launcher.testing.reference_endpoint``, or
any ``--server-cmd`` that prints the same "on http://HOST:PORT/v1" line) on a free loopback port,
sends ``--requests`` chat completions over ``--connections`` keep-alive HTTP/1.1 connections
and reports the wall time, requests/s, the fraction of the ideal ``requests*latency/connections``
and the CPU time of the server and of this client per request.

    .venv/bin/python benchmarks/endpoint_load.py --requests 2000 --connections 64 --latency-ms 50
    .venv/bin/python benchmarks/endpoint_load.py --client threads   # http.client on 64 threads
    .venv/bin/python benchmarks/endpoint_load.py --server-cmd "python old_reference_endpoint.py"

``--client asyncio`` (default) is a light raw-socket client; ``threads`` mirrors the harness
(one ``http.client`` connection per thread). Prompts are GSM8K questions (each new to the
server, so recognition is paid) when the data set is found, else unknown text.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import re
import resource
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

from launcher.testing.synthetic import gsm8k_dir

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ["GSM8K_DATA_DIR"]) if os.environ.get("GSM8K_DATA_DIR") else gsm8k_dir()
REQUEST_HEAD = (
    b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
)


def prompts(n: int) -> list[bytes]:
    file = DATA / "test.jsonl"
    if file.is_file():
        rows = [json.loads(line)["question"] for line in file.read_text().splitlines() if line]
    else:
        rows = [f"An unknown question number {i}, padded to a realistic size. " * 5
                for i in range(n)]
    texts = [f"Solve step by step.\n\nQuestion: {rows[i % len(rows)]}\nAnswer:" for i in range(n)]
    return [
        json.dumps({"model": "m", "messages": [{"role": "user", "content": t}],
                    "temperature": 0.0, "max_tokens": 512}).encode()
        for t in texts
    ]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(
    cmd: list[str], latency_ms: float, *, dataset: bool = True, stderr: int | None = None
) -> tuple[subprocess.Popen[str], int]:
    """Start the endpoint on a free loopback port; ``dataset``: load GSM8K when it is found."""
    args = [*cmd, "--host", "127.0.0.1", "--port", "0", "--latency-ms", str(latency_ms)]
    if dataset and (DATA / "test.jsonl").is_file():
        args += ["--dataset-dir", str(DATA)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(r"on http://[^:]+:(\d+)/v1", line)
        if found:
            return proc, int(found.group(1))
    raise SystemExit(f"server did not start: {args}")


async def run_asyncio(port: int, bodies: list[bytes], connections: int, times: list[float]) -> int:
    queue = iter(range(len(bodies)))
    ok = 0

    async def worker() -> None:
        nonlocal ok
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for i in queue:
            body = bodies[i]
            sent = time.perf_counter()
            writer.write(REQUEST_HEAD + b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
            head = await reader.readuntil(b"\r\n\r\n")
            found = re.search(rb"(?i)content-length: *(\d+)", head)
            assert found is not None, head
            length = int(found.group(1))
            await reader.readexactly(length)
            times.append(time.perf_counter() - sent)
            ok += head.startswith(b"HTTP/1.1 200")
        writer.close()

    await asyncio.gather(*(worker() for _ in range(connections)))
    return ok


def run_threads(port: int, bodies: list[bytes], connections: int, times: list[float]) -> int:
    lock = threading.Lock()
    queue = iter(range(len(bodies)))
    ok = [0]

    def worker() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        headers = {"Content-Type": "application/json"}
        while True:
            with lock:
                i = next(queue, None)
            if i is None:
                break
            sent = time.perf_counter()
            conn.request("POST", "/v1/chat/completions", body=bodies[i], headers=headers)
            resp = conn.getresponse()
            resp.read()
            times.append(time.perf_counter() - sent)
            with lock:
                ok[0] += resp.status == 200
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return ok[0]


def quantiles(times: list[float]) -> list[float]:
    ordered = sorted(times) or [0.0]
    return [ordered[len(ordered) // 2], ordered[len(ordered) * 9 // 10], ordered[-1]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--client", choices=("asyncio", "threads"), default="asyncio")
    parser.add_argument("--server-cmd",
                        default=f"{sys.executable} -m launcher.testing.reference_endpoint")
    parser.add_argument("--json", action="store_true", help="Print one JSON line.")
    args = parser.parse_args()

    bodies = prompts(args.requests)
    proc, port = start_server(shlex.split(args.server_cmd), args.latency_ms)
    try:
        server_cpu0, client0 = cpu_seconds(proc.pid), resource.getrusage(resource.RUSAGE_SELF)
        times: list[float] = []
        start = time.perf_counter()
        if args.client == "asyncio":
            ok = asyncio.run(run_asyncio(port, bodies, args.connections, times))
        else:
            ok = run_threads(port, bodies, args.connections, times)
        wall = time.perf_counter() - start
        server_cpu = cpu_seconds(proc.pid) - server_cpu0
        client1 = resource.getrusage(resource.RUSAGE_SELF)
        client_cpu = (client1.ru_utime + client1.ru_stime) - (client0.ru_utime + client0.ru_stime)
    finally:
        proc.terminate()
        proc.wait(10)
    ideal = args.requests * args.latency_ms / 1000 / args.connections
    result = {
        "requests": args.requests, "ok": ok, "connections": args.connections,
        "latency_ms": args.latency_ms, "client": args.client, "wall_s": round(wall, 3),
        "req_per_s": round(args.requests / wall, 1),
        "fraction_of_ideal": round(ideal / wall, 3) if ideal else None,
        "server_cpu_s": round(server_cpu, 3),
        "server_cpu_us_per_req": round(server_cpu / args.requests * 1e6, 1),
        "client_cpu_s": round(client_cpu, 3),
        "request_ms_p50_p90_max": [round(1000 * q, 1) for q in quantiles(times)],
    }
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key:>22}: {value}")


if __name__ == "__main__":
    main()
