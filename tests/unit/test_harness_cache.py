"""The response cache and resume: replay, n samples, SIGKILL mid-run, SIGTERM, corruption."""

from __future__ import annotations

import asyncio
import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from launcher.errors import EnvironmentProblem
from launcher.harness import cache as cache_mod
from launcher.harness.cache import ResponseCache, cache_path, request_key
from launcher.harness.errors import EndpointError
from launcher.harness.fetch import fetch_responses, request_body
from launcher.harness.runconfig import RunConfig, parse_run_config
from tests.unit.harness_stub import StubServer

ROOT = Path(__file__).resolve().parents[2]


def _cfg(out: Path, url: str, adapter: dict[str, Any] | None = None, **params: Any) -> RunConfig:
    params.setdefault("parallelism", 4)
    api: dict[str, Any] = {"url": url, "model_id": "m", "type": "chat"}
    if adapter is not None:
        api["adapter_config"] = adapter
    return parse_run_config({
        "config": {"type": "t", "output_dir": str(out), "params": params},
        "target": {"api_endpoint": api},
    })


def _prompts(n: int) -> list[list[dict[str, str]]]:
    return [[{"role": "user", "content": f"item {i}"}] for i in range(n)]


def _quiet(_: str) -> None:
    pass


def test_request_key_depends_on_body_and_sample() -> None:
    assert request_key(b"{}", 0) != request_key(b"{}", 1)
    assert request_key(b"{}", 0) != request_key(b"{ }", 0)
    assert request_key(b"{}", 3) == request_key(b"{}", 3)
    assert len(request_key(b"x")) == 64


def test_second_run_replays_everything_and_requests_nothing(
    server: StubServer, tmp_path: Path
) -> None:
    cfg = _cfg(tmp_path, server.url)
    first = fetch_responses(cfg, _prompts(20), say=_quiet)
    assert [a[0].text for a in first.answers] == [f"ITEM {i}" for i in range(20)]
    assert len(server.requests) == 20
    assert not any(a[0].cached for a in first.answers)
    assert first.stats["cache"]["written"] == 20 and first.stats["cache"]["replayed"] == 0

    second = fetch_responses(cfg, _prompts(20), say=_quiet)
    assert len(server.requests) == 20  # nothing new
    assert [a[0].text for a in second.answers] == [a[0].text for a in first.answers]
    assert all(a[0].cached for a in second.answers)
    assert second.stats["cached"] == 20 and second.stats["requests"] == 0
    progress = json.loads((tmp_path / "progress.json").read_text())
    assert progress["done"] == progress["total"] == progress["cached"] == 20

    third = fetch_responses(cfg, _prompts(25), say=_quiet)  # only the 5 new ones are sent
    assert len(server.requests) == 25
    assert sum(a[0].cached for a in third.answers) == 20


def test_samples_are_separate_requests_and_rows(server: StubServer, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, server.url, temperature=0.0)
    result = fetch_responses(cfg, _prompts(4), samples_per_prompt=3, say=_quiet)
    assert [len(a) for a in result.answers] == [3, 3, 3, 3]
    assert len(server.requests) == 12  # identical at temperature 0, still 3 requests each
    assert server.ok_counts["item 0"] == 3
    conn = sqlite3.connect(cache_path(str(tmp_path)))
    assert conn.execute("SELECT COUNT(*) FROM responses").fetchone()[0] == 12
    conn.close()
    fetch_responses(cfg, _prompts(4), samples_per_prompt=4, say=_quiet)
    assert len(server.requests) == 16  # only sample index 3 of each prompt is new


def test_changed_request_is_a_cache_miss(server: StubServer, tmp_path: Path) -> None:
    fetch_responses(_cfg(tmp_path, server.url), _prompts(3), say=_quiet)
    fetch_responses(_cfg(tmp_path, server.url, temperature=0.5), _prompts(3), say=_quiet)
    assert len(server.requests) == 6


def test_use_caching_false_writes_no_cache(server: StubServer, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, server.url, adapter={"use_caching": False})
    result = fetch_responses(cfg, _prompts(3), say=_quiet)
    fetch_responses(cfg, _prompts(3), say=_quiet)
    assert len(server.requests) == 6
    assert not (tmp_path / "cache").exists()
    assert "cache" not in result.stats


def test_caching_dir_is_honoured(server: StubServer, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path / "out", server.url, adapter={"caching_dir": str(tmp_path / "elsewhere")})
    fetch_responses(cfg, _prompts(2), say=_quiet)
    assert (tmp_path / "elsewhere" / "responses.sqlite").is_file()


def test_failed_run_keeps_what_was_answered(server: StubServer, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, server.url, parallelism=1, max_retries=0)
    server.script = [None] * 5 + [(400, {}, {"error": "too long"})]
    with pytest.raises(EndpointError, match="HTTP 400"):
        fetch_responses(cfg, _prompts(10), say=_quiet)
    assert len(server.requests) == 6
    result = fetch_responses(cfg, _prompts(10), say=_quiet)  # resumes: 5 replayed, 5 sent
    assert len(server.requests) == 11
    assert sum(a[0].cached for a in result.answers) == 5


def test_writes_are_batched(server: StubServer, tmp_path: Path) -> None:
    cfg = _cfg(tmp_path, server.url, parallelism=16)
    result = fetch_responses(cfg, _prompts(200), say=_quiet)
    assert result.stats["cache"]["written"] == 200
    assert result.stats["cache"]["commits"] < 100


def test_unusable_cache_file_is_moved_aside(server: StubServer, tmp_path: Path) -> None:
    path = Path(cache_path(str(tmp_path)))
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database" * 100)
    said: list[str] = []
    fetch_responses(_cfg(tmp_path, server.url), _prompts(2), say=said.append)
    assert any("unusable" in s for s in said)
    assert len(list(path.parent.glob("responses.sqlite.corrupt-*"))) == 1
    assert ResponseCache(str(path)).count() == 2


def test_commit_before_counted(tmp_path: Path) -> None:
    """on_committed runs only after the row is durable (readable from another connection)."""
    path = str(tmp_path / "c.sqlite")
    cache = ResponseCache(path)
    seen: list[tuple[str, bool]] = []

    def committed(tokens: list[Any]) -> None:
        other = sqlite3.connect(path)
        for key in tokens:
            row = other.execute("SELECT 1 FROM responses WHERE key=?", (key,)).fetchone()
            seen.append((key, row is not None))
        other.close()

    async def go() -> None:
        cache.start(committed)
        for i in range(100):
            cache.put(f"k{i}", b"{}", f"k{i}")
        await cache.flush()

    asyncio.run(go())
    cache.close()
    assert len(seen) == 100 and all(ok for _, ok in seen)


def test_batch_window_bounds_the_lag(tmp_path: Path) -> None:
    cache = ResponseCache(str(tmp_path / "c.sqlite"))
    times: list[float] = []

    async def go() -> None:
        cache.start(lambda tokens: times.append(time.monotonic()))
        start = time.monotonic()
        cache.put("a", b"{}", "a")
        while not times:
            await asyncio.sleep(0.005)
        assert times[0] - start < cache_mod.BATCH_S + 0.5

    asyncio.run(go())
    cache.close()



def test_flush_waits_for_every_queued_row(tmp_path: Path) -> None:
    path = str(tmp_path / "c.sqlite")
    cache = ResponseCache(path)
    committed: list[int] = []

    async def go() -> None:
        cache.start(committed.extend)
        await cache.flush()  # nothing queued: returns at once
        for i in range(cache_mod.BATCH_ROWS * 2 + 3):  # two full batches and a partial one
            cache.put(f"k{i}", b"{}", i)
        await cache.flush()
        assert cache.pending == 0
        assert committed == list(range(cache_mod.BATCH_ROWS * 2 + 3))

    asyncio.run(go())
    cache.close()
    assert ResponseCache(path).count() == cache_mod.BATCH_ROWS * 2 + 3


def _failing_commit(self: ResponseCache, conn: Any, batch: Any) -> None:
    raise sqlite3.OperationalError("disk I/O error")


def test_a_failed_commit_is_raised_by_flush_room_and_put(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ResponseCache, "_commit", _failing_commit)
    cache = ResponseCache(str(tmp_path / "c.sqlite"))
    committed: list[Any] = []

    async def go() -> None:
        cache.start(committed.extend)
        for i in range(3):
            cache.put(f"k{i}", b"{}", i)
        with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
            await cache.flush()
        with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
            await cache.room(1)
        with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
            cache.put("k3", b"{}", 3)

    asyncio.run(go())
    cache.close()
    assert committed == []


@pytest.mark.parametrize("n", [2, 200])  # the error reaches the final flush / a worker first
def test_a_cache_write_error_ends_the_run_as_an_environment_problem(
    server: StubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, n: int
) -> None:
    monkeypatch.setattr(ResponseCache, "_commit", _failing_commit)
    with pytest.raises(EnvironmentProblem) as info:
        fetch_responses(_cfg(tmp_path, server.url), _prompts(n), say=_quiet)
    path = cache_path(str(tmp_path))
    assert info.value.message == f"cannot write the response cache {path}: disk I/O error"
    assert isinstance(info.value.__cause__, sqlite3.OperationalError)


# -- kill mid-run and resume ------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {root!r})
    from launcher.errors import LauncherError
    from launcher.harness.fetch import fetch_responses
    from launcher.harness.runconfig import parse_run_config
    cfg = parse_run_config({{
        "config": {{"type": "t", "output_dir": {out!r}, "params": {{"parallelism": 8}}}},
        "target": {{"api_endpoint": {{"url": {url!r}, "model_id": "m"}}}},
    }})
    prompts = [[{{"role": "user", "content": f"item {{i}}"}}] for i in range({n})]
    try:
        fetch_responses(cfg, prompts, say=lambda s: None)
    except LauncherError as e:  # as run_eval.main does
        sys.exit(e.exit_code)
    print("finished", flush=True)
""")


def _child(out: Path, url: str, n: int) -> subprocess.Popen[str]:
    code = CHILD.format(root=str(ROOT), out=str(out), url=url, n=n)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_progress(out: Path, done: int, proc: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        try:
            if json.loads((out / "progress.json").read_text())["done"] >= done:
                return
        except (OSError, ValueError, KeyError):
            pass
        time.sleep(0.01)
    raise AssertionError("no progress")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_kill_mid_run_then_rerun_requests_only_what_is_missing(
    server: StubServer, tmp_path: Path, sig: signal.Signals
) -> None:
    n = 600
    server.delay = 0.02  # about 1.5 s in all: the signal comes long before the end
    proc = _child(tmp_path, server.url, n)
    _wait_for_progress(tmp_path, 60, proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    if sig == signal.SIGTERM:
        assert proc.returncode == 143, err
    else:
        assert proc.returncode == -signal.SIGKILL
    server.wait_idle()  # the killed client's requests may still be in the server's delay

    path = cache_path(str(tmp_path))
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    cfg = _cfg(tmp_path, server.url)
    body_of = {i: request_body(cfg, p) for i, p in enumerate(_prompts(n))}
    committed = ResponseCache(path).keys()
    done_items = {i for i, b in body_of.items() if request_key(b, 0) in committed}
    answered_first = dict(server.ok_counts)
    assert 60 <= len(done_items) < n
    # lost: answered by the server, not committed (in flight or in the open batch)
    lost = {f"item {i}" for i in range(n) if i not in done_items} & set(answered_first)
    if sig == signal.SIGTERM:
        assert len(lost) <= 8  # a clean stop commits all it got: only those in flight are lost
    else:
        assert len(lost) <= 8 + cache_mod.BATCH_ROWS

    server.ok_counts.clear()
    first_requests = len(server.requests)
    result = fetch_responses(cfg, _prompts(n), say=_quiet)
    assert [a[0].text for a in result.answers] == [f"ITEM {i}" for i in range(n)]
    second = dict(server.ok_counts)
    assert len(server.requests) - first_requests == n - len(done_items)
    assert set(second) == {f"item {i}" for i in range(n) if i not in done_items}
    assert all(count == 1 for count in second.values())  # each missing item requested once
    assert sum(a[0].cached for a in result.answers) == len(done_items)


def test_progress_counts_only_committed_answers(server: StubServer, tmp_path: Path) -> None:
    """Whatever progress.json said before a kill, the cache holds at least that many rows."""
    server.delay = 0.01
    proc = _child(tmp_path, server.url, 200)
    _wait_for_progress(tmp_path, 40, proc)
    proc.kill()
    proc.communicate(timeout=30)
    reported = json.loads((tmp_path / "progress.json").read_text())["done"]
    assert ResponseCache(cache_path(str(tmp_path))).count() >= reported



def test_uncommitted_answers_are_bounded_by_parallelism(
    server: StubServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a slow disk (commits take 50 ms) workers wait for room instead of piling up
    answers a kill would lose."""
    pending: list[int] = []
    original_put = ResponseCache.put
    original_commit = ResponseCache._commit

    def put(self: ResponseCache, key: str, body: bytes, token: Any) -> None:
        original_put(self, key, body, token)
        pending.append(self.pending)

    def slow_commit(self: ResponseCache, conn: Any, batch: Any) -> None:
        time.sleep(0.05)
        original_commit(self, conn, batch)

    monkeypatch.setattr(ResponseCache, "put", put)
    monkeypatch.setattr(ResponseCache, "_commit", slow_commit)
    result = fetch_responses(_cfg(tmp_path, server.url, parallelism=4), _prompts(60),
                             say=_quiet)
    assert len(result.answers) == 60
    # a worker waits once `parallelism` rows are pending; the others' answers still land
    assert max(pending) < 2 * 4


def _healthy_cache(tmp_path: Path, rows: int) -> Path:
    path = Path(cache_path(str(tmp_path)))
    cache = ResponseCache(str(path))
    conn = cache._read
    conn.executemany("INSERT INTO responses (key, body, created) VALUES (?, ?, 0)",
                     [(f"k{i}", b"{}") for i in range(rows)])
    cache.close()
    return path


def test_a_full_disk_at_open_leaves_a_healthy_cache_where_it_is(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a file proven corrupt is moved aside: SQLITE_FULL says nothing about the file."""
    from launcher.harness import cache as cache_mod

    path = _healthy_cache(tmp_path, 56)
    real = cache_mod._connect

    def full(p: str) -> sqlite3.Connection:
        error = sqlite3.OperationalError("database or disk is full")
        error.sqlite_errorcode = sqlite3.SQLITE_FULL  # type: ignore[attr-defined]
        raise error

    monkeypatch.setattr(cache_mod, "_connect", full)
    with pytest.raises(sqlite3.OperationalError, match="disk is full"):
        ResponseCache(str(path), warn=pytest.fail)
    assert not list(path.parent.glob("*.corrupt-*"))
    monkeypatch.setattr(cache_mod, "_connect", real)
    assert ResponseCache(str(path)).count() == 56  # intact


def test_is_corrupt_checks_the_file_not_only_the_error(tmp_path: Path) -> None:
    from launcher.harness.cache import is_corrupt

    healthy = _healthy_cache(tmp_path / "a", 3)
    claim = sqlite3.DatabaseError("database disk image is malformed")
    claim.sqlite_errorcode = sqlite3.SQLITE_CORRUPT  # type: ignore[attr-defined]
    assert not is_corrupt(str(healthy), claim)  # the integrity check says ok
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"this is not a database" * 100)
    notadb = sqlite3.DatabaseError("file is not a database")
    notadb.sqlite_errorcode = sqlite3.SQLITE_NOTADB  # type: ignore[attr-defined]
    assert is_corrupt(str(garbage), notadb)


def test_a_full_disk_on_commit_reports_the_real_error(tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's own SQLITE_FULL (a page limit stands in for the disk), not 'cannot rollback -
    no transaction is active'; the rows committed before stay."""
    from launcher.harness import cache as cache_mod

    path = _healthy_cache(tmp_path, 2)
    real = cache_mod._connect

    def small_disk(p: str) -> sqlite3.Connection:
        conn = real(p)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count={pages}")
        return conn

    monkeypatch.setattr(cache_mod, "_connect", small_disk)
    cache = ResponseCache(str(path))
    conn = small_disk(str(path))
    with pytest.raises(sqlite3.OperationalError, match="full") as info:
        cache._commit(conn, [(f"new{i}", b"x" * 4096, None) for i in range(50)])
    assert "no transaction" not in str(info.value)
    conn.close()
    cache.close()
    monkeypatch.setattr(cache_mod, "_connect", real)
    assert ResponseCache(str(path)).count() == 2
