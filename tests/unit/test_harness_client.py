from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Awaitable, Iterator
from typing import Any, TypeVar

import pytest

from launcher.harness.client import (
    Attempt,
    ChatClient,
    build_body,
    encode_body,
)
from launcher.harness.errors import EndpointError
from launcher.harness.limiter import AdaptiveLimiter
from tests.unit.harness_stub import StubServer

T = TypeVar("T")


def _client(url: str, **kw: Any) -> ChatClient:
    kw.setdefault("backoff_base", 0.01)
    return ChatClient(url, "my-model", **kw)


def _body(text: str, **sampling: Any) -> bytes:
    return encode_body(build_body("my-model", [{"role": "user", "content": text}],
                                  sampling=sampling))


def _complete(client: ChatClient, text: str) -> str:
    async def go() -> str:
        return (await client.complete(_body(text))).text

    return _run(client, go())


def _run(client: ChatClient, coro: Awaitable[T]) -> T:
    """Run ``coro`` on a new event loop, then close the client's session on it."""

    async def go() -> T:
        try:
            return await coro
        finally:
            await client.close()

    return asyncio.run(go())


def test_request_shape_and_auth_header(server: StubServer) -> None:
    client = _client(server.url, api_key="sk-secret")
    body = encode_body(build_body("my-model", [{"role": "user", "content": "hi"}],
                                  sampling={"temperature": 0.5, "top_p": 1.0, "max_tokens": 7}))
    completion = _run(client, client.complete(body))
    assert completion.text == "HI"
    assert completion.usage == {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}
    assert completion.finish_reason == "stop" and completion.attempts == 1
    headers, sent = server.requests[0]
    assert headers["Authorization"] == "Bearer sk-secret"
    assert headers["Host"] == f"127.0.0.1:{server.server_address[1]}"
    assert sent == {"model": "my-model", "temperature": 0.5, "top_p": 1.0, "max_tokens": 7,
                    "messages": [{"role": "user", "content": "hi"}]}
    assert "sk-secret" not in repr(client)


def test_canonical_body_is_sorted_and_compact() -> None:
    expected = '{"a":[1,{"c":"é","d":2}],"b":1}'.encode()
    assert encode_body({"b": 1, "a": [1, {"d": 2, "c": "é"}]}) == expected


def test_no_auth_header_without_key(server: StubServer) -> None:
    _complete(_client(server.url), "x")
    assert "Authorization" not in server.requests[0][0]


FAULTS: list[tuple[Any, str]] = [
    ((429, {"Retry-After": "0"}, {"error": "slow down"}), "http_429"),
    ((500, {}, {"error": "boom"}), "http_5xx"),
    ((502, {}, b"bad gateway"), "http_5xx"),
    ((503, {}, b""), "http_5xx"),
    ((408, {}, b""), "http_408"),
    ("reset", "connection"),
    ("garbage", "bad_response"),
    ((200, {}, {"no": "choices"}), "bad_response"),
    ("hang", "timeout"),
]


@pytest.mark.parametrize(("fault", "kind"), FAULTS, ids=[k for _, k in FAULTS])
def test_each_fault_kind_is_retried(server: StubServer, fault: Any, kind: str) -> None:
    seen: list[Attempt] = []
    server.script = [fault, fault]
    client = _client(server.url, max_retries=2, timeout=0.3 if fault == "hang" else 5.0,
                     observer=lambda a, ctx: seen.append(a))
    assert _complete(client, "ok") == "OK"
    assert len(server.requests) == 3
    assert [a.kind for a in seen] == [kind, kind, None]
    assert [a.attempt for a in seen] == [0, 1, 2]


def test_retry_after_seconds_is_honoured(server: StubServer) -> None:
    server.script = [(429, {"Retry-After": "1"}, {})]
    start = time.monotonic()
    assert _complete(_client(server.url, max_retries=1), "a") == "A"
    assert time.monotonic() - start >= 0.95


def test_retry_after_http_date_is_honoured(server: StubServer) -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # 1-2 s from now (rounding)
    server.script = [(503, {"Retry-After": when}, {})]
    start = time.monotonic()
    assert _complete(_client(server.url, max_retries=1), "a") == "A"
    assert time.monotonic() - start >= 0.9


def test_backoff_grows_exponentially_with_jitter() -> None:
    client = ChatClient("http://127.0.0.1:9/v1", "m", backoff_base=1.0, backoff_max=8.0)
    for attempt, ceiling in [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (6, 8.0)]:
        delays = {client._delay(attempt, None) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jitter
    assert 7.0 <= client._delay(0, 7.0) <= 7.7
    assert 120.0 <= client._delay(0, 10_000.0) <= 121.0
    assert client._delay(3, 0.0) == 0.0


def test_gives_up_after_max_retries(server: StubServer) -> None:
    server.script = [(500, {}, {"error": "boom"})] * 5
    with pytest.raises(EndpointError, match=r"HTTP 500 .*gave up after 3 attempts"):
        _complete(_client(server.url, max_retries=2), "a")
    assert len(server.requests) == 3


def test_client_errors_are_not_retried(server: StubServer) -> None:
    seen: list[Attempt] = []
    server.script = [(401, {}, {"error": {"message": "bad key"}})]
    with pytest.raises(EndpointError, match="HTTP 401"):
        _complete(_client(server.url, max_retries=5, observer=lambda a, c: seen.append(a)), "a")
    assert len(server.requests) == 1
    assert [(a.kind, a.status) for a in seen] == [("http_4xx", 401)]


def test_unreachable_endpoint() -> None:
    client = _client("http://127.0.0.1:9/v1/chat/completions", max_retries=2)
    with pytest.raises(EndpointError, match="connection error.*gave up after 3 attempts"):
        _complete(client, "a")


def test_completions_endpoint_type(server: StubServer) -> None:
    client = _client(server.url, endpoint_type="completions")
    body = encode_body(build_body("my-model", [{"role": "user", "content": "q"}],
                                  endpoint_type="completions"))
    assert _run(client, client.complete(body)).text == "Q"
    assert server.requests[0][1]["prompt"] == "q"


@pytest.mark.parametrize("framing", ["chunked", "close", "http10", "idle_close"])
def test_response_framings_and_reconnects(server: StubServer, framing: str) -> None:
    server.script = [framing, framing, None]
    seen: list[Attempt] = []
    client = _client(server.url, observer=lambda a, c: seen.append(a))

    async def go() -> list[str]:
        return [(await client.complete(_body(f"r{i}"))).text for i in range(3)]

    assert _run(client, go()) == ["R0", "R1", "R2"]
    assert all(a.ok for a in seen)  # a closed keep-alive connection is no error
    assert server.connections == (1 if framing == "chunked" else 3)


def test_reset_of_a_reused_connection_is_sent_again_once(server: StubServer) -> None:
    server.script = [None, "reset"]
    seen: list[Attempt] = []
    client = _client(server.url, observer=lambda a, c: seen.append(a))

    async def go() -> list[str]:
        return [(await client.complete(_body(f"r{i}"))).text for i in range(2)]

    assert _run(client, go()) == ["R0", "R1"]
    assert all(a.ok for a in seen) and client.reconnects == 1
    assert len(server.requests) == 3


def test_keep_alive_reuses_one_connection(server: StubServer) -> None:
    client = _client(server.url)

    async def go() -> None:
        for i in range(10):
            await client.complete(_body(f"x{i}"))

    _run(client, go())
    assert server.connections == 1 and client.opened == 1


def test_parallelism_bounds_requests_in_flight(server: StubServer) -> None:
    server.delay = 0.05
    client = _client(server.url, parallelism=3)

    async def go() -> list[str]:
        return [c.text for c in await asyncio.gather(
            *(client.complete(_body(f"p{i}")) for i in range(12)))]

    assert _run(client, go()) == [f"P{i}" for i in range(12)]
    assert server.max_in_flight == 3


# -- adaptive concurrency ---------------------------------------------------------------------


def test_limiter_halves_on_repeated_429s_once_per_epoch_and_recovers() -> None:
    lim = AdaptiveLimiter(16)

    async def go() -> None:
        epochs = [await lim.acquire() for _ in range(16)]
        assert lim.in_flight == 16
        for e in epochs[:8]:  # 8 answers of the same epoch are 429s: one decrease only
            lim.rate_limited(e)
            lim.release()
        assert (lim.current, lim.decreases, lim.epoch) == (8, 1, 1)
        assert lim.in_flight == 8
        blocked = asyncio.ensure_future(lim.acquire())  # 8 in flight: at the new limit
        await asyncio.sleep(0.01)
        assert not blocked.done()
        lim.release()
        e = await asyncio.wait_for(blocked, 1)
        assert e == 1 and lim.in_flight == 8
        lim.rate_limited(e)
        lim.rate_limited(e)  # a second 429 in the new epoch
        assert lim.current == 4 and lim.lowest == 4
        for _ in range(8):
            lim.release()
        # recovery: +1 after `limit` successes
        n = 0
        while lim.current < 16:
            e = await lim.acquire()
            lim.succeeded()
            lim.release()
            n += 1
        assert n == sum(range(4, 16))
        assert lim.current == 16 and lim.lowest == 4

    asyncio.run(go())


def test_limiter_blocks_beyond_limit_and_survives_cancellation() -> None:
    lim = AdaptiveLimiter(1)

    async def go() -> None:
        await lim.acquire()
        waiter = asyncio.ensure_future(lim.acquire())
        await asyncio.sleep(0.01)
        assert not waiter.done()
        waiter.cancel()
        lim.release()
        await asyncio.sleep(0)
        assert lim.in_flight == 0
        await asyncio.wait_for(lim.acquire(), 1)
        assert lim.in_flight == 1

    asyncio.run(go())


def _rate_limited_run(server: StubServer, limiter: AdaptiveLimiter) -> int:
    """1000 requests, 32 workers, against a server that answers 429 while more than 4 requests
    are in flight (for its first 150 requests); returns the number of 429s."""
    server.delay = 0.01
    state = {"n": 0}

    def limited(body: dict[str, Any]) -> Any:
        with server.lock:
            state["n"] += 1
            busy = server.in_flight > 4 and state["n"] <= 150
        return (429, {"Retry-After": "0.05"}, {"error": "rate limited"}) if busy else None

    server.default = limited
    seen: list[Attempt] = []
    client = _client(server.url, parallelism=32, max_retries=50, limiter=limiter,
                     observer=lambda a, c: seen.append(a))

    async def go() -> None:
        bodies = iter(_body(f"q{i}") for i in range(1000))

        async def worker() -> None:
            for b in bodies:
                await client.complete(b)

        await asyncio.gather(*(worker() for _ in range(32)))

    _run(client, go())
    assert len(server.ok_counts) == 1000
    return sum(1 for a in seen if a.kind == "http_429")


def test_rate_limited_endpoint_is_not_hammered_and_concurrency_recovers() -> None:
    fixed_server, adaptive_server = StubServer().start(), StubServer().start()
    try:
        fixed = _rate_limited_run(fixed_server, AdaptiveLimiter(32, trigger=10**9))
        limiter = AdaptiveLimiter(32)
        adaptive = _rate_limited_run(adaptive_server, limiter)
    finally:
        fixed_server.stop()
        adaptive_server.stop()
    # Quiet machine: about 20 refusals adaptive vs about 115 at a fixed 32 in flight.
    assert adaptive < fixed
    assert limiter.decreases >= 1 and limiter.lowest <= 16
    assert limiter.current == 32  # recovered once the endpoint stopped refusing


def test_body_helpers() -> None:
    body = build_body("m", [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}],
                      endpoint_type="completions", sampling={"temperature": 0})
    assert body == {"model": "m", "temperature": 0, "prompt": "a\n\nb"}
    assert json.loads(encode_body(body)) == body


# -- against the reference endpoint's fault injection ----------------------------------------


def test_fetch_through_every_fault_kind_of_the_reference_endpoint(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """30% of requests fail (429, 500, timeout, reset, garbage); every item still gets its
    answer, and each item is answered ok exactly once (no success is requested again)."""
    import threading

    import launcher.testing.reference_endpoint as ref
    from launcher.harness import fetch
    from launcher.harness.runconfig import parse_run_config

    monkeypatch.setattr(fetch, "BACKOFF_BASE_S", 0.01)
    faults = ref.Faults(0.3, ["429", "500", "timeout", "reset", "garbage"], seed=7, hang_s=5)
    questions = tmp_path / "questions.jsonl"  # custom-task items the endpoint knows
    questions.write_text("".join(
        json.dumps({"question": f"question number {i}", "answer": f"{i}"}) + "\n"
        for i in range(60)))
    server = ref.make_server("127.0.0.1", 0, 1.0, 5, None, faults=faults, custom=[str(questions)])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/v1/chat/completions"
        cfg = parse_run_config({
            "config": {"type": "t", "output_dir": str(tmp_path),
                       "params": {"parallelism": 8, "max_retries": 10, "request_timeout": 0.5}},
            "target": {"api_endpoint": {"url": url, "model_id": "reference"}},
        })
        prompts = [[{"role": "user", "content": f"question number {i}"}] for i in range(60)]
        result = fetch.fetch_responses(cfg, prompts, say=lambda _: None)
        stats = server.stats.snapshot()
    finally:
        server.shutdown()
        server.server_close()
    assert len(result.answers) == 60 and all(a[0].text for a in result.answers)
    kinds = result.stats["errors"]
    assert set(kinds) <= {"http_429", "http_5xx", "timeout", "connection", "bad_response"}
    assert sum(kinds.values()) + result.stats["connections"]["reconnects"] >= 10
    assert len(stats["items"]) == 60 and set(stats["items"].values()) == {1}


# -- https and proxies ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl CLI not found (needed to make a test certificate)")
    d = tmp_path_factory.mktemp("tls")
    cert, key = str(d / "cert.pem"), str(d / "key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
         "-out", cert, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return cert, key


@pytest.fixture
def tls_server(tls_files: tuple[str, str], monkeypatch: pytest.MonkeyPatch
               ) -> Iterator[StubServer]:
    import ssl

    cert, key = tls_files
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    monkeypatch.setenv("SSL_CERT_FILE", cert)  # the client's default context trusts it
    srv = StubServer(ssl_context=ctx).start()
    yield srv
    srv.stop()


def test_https_keep_alive_and_chunked(tls_server: StubServer) -> None:
    tls_server.script = ["chunked", None, "garbage"]
    client = _client(tls_server.url, api_key="k")

    async def go() -> list[str]:
        return [(await client.complete(_body(f"s{i}"))).text for i in range(3)]

    assert _run(client, go()) == ["S0", "S1", "S2"]
    assert client.opened == 1
    assert tls_server.requests[0][0]["Authorization"] == "Bearer k"


def test_https_rejects_an_untrusted_certificate(
    tls_server: StubServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any
) -> None:
    empty = tmp_path / "none.pem"
    empty.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    with pytest.raises(EndpointError, match="certificate not trusted.*CERTIFICATE_VERIFY_FAILED"):
        _complete(_client(tls_server.url, max_retries=5), "a")  # not retried


def test_https_through_a_connect_proxy(tls_server: StubServer) -> None:
    from tests.unit.harness_stub import ConnectProxy

    proxy = ConnectProxy()
    try:
        user_proxy = proxy.url.replace("http://", "http://me:p%40ss@")
        client = _client(tls_server.url, proxy=user_proxy)

        async def go() -> list[str]:
            return [(await client.complete(_body(f"t{i}"))).text for i in range(3)]

        assert _run(client, go()) == ["T0", "T1", "T2"]
    finally:
        proxy.stop()
    port = tls_server.server_address[1]
    assert [line for line, _ in proxy.connects] == [f"CONNECT localhost:{port} HTTP/1.1"]
    assert proxy.connects[0][1]["Proxy-Authorization"] == "Basic bWU6cEBzcw=="  # me:p@ss
    assert "Proxy-Authorization" not in tls_server.requests[0][0]  # not sent to the origin


# The CONNECT target always has the port; Host is the URL's authority (RFC 9110 7.2: the
# default port may be left out), as aiohttp sends it.
@pytest.mark.parametrize(("url", "target", "host"), [
    ("https://[::1]/v1/chat/completions", "[::1]:443", "[::1]"),  # IPv6 on the default port
    ("https://[::1]:8443/v1/chat/completions", "[::1]:8443", "[::1]:8443"),
    ("https://localhost/v1/chat/completions", "localhost:443", "localhost"),
])
def test_connect_target_is_host_and_port(url: str, target: str, host: str) -> None:
    from tests.unit.harness_stub import ConnectProxy

    proxy = ConnectProxy()  # no origin there: the request fails after the CONNECT
    try:
        with pytest.raises(EndpointError):
            _complete(_client(url, proxy=proxy.url, max_retries=0, timeout=5), "a")
    finally:
        proxy.stop()
    assert [line for line, _ in proxy.connects] == [f"CONNECT {target} HTTP/1.1"]
    assert proxy.connects[0][1]["Host"] == host


def test_plain_http_through_a_proxy_uses_the_absolute_uri(
    server: StubServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", server.base)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = _client("http://model.example:8000/v1/chat/completions")
    assert client.proxy == server.base
    assert _complete(client, "via") == "VIA"
    assert server.request_lines == ["POST http://model.example:8000/v1/chat/completions HTTP/1.1"]
    assert server.requests[0][0]["Host"] == "model.example:8000"


def test_proxy_env_is_bypassed_for_loopback_and_no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    assert ChatClient("http://127.0.0.1:8000/v1", "m").proxy is None
    assert ChatClient("http://localhost:8000/v1", "m").proxy is None
    assert ChatClient("https://internal.example/v1", "m").proxy is None
    assert ChatClient("https://api.example/v1", "m").proxy == "http://proxy.example:3128"


# -- non-retryable HTTP errors: the server's message, never the key ---------------------------


@pytest.mark.parametrize(("status", "payload", "expected"), [
    (422, {"error": {"message": "unknown prompt: gsm8k data not loaded; start it with"
                                " --dataset-dir DIR", "type": "invalid_request_error"}},
     "HTTP 422 Unprocessable Entity: unknown prompt: gsm8k data not loaded; start it with"
     " --dataset-dir DIR"),
    (400, {"error": "model 'x' not found"}, "HTTP 400 Bad Request: model 'x' not found"),
    (404, {"detail": "Not Found"}, "HTTP 404 Not Found: Not Found"),
    (403, b"forbidden\n  by policy", "HTTP 403 Forbidden: forbidden by policy"),
    (401, b"", "HTTP 401 Unauthorized"),
])
def test_client_error_message_is_the_servers(
    server: StubServer, status: int, payload: Any, expected: str
) -> None:
    server.script = [(status, {}, payload)]
    with pytest.raises(EndpointError) as e:
        _complete(_client(server.url, max_retries=5), "a")
    assert str(e.value) == f"{server.url}: {expected}"
    assert len(server.requests) == 1


def test_long_error_message_is_truncated_to_one_line(server: StubServer) -> None:
    server.script = [(400, {}, {"error": {"message": "bad\nrequest " + "x" * 5000}})]
    with pytest.raises(EndpointError) as e:
        _complete(_client(server.url), "a")
    message = str(e.value)
    assert "\n" not in message and message.endswith("...") and len(message) < 400
    assert "HTTP 400 Bad Request: bad request xxx" in message


def test_api_key_is_scrubbed_from_errors_and_snippets(server: StubServer) -> None:
    key = "sk-live-0123456789"
    seen: list[Attempt] = []
    server.script = [(500, {}, {"error": {"message": f"key {key} is over quota"}}),
                     (401, {}, {"error": {"message": f"invalid key {key}"}})]
    with pytest.raises(EndpointError) as e:
        _complete(_client(server.url, api_key=key, observer=lambda a, c: seen.append(a)), "a")
    assert str(e.value).endswith("HTTP 401 Unauthorized: invalid key ***")
    assert len(seen) == 2
    for a in seen:
        assert key not in a.message and key not in a.response_snippet
        assert "***" in a.message and "***" in a.response_snippet


def test_run_eval_fails_the_task_with_the_servers_message(
    server: StubServer, tmp_path: Any, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A reference endpoint without its data answers 422: the task fails (exit 1, no results)
    with one error line carrying the message, and the key appears nowhere."""
    import yaml

    from launcher.harness.run_eval import main

    key = "sk-test-key-42"
    monkeypatch.setenv("BENCH_KEY", key)
    message = "unknown prompt: gsm8k data not loaded; start it with --dataset-dir DIR"
    server.default = (422, {}, {"error": {"message": f"{message} (key {key})"}})
    data = tmp_path / "datasets"
    data.mkdir()
    (data / "qa.jsonl").write_text(json.dumps({"question": "2 + 2?", "answer": 4}) + "\n")
    out = tmp_path / "results"
    cfg = {
        "config": {"type": "custom", "output_dir": str(out),
                   "params": {"max_retries": 3,
                              "extra": {"dataset_dir": str(data), "dataset_path": "qa.jsonl"}}},
        "target": {"api_endpoint": {"url": server.url, "model_id": "m",
                                    "api_key_name": "BENCH_KEY"}},
    }  # fmt: skip
    path = tmp_path / "run_config.yml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(str(path)) == 1
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert err == [f"error: {server.url}: HTTP 422 Unprocessable Entity: {message} (key ***)"]
    assert len(server.requests) == 1  # not retried
    assert not (out / "results.yml").exists() and not (out / "samples.jsonl").exists()
    assert key not in captured.out
    for f in out.rglob("*"):
        if f.is_file():
            assert key.encode() not in f.read_bytes(), f
