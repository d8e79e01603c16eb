from __future__ import annotations

import http.client
import json
import math
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

import launcher.testing.reference_endpoint as ref  # noqa: E402
from launcher.errors import ConfigError  # noqa: E402
from launcher.harness.tasks.gsm8k import build_messages, extract_answer  # noqa: E402
from launcher.testing.faults import DEFAULT_FAULTS, Faults, parse_faults  # noqa: E402
from launcher.testing.oracle import (  # noqa: E402
    CUSTOM_MISSING,
    GSM8K_MISSING,
    Oracle,
    is_correct,
)
from launcher.testing.synthetic import gsm8k_dir  # noqa: E402

DATA = gsm8k_dir()


@pytest.mark.parametrize("accuracy", [0.0, 0.1, 0.25, 1 / 3, 0.5, 0.7, 0.99, 1.0])
def test_first_n_items_have_exactly_floor_n_a_right(accuracy: float) -> None:
    a = Fraction(str(accuracy))
    for n in range(0, 200):
        right = sum(is_correct(i, a) for i in range(n))
        assert right == math.floor(n * a)


def test_accuracy_must_be_a_fraction() -> None:
    with pytest.raises(ConfigError):
        Oracle(1.5, [], None)


GSM_ROWS = [
    {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3+4=<<3+4=7>>7\n#### 7"},
    {"question": "How many?", "answer": "Just 2,125.\n#### 2,125"},
]
HE_PROBLEMS = [
    {"prompt": 'def f():\n    """Return 1."""\n', "canonical_solution": "    return 1\n"},
]


def test_oracle_lookup_by_containment() -> None:
    oracle = Oracle(1.0, HE_PROBLEMS, GSM_ROWS)
    long_q = "Solve this.\n\nQuestion: Tom has 3 apples and buys 4. How many?\nThanks"
    assert oracle.answer(long_q).endswith("The answer is 7.")
    assert "<<" not in oracle.answer(long_q)
    # "How many?" is contained in item 0's question as well: the longest match wins.
    assert oracle.answer("Question: How many?").endswith("The answer is 2125.")
    he = oracle.answer('Complete:\n```python\ndef f():\n    """Return 1."""\n```')
    assert he == "```python\n" + HE_PROBLEMS[0]["prompt"] + "    return 1\n\n```"
    assert oracle.answer("What is the capital of France?") is None  # never a guess


def test_custom_items_and_unknown_prompts_name_the_missing_data() -> None:
    rows = [{"question": "Capital of France?", "choices": ["Rome", "Paris"], "answer": "B"},
            {"question": "Symbol O?", "choices": ["Gold", "Oxygen"], "answer": "Oxygen"},
            {"id": "x", "question": "Two plus two?", "answer": ["4", "four"]}]
    right = Oracle(1.0, HE_PROBLEMS, None, rows, (GSM8K_MISSING,))
    assert [right.answer(r["question"]) for r in rows] == ["B", "B", "4"]
    wrong = Oracle(0.0, HE_PROBLEMS, None, rows)
    assert [wrong.answer(r["question"]) for r in rows] == ["A", "A", "I do not know."]
    assert right.lookup("Two plus two?").id == "custom/x"
    gsm8k_prompt = build_messages("How many eggs?")[0]["content"]
    message = right.unknown_message(gsm8k_prompt)
    assert message.startswith("GSM8K data is not loaded: restart it with --dataset-dir DIR")
    assert "(1 humaneval, 0 gsm8k, 3 custom items)" in message
    assert right.unknown_message("Hello").startswith("GSM8K data is not loaded")


def test_wrong_answers() -> None:
    oracle = Oracle(0.0, HE_PROBLEMS, GSM_ROWS)
    assert extract_answer(oracle.answer(GSM_ROWS[0]["question"])) == "8"
    assert extract_answer(oracle.answer(GSM_ROWS[1]["question"])) == "2126"
    assert "raise NotImplementedError" in oracle.answer(HE_PROBLEMS[0]["prompt"])


def _start(server: ref.ReferenceServer) -> str:
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return f"127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    server = ref.make_server("127.0.0.1", 0, 1.0, 0, str(DATA))
    assert server.oracle.counts == {"humaneval": 164, "gsm8k": 1319, "custom": 0}
    yield _start(server)
    server.shutdown()
    server.server_close()


def _call(address: str, method: str, path: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection(address, timeout=10)
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    payload = json.loads(resp.read())
    conn.close()
    return resp.status, payload


def test_health_and_models(endpoint: str) -> None:
    assert _call(endpoint, "GET", "/health") == (200, {"status": "ok"})
    status, models = _call(endpoint, "GET", "/v1/models")
    assert status == 200 and [m["id"] for m in models["data"]] == ["reference"]


def test_chat_completion_shape(endpoint: str) -> None:
    question = json.loads((DATA / "test.jsonl").read_text().splitlines()[0])["question"]
    messages = [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": f"Please solve:\n{question}\n"},
    ]
    status, out = _call(
        endpoint, "POST", "/v1/chat/completions", {"model": "anything", "messages": messages}
    )
    assert status == 200
    assert out["object"] == "chat.completion" and out["id"].startswith("chatcmpl-")
    assert out["model"] == "anything" and isinstance(out["created"], int)
    choice = out["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] == "stop"
    assert choice["message"]["content"].endswith("The answer is 124.")
    assert set(out["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_completions_and_content_parts(endpoint: str) -> None:
    question = json.loads((DATA / "test.jsonl").read_text().splitlines()[1])["question"]
    status, out = _call(endpoint, "POST", "/v1/completions", {"model": "m", "prompt": question})
    assert status == 200 and out["choices"][0]["text"].endswith("The answer is 82.")
    parts = [{"role": "user", "content": [{"type": "text", "text": question}]}]
    status, out = _call(endpoint, "POST", "/v1/chat/completions", {"messages": parts})
    assert status == 200 and out["choices"][0]["message"]["content"].endswith("is 82.")
    # A prompt it does not know: HTTP 422 that says so, never a made-up answer.
    status, out = _call(endpoint, "POST", "/v1/completions", {"model": "m", "prompt": "Hello"})
    assert status == 422 and out["error"]["code"] == "unknown_prompt"
    assert out["error"]["message"] == (
        "custom-task questions are known only from --dataset FILE.jsonl (repeatable); the"
        " reference endpoint (not a model) knows no such prompt (164 humaneval, 1319 gsm8k,"
        " 0 custom items)")


@pytest.mark.parametrize(
    ("path", "body", "status", "needle"),
    [
        ("/v1/chat/completions", b"{not json", 400, "not valid JSON"),
        ("/v1/chat/completions", {"model": "m"}, 400, "messages"),
        (
            "/v1/chat/completions",
            {"messages": [{"role": "user", "content": "x"}], "stream": True},
            400,
            "stream",
        ),
        ("/v1/embeddings", {}, 404, "no route"),
    ],
)
def test_errors_have_openai_shape(
    endpoint: str, path: str, body: Any, status: int, needle: str
) -> None:
    got, out = _call(endpoint, "POST", path, body)
    assert got == status
    assert needle in out["error"]["message"] and "type" in out["error"]


def test_latency_does_not_serialise_requests() -> None:
    server = ref.ReferenceServer(("127.0.0.1", 0), Oracle(1.0, [], None, [HELLO_ROW]), 300,
                                 False)
    address = _start(server)
    body = HELLO
    try:
        start = time.monotonic()
        with ThreadPoolExecutor(6) as pool:
            results = list(
                pool.map(lambda _: _call(address, "POST", "/v1/chat/completions", body), range(6))
            )
        elapsed = time.monotonic() - start
    finally:
        server.shutdown()
        server.server_close()
    assert all(status == 200 for status, _ in results)
    assert 0.3 <= elapsed < 1.2  # 6 x 300 ms overlapped, not 1.8 s in a row


def test_serves_humaneval_without_gsm8k(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    server = ref.make_server("127.0.0.1", 0, 1.0, 0, str(tmp_path))  # no test.jsonl there
    server.server_close()
    assert server.oracle.counts == {"humaneval": 164, "gsm8k": 0, "custom": 0}
    assert "GSM8K unavailable" in capsys.readouterr().out
    assert server.oracle.missing == (GSM8K_MISSING, CUSTOM_MISSING)


# -- faults, stats and the HTTP server ---------------------------------------------------------

CHAT = "/v1/chat/completions"
HELLO = {"model": "m", "messages": [{"role": "user", "content": "Hello"}]}
HELLO_ROW = {"question": "Hello", "answer": "Hi"}  # a custom item the test servers know


class _Served:
    """A ReferenceServer serving on a thread; stops it (and checks it stopped) on exit."""

    def __init__(self, server: ref.ReferenceServer) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return f"127.0.0.1:{self.server.server_address[1]}"

    def __exit__(self, *exc: object) -> None:
        start = time.monotonic()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
        assert not self.thread.is_alive() and time.monotonic() - start < 5


def _server(latency_ms: float = 0, oracle: Oracle | None = None, **faults: Any) -> _Served:
    plan = Faults(**faults) if faults else None
    oracle = oracle or Oracle(1.0, HE_PROBLEMS_ID, GSM_ROWS, [HELLO_ROW])
    return _Served(ref.ReferenceServer(("127.0.0.1", 0), oracle, latency_ms, faults=plan))


HE_PROBLEMS_ID = [dict(HE_PROBLEMS[0], task_id="HumanEval/0")]


def _raw(address: str, data: bytes, timeout: float = 5) -> bytes:
    """Send ``data`` on a new connection and read until the server closes it."""
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def _post(body: Any = None, path: str = CHAT, extra: str = "") -> bytes:
    data = json.dumps(HELLO if body is None else body).encode()
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n{extra}\r\n"
    return head.encode() + data


def _read_response(sock_file: Any) -> tuple[int, dict[str, str], bytes]:
    status_line = sock_file.readline()
    status = int(status_line.split()[1])
    headers = {}
    while (line := sock_file.readline()) not in (b"\r\n", b""):
        name, _, value = line.decode().partition(":")
        headers[name.lower()] = value.strip()
    return status, headers, sock_file.read(int(headers.get("content-length", 0)))


def _stats(address: str) -> dict[str, Any]:
    status, stats = _call(address, "GET", "/stats")
    assert status == 200
    return stats


@pytest.mark.parametrize("retry_after", [0.0, 1.0, 0.25])
def test_fault_429_has_retry_after_and_error_json(retry_after: float) -> None:
    with _server(rate=1.0, kinds=["429"], retry_after=retry_after) as address:
        conn = http.client.HTTPConnection(address, timeout=5)
        conn.request("POST", CHAT, body=json.dumps(HELLO))
        resp = conn.getresponse()
        payload = json.loads(resp.read())
        assert resp.status == 429
        assert resp.getheader("Retry-After") == {0.0: "0", 1.0: "1", 0.25: "0.25"}[retry_after]
        assert payload["error"]["type"] == "rate_limit_error"
        assert payload["error"]["code"] == "rate_limit_exceeded"
        conn.request("POST", CHAT, body=json.dumps(HELLO))  # the connection stays usable
        assert conn.getresponse().status == 429
        conn.close()
        stats = _stats(address)["requests"]
        assert (stats["429"], stats["ok"], stats["total"]) == (2, 0, 2)


def test_fault_500_is_an_error_json() -> None:
    with _server(rate=1.0, kinds=["500"]) as address:
        status, payload = _call(address, "POST", CHAT, HELLO)
        assert status == 500 and payload["error"]["type"] == "server_error"
        assert _stats(address)["requests"]["500"] == 1


def test_fault_garbage_is_200_with_unparsable_body() -> None:
    with _server(rate=1.0, kinds=["garbage"]) as address:
        conn = http.client.HTTPConnection(address, timeout=5)
        conn.request("POST", CHAT, body=json.dumps(HELLO))
        resp = conn.getresponse()
        data = resp.read()
        assert resp.status == 200 and resp.getheader("Content-Type") == "application/json"
        with pytest.raises(ValueError):
            json.loads(data)
        conn.close()
        stats = _stats(address)
        assert stats["requests"]["garbage"] == 1 and stats["requests"]["ok"] == 0
        assert stats["items"] == {}  # a faulted answer is not a success


def test_fault_reset_closes_the_connection_abruptly() -> None:
    with _server(rate=1.0, kinds=["reset"]) as address:
        with pytest.raises(ConnectionResetError):
            _raw(address, _post())
        conn = http.client.HTTPConnection(address, timeout=5)
        conn.request("POST", CHAT, body=json.dumps(HELLO))
        with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected)):
            conn.getresponse()
        conn.close()
        assert _stats(address)["requests"]["reset"] == 2


def test_fault_timeout_never_answers() -> None:
    with _server(rate=1.0, kinds=["timeout"], hang_s=600) as address:
        conn = http.client.HTTPConnection(address, timeout=1)
        conn.request("POST", CHAT, body=json.dumps(HELLO))
        start = time.monotonic()
        with pytest.raises(TimeoutError):
            conn.getresponse()
        assert time.monotonic() - start >= 0.9
        conn.close()
        assert _stats(address)["requests"]["timeout"] == 1
    # shutting down with the hung connection open was prompt (checked by _Served)


def test_fault_timeout_closes_after_hang_s_without_answer() -> None:
    with _server(rate=1.0, kinds=["timeout"], hang_s=0.3) as address:
        start = time.monotonic()
        assert _raw(address, _post()) == b""  # closed, nothing sent
        assert 0.25 <= time.monotonic() - start < 3


def test_faults_never_hit_health_models_or_stats() -> None:
    with _server(rate=1.0, kinds=["reset", "timeout"]) as address:
        for _ in range(5):
            assert _call(address, "GET", "/health")[0] == 200
            assert _call(address, "GET", "/v1/models")[0] == 200
            assert _call(address, "GET", "/stats")[0] == 200
        assert _call(address, "POST", "/stats/reset")[0] == 200


def _statuses(seed: int, n: int, rate: float = 0.3) -> list[int]:
    with _server(rate=rate, kinds=["429", "500"], seed=seed) as address:
        conn = http.client.HTTPConnection(address, timeout=5)
        statuses = []
        for _ in range(n):
            conn.request("POST", CHAT, body=json.dumps(HELLO))
            resp = conn.getresponse()
            resp.read()
            statuses.append(resp.status)
        conn.close()
        stats = _stats(address)["requests"]
    assert stats["ok"] == statuses.count(200) and stats["total"] == n
    assert stats["429"] == statuses.count(429) and stats["500"] == statuses.count(500)
    return statuses


def test_fail_rate_is_per_request_seeded_and_about_right() -> None:
    statuses = _statuses(seed=7, n=200)
    failed = sum(s != 200 for s in statuses)
    assert 40 <= failed <= 80  # 30% of 200, give or take 3 sd
    assert {429, 500} <= set(statuses)
    assert _statuses(seed=7, n=200) == statuses  # reproducible
    assert _statuses(seed=8, n=200) != statuses


def test_fault_options_are_validated() -> None:
    assert parse_faults(["429", "500, reset", "429"]) == ("429", "500", "reset")
    with pytest.raises(ConfigError, match="unknown fault"):
        parse_faults(["503"])
    with pytest.raises(ConfigError):
        Faults(rate=1.5)
    assert Faults(rate=0.5, kinds=[]).kinds == DEFAULT_FAULTS


def test_stats_count_ok_answers_per_item_and_reset() -> None:
    with _server() as address:
        gsm = {"messages": [{"role": "user", "content": "Q: " + GSM_ROWS[0]["question"]}]}
        for _ in range(3):
            assert _call(address, "POST", CHAT, gsm)[0] == 200
        he = {"prompt": "Complete:\n" + HE_PROBLEMS[0]["prompt"]}
        assert _call(address, "POST", "/v1/completions", he)[0] == 200
        assert _call(address, "POST", CHAT, HELLO)[0] == 200
        assert _call(address, "POST", CHAT, {"model": "m"})[0] == 400
        stats = _stats(address)
        hello = "custom/0"
        assert stats["items"] == {"gsm8k/0": 3, "humaneval/HumanEval/0": 1, hello: 1}
        assert stats["requests"]["ok"] == 5 and stats["requests"]["bad_request"] == 1
        assert stats["requests"]["total"] == 6
        assert _call(address, "POST", "/stats/reset") == (200, {"status": "reset"})
        stats = _stats(address)
        assert stats["items"] == {} and stats["requests"]["total"] == 0


def test_stats_key_of_real_humaneval_item(endpoint: str) -> None:
    from launcher.harness.datasets import load_humaneval

    prompt = load_humaneval()[3]["prompt"]
    body = {"messages": [{"role": "user", "content": f"Complete:\n{prompt}"}]}
    assert _call(endpoint, "POST", CHAT, body)[0] == 200
    assert _stats(endpoint)["items"]["humaneval/HumanEval/3"] >= 1


def test_keep_alive_and_pipelining_on_one_connection() -> None:
    with _server(latency_ms=1) as address:
        host, port = address.split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            reader = sock.makefile("rb")
            for _ in range(300):
                sock.sendall(_post())
                status, headers, body = _read_response(reader)
                assert status == 200 and "connection" not in headers
                assert json.loads(body)["choices"][0]["message"]["content"] == "Hi"
            sock.sendall(_post() * 50)  # pipelined (past aiohttp's queue of 32): in order
            for _ in range(50):
                assert _read_response(reader)[0] == 200
            sock.sendall(_post(extra="Connection: close\r\n"))
            status, headers, _ = _read_response(reader)
            assert status == 200 and headers["connection"] == "close"
            assert reader.read() == b""  # closed by the server
        assert _stats(address)["requests"]["ok"] == 351


def test_http_1_0_closes_unless_keep_alive() -> None:
    with _server() as address:
        out = _raw(address, b"GET /health HTTP/1.0\r\n\r\n")  # read until it closes
        # aiohttp answers in the request's version
        assert out.startswith(b"HTTP/1.0 200 ") and out.endswith(b'{"status": "ok"}')


def test_expect_100_continue() -> None:
    with _server() as address:
        host, port = address.split(":")
        data = json.dumps(HELLO).encode()
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(
                f"POST {CHAT} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(data)}\r\n"
                "Expect: 100-continue\r\n\r\n".encode()
            )
            reader = sock.makefile("rb")
            assert reader.readline() == b"HTTP/1.1 100 Continue\r\n"
            assert reader.readline() == b"\r\n"
            sock.sendall(data)
            assert _read_response(reader)[0] == 200


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET /health HTTP/1.1 extra\r\n\r\n", 400),
        (b"GET /health FTP/1.1\r\n\r\n", 400),
        (b"GET /health HTTP/2.0\r\n\r\n", 505),
        (b"GET health HTTP/1.1\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\nNo colon here\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\nBad name: x\r\n\r\n", 400),
        (b"GET /health HTTP/1.1\r\n folded: x\r\n\r\n", 400),
        (b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 400),
        (b"POST /v1/chat/completions HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
         400),
        (b"GET /health HTTP/1.1\r\n\r\n", 400),  # aiohttp: HTTP/1.1 needs a Host header
        (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
         413),
        (b"GET /v1/chat/completions HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"DELETE /health HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"GET /nowhere HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 404),
    ],
)
def test_malformed_requests(request_bytes: bytes, status: int) -> None:
    with _server() as address:
        out = _raw(address, request_bytes) if status != 405 else _raw(
            address, request_bytes.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n", 1)
        )
        assert out.startswith(f"HTTP/1.1 {status} ".encode())
        payload = json.loads(out.split(b"\r\n\r\n", 1)[1])
        assert payload["error"]["message"] and payload["error"]["type"]


def test_chunked_body_is_answered() -> None:
    data = json.dumps(HELLO).encode()
    with _server() as address:
        out = _raw(address, b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n"
                   b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                   b"%x\r\n%s\r\n0\r\n\r\n" % (len(data), data))
        assert out.startswith(b"HTTP/1.1 200 ")
        assert json.loads(out.split(b"\r\n\r\n", 1)[1])["choices"][0]["message"]["content"] == "Hi"


def test_large_body_is_read_whole() -> None:
    """3 MiB (past aiohttp's 1 MiB default and its reader's pause/resume high water)."""
    body = {"messages": [{"role": "system", "content": "x" * (3 << 20)},
                         {"role": "user", "content": "Hello"}]}
    with _server() as address:
        status, out = _call(address, "POST", CHAT, body)
        assert status == 200 and out["choices"][0]["message"]["content"] == "Hi"


def test_request_head_too_large() -> None:
    with _server() as address:
        out = _raw(address, b"GET /health HTTP/1.1\r\nX: " + b"a" * (ref.MAX_HEAD + 10))
        assert out.startswith(b"HTTP/1.1 431 ")


def test_request_observer_sees_headers() -> None:
    seen: list[str | None] = []
    served = _server()

    served.server.observers.append(lambda req: seen.append(req.headers.get("Authorization")))
    with served as address:
        conn = http.client.HTTPConnection(address, timeout=5)
        conn.request("POST", CHAT, body=json.dumps(HELLO), headers={"authorization": "Bearer k"})
        assert conn.getresponse().status == 200
        conn.close()
    assert seen == ["Bearer k"]


def test_shutdown_before_serving_and_twice() -> None:
    server = ref.ReferenceServer(("127.0.0.1", 0), Oracle(1.0, [], None), 0)
    server.shutdown()  # not serving yet: serve_forever then returns at once
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    thread.join(5)
    assert not thread.is_alive()
    server.shutdown()
    server.server_close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_serves_and_stops_gracefully_on_signal(tmp_path: Path, sig: int) -> None:
    args = [sys.executable, "-c", "from launcher.cli import main; main()", "reference-endpoint",
            "--host", "127.0.0.1", "--port", "0", "--dataset-dir", str(tmp_path),
            "--fail-rate", "0.5", "--fault", "500,garbage", "--seed", "3"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        assert "GSM8K unavailable" in proc.stdout.readline()
        line = proc.stdout.readline()  # the line the integration tests and benchmarks look for
        found = re.search(r"reference endpoint \(not a model\) on http://127\.0\.0\.1:(\d+)/v1 ",
                          line)
        assert found, line
        assert "fail rate 0.5 (500, garbage; seed 3)" in proc.stdout.readline()
        address = f"127.0.0.1:{found.group(1)}"
        conn = http.client.HTTPConnection(address, timeout=5)  # an idle keep-alive connection
        conn.request("GET", "/health")
        assert conn.getresponse().read() == b'{"status": "ok"}'
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=10)
        assert proc.returncode == 0 and "reference endpoint stopped" in err
        conn.close()
    finally:
        proc.kill()
        proc.wait()


def test_cli_rejects_unknown_fault() -> None:
    from click.testing import CliRunner

    from launcher.cli import cli

    result = CliRunner().invoke(cli, ["reference-endpoint", "--fault", "429,boom"])
    assert result.exit_code == 2 and "unknown fault 'boom'" in result.output


def test_half_closed_client_still_gets_its_answer() -> None:
    with _server(latency_ms=100) as address:
        host, port = address.split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            sock.sendall(_post())
            sock.shutdown(socket.SHUT_WR)
            reader = sock.makefile("rb")
            assert _read_response(reader)[0] == 200
            assert reader.read() == b""
        # answered, but not counted as a success: a killed client sends the same FIN
        stats = _stats(address)
        assert stats["requests"]["after_eof"] == 1 and stats["requests"]["ok"] == 0
        assert stats["items"] == {}


def test_a_killed_client_is_never_counted_as_a_success() -> None:
    """SIGKILL a client while its answer waits out the latency: the answer is not an ok item
    (the kill-and-resume tests count re-requested successes on the endpoint side)."""
    with _server(latency_ms=300) as address:
        host, port = address.split(":")
        client = subprocess.Popen([sys.executable, "-c", (
            "import socket, sys, time\n"
            f"s = socket.create_connection(({host!r}, {port}))\n"
            f"s.sendall({_post()!r})\n"
            "print('sent', flush=True)\n"
            "time.sleep(30)\n"
        )], stdout=subprocess.PIPE)
        try:
            assert client.stdout is not None and client.stdout.readline() == b"sent\n"
        finally:
            client.kill()
            client.wait(timeout=10)
        time.sleep(0.5)  # past the latency: the answer was due and went nowhere
        stats = _stats(address)
    assert stats["items"] == {} and stats["requests"]["ok"] == 0
    assert stats["requests"]["dropped"] + stats["requests"]["after_eof"] == 1


def test_latency_counts_from_the_request_arrival() -> None:
    """The answer is due ``latency_ms`` after the request's first bytes arrived (the server's
    own work is inside the latency, as for a real model server), and each request on a kept-
    alive connection waits its own full latency, also after a /health request."""
    with _server(latency_ms=300) as address:
        host, port = address.split(":")
        with socket.create_connection((host, int(port)), timeout=5) as sock:
            f = sock.makefile("rb")
            data = _post()
            started = time.monotonic()
            sock.sendall(data[:20])
            time.sleep(0.2)  # a slow sender: the rest of the request comes 200 ms later
            sock.sendall(data[20:])
            assert _read_response(f)[0] == 200
            first = time.monotonic() - started
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            assert _read_response(f)[0] == 200
            started = time.monotonic()
            sock.sendall(_post())
            assert _read_response(f)[0] == 200
            second = time.monotonic() - started
    assert 0.3 <= first < 0.45, first  # 300 ms from the first bytes, not 500 ms
    assert 0.3 <= second < 0.45, second  # a full latency again: no stale arrival time
