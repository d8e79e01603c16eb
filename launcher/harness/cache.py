"""The response cache: every successful answer, in SQLite under the output dir.

``<output_dir>/cache/responses.sqlite`` (WAL mode) has one row per request key: the sha256 of
the canonical request body (see :func:`launcher.harness.client.encode_body`) and the sample
index, so the ``n`` samples of one prompt are ``n`` rows even at temperature 0. The row holds
the raw response body. The endpoint URL and the headers (the API key) are not part of the key
and are never stored: a rerun against another URL serving the same model id replays the cache.

One writer thread owns the only write connection. Rows are batched on the event-loop thread
(``BATCH_ROWS`` rows, or ``BATCH_S`` after a batch's first row) and handed over whole, so the
writer wakes once per batch; it commits (batches queued meanwhile go into the same commit) and
then tells the event loop which keys are durable. Only then is a request counted as done, so
progress lags by up to ``BATCH_S`` and a rerun after a kill never misses an answer that was
counted. ``flush()`` hands over at once.

SQLite's WAL makes each commit atomic, so a SIGKILL at any moment loses at most the answers
not yet committed (in flight, or in the current batch) and never corrupts the file.
``synchronous=NORMAL`` keeps commits cheap: it survives the process being killed, though not a
power cut (which could lose the last commits, still without corruption).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from launcher import safe_fs

CACHE_DIR = "cache"
CACHE_FILE = "responses.sqlite"
BATCH_ROWS = 64
BATCH_S = 0.02
SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    body BLOB NOT NULL,
    created REAL NOT NULL
) WITHOUT ROWID
"""

SIDE_FILES = ("", "-wal", "-shm", "-journal")  # the database and what SQLite keeps beside it
_STOP = object()


def cache_path(output_dir: str, caching_dir: str | None = None) -> str:
    """The cache file: in ``caching_dir`` if set (adapter config), else under the output dir."""
    return os.path.join(caching_dir or os.path.join(output_dir, CACHE_DIR), CACHE_FILE)


def request_key(body: bytes, sample: int = 0) -> str:
    """sha256 of the canonical request body and the sample index."""
    h = hashlib.sha256(body)
    h.update(b"\nsample=%d" % sample)
    return h.hexdigest()


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=30.0, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=30000")
    return conn


# SQLite's result codes for a file that is damaged or not a database at all. Any other error
# (disk full, I/O error, read-only, cannot open) says nothing about the file's contents.
_CORRUPT_CODES = (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB)


def is_corrupt(path: str, error: sqlite3.DatabaseError) -> bool:
    """Whether ``error`` (raised opening ``path``) means the file itself is damaged: its code
    says so AND an integrity check on a read-only connection confirms it."""
    if getattr(error, "sqlite_errorcode", None) not in _CORRUPT_CODES:
        return False
    try:
        check = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    except sqlite3.Error:
        return False  # cannot even look: not proven corrupt
    try:
        rows = check.execute("PRAGMA quick_check").fetchall()
        return rows != [("ok",)]
    except sqlite3.DatabaseError as e:
        return getattr(e, "sqlite_errorcode", None) in _CORRUPT_CODES
    finally:
        check.close()


def open_cache(path: str, warn: Callable[[str], None] = print) -> sqlite3.Connection:
    """Open (creating) the cache. A file proven corrupt (see :func:`is_corrupt`) is moved aside;
    any other error (a full disk, an I/O error) is raised and leaves the file as it is."""
    safe_fs.make_dirs(os.path.dirname(path))
    for tries in range(2):
        conn: sqlite3.Connection | None = None
        for suffix in SIDE_FILES:  # SQLite opens by name: no link may stand there
            safe_fs.check_file(path + suffix)
        try:
            conn = _connect(path)
            conn.execute(SCHEMA)
            conn.execute("SELECT key, body FROM responses LIMIT 1").fetchall()
            return conn
        except sqlite3.DatabaseError as e:
            if conn is not None:
                conn.close()
            if tries or not is_corrupt(path, e):
                raise
            aside = f"{path}.corrupt-{int(time.time())}"
            warn(f"warning: response cache {path} is unusable ({e}); moved to {aside}")
            for suffix in ("", "-wal", "-shm"):
                if safe_fs.check_file(path + suffix):
                    safe_fs.replace(path + suffix, aside + suffix)
    raise AssertionError("unreachable")  # pragma: no cover


class ResponseCache:
    """Reads on the caller's thread, writes on one writer thread (see the module doc).

    ``put(key, body, token)`` queues a row; after its commit, ``on_committed(tokens)`` runs on
    the event loop given to ``start``. ``await flush()`` waits until everything queued so far
    is committed. ``close()`` stops the writer (committing what is queued) and closes.
    """

    def __init__(self, path: str, warn: Callable[[str], None] = print) -> None:
        self.path = path
        self._read = open_cache(path, warn)
        self._empty = self._read.execute("SELECT 1 FROM responses LIMIT 1").fetchone() is None
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._on_committed: Callable[[list[Any]], None] | None = None
        self._pending = 0
        self._batch: list[tuple[str, bytes, Any]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._progressed: asyncio.Event | None = None  # set after each commit
        self.error: BaseException | None = None
        self.commits = 0
        self.rows = 0

    # -- reads -----------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        if self._empty:
            return None
        row = self._read.execute("SELECT body FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else bytes(row[0])

    def count(self) -> int:
        return int(self._read.execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def keys(self) -> set[str]:
        return {r[0] for r in self._read.execute("SELECT key FROM responses")}

    # -- writes ----------------------------------------------------------------------------

    def start(self, on_committed: Callable[[list[Any]], None]) -> None:
        self._loop = asyncio.get_running_loop()
        self._on_committed = on_committed
        self._progressed = asyncio.Event()
        self._thread = threading.Thread(target=self._writer, name="cache-writer")
        self._thread.start()

    def put(self, key: str, body: bytes, token: Any) -> None:
        """Queue a row (event-loop thread). Rows are handed to the writer thread in batches:
        at ``BATCH_ROWS`` rows or ``BATCH_S`` after the batch's first row, whichever first."""
        if self.error is not None:
            raise self.error
        assert self._loop is not None, "start() first"
        self._pending += 1
        self._batch.append((key, body, token))
        if len(self._batch) >= BATCH_ROWS:
            self._hand_off()
        elif self._timer is None:
            self._timer = self._loop.call_later(BATCH_S, self._hand_off)

    def _hand_off(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._batch:
            batch, self._batch = self._batch, []
            self._queue.put(batch)

    @property
    def pending(self) -> int:
        """Rows queued and not yet committed."""
        return self._pending

    async def room(self, limit: int) -> None:
        """Hand over what is queued and wait until fewer than ``limit`` rows are uncommitted
        (bounds what a kill can lose)."""
        while self._pending >= limit and self.error is None:
            self._hand_off()
            assert self._progressed is not None
            self._progressed.clear()
            await self._progressed.wait()
        if self.error is not None:
            raise self.error

    async def flush(self) -> None:
        """Commit what is queued now and wait for it."""
        await self.room(1)

    def close(self, wait: bool = True) -> None:
        """Commit what is queued, stop the writer and close the connections.

        With ``wait=False`` the writer's last commit and close (which checkpoints the WAL into
        the db file, an fsync) finish in the background; the thread is not a daemon, so the
        interpreter still waits for it at exit. Call ``flush()`` first if the rows must be
        committed when this returns.
        """
        self._read.close()  # first: the connection closed last does the checkpoint
        if self._thread is not None:
            self._hand_off()
            self._queue.put(_STOP)
            if wait:
                self._thread.join()
            self._thread = None

    def _writer(self) -> None:
        conn = _connect(self.path)
        try:
            while True:
                batch = self._queue.get()
                if batch is _STOP:
                    break
                while True:  # batches that queued up meanwhile go into the same commit
                    try:
                        more = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if more is _STOP:
                        self._queue.put(_STOP)
                        break
                    batch = batch + more
                try:
                    self._commit(conn, batch)
                except BaseException as e:  # disk full, read-only, ...
                    self.error = e
                    self._notify(batch, failed=True)
                    return
                self._notify(batch, failed=False)
        finally:
            conn.close()

    def _commit(self, conn: sqlite3.Connection, batch: Sequence[tuple[str, bytes, Any]]) -> None:
        now = time.time()
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.executemany(
                "INSERT OR REPLACE INTO responses (key, body, created) VALUES (?, ?, ?)",
                [(key, body, now) for key, body, _ in batch],
            )
            conn.execute("COMMIT")
        except BaseException:
            # A failed COMMIT (e.g. SQLITE_FULL) may already have rolled back: a second
            # ROLLBACK would raise "no transaction is active" and hide the real error.
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise
        self.commits += 1
        self.rows += len(batch)

    def _notify(self, batch: list[tuple[str, bytes, Any]], failed: bool) -> None:
        tokens = [token for _, _, token in batch]
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile (run aborted)
            loop.call_soon_threadsafe(self._committed, tokens, failed)

    def _committed(self, tokens: list[Any], failed: bool) -> None:
        self._pending -= len(tokens)
        if not failed and self._on_committed is not None:
            self._on_committed(tokens)
        assert self._progressed is not None
        self._progressed.set()
