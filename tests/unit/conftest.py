"""Shared fixtures for the unit tests."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from launcher import backends, labels
from launcher.harness import datasets
from launcher.testing.synthetic import write_gsm8k
from tests.unit.fake_backend import FakeBackend
from tests.unit.harness_stub import StubServer
from tests.unit.planted import OUTSIDE


@pytest.fixture
def server() -> Iterator[StubServer]:
    """A scripted OpenAI-compatible stub on loopback (see ``harness_stub``), stopped afterwards."""
    srv = StubServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def fake(monkeypatch, tmp_path_factory) -> Iterator[FakeBackend]:
    """The fake engine behind ``backends.connect``, and a synthetic GSM8K in the cache."""
    backend = FakeBackend()
    monkeypatch.setattr(backends, "connect", lambda execution=None: backend)
    monkeypatch.delenv(labels.LABELS_ENV, raising=False)
    # gsm8k tasks without data get the dataset cache's copy: a synthetic one, pinned as GSM8K.
    cache = tmp_path_factory.mktemp("cache")
    write_gsm8k(cache / "gsm8k", 20)
    monkeypatch.setenv("EVAL_LAUNCHER_CACHE", str(cache))
    monkeypatch.setattr(datasets, "GSM8K_SHA256",
                        datasets.sha256_file(cache / "gsm8k" / "test.jsonl"))
    sigterm = signal.getsignal(signal.SIGTERM)  # the scheduler installs its own handler
    yield backend
    signal.signal(signal.SIGTERM, sigterm)
    for handle in list(backend.workloads):  # nothing left hanging, whatever the outcome
        backend.remove(handle)


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A root-only file outside any output folder: what a planted link points at (issue 12)."""
    folder = tmp_path / "outside"
    folder.mkdir(mode=0o700)
    secret = folder / "secret"
    secret.write_bytes(OUTSIDE)
    secret.chmod(0o600)
    return secret


@pytest.fixture
def finished(tmp_path, fake, capsys) -> tuple[str, object]:
    """(output folder, run) for the export tests: one invocation of gsm8k (2/4) and
    humaneval (2/3) by model m-a."""
    from tests.unit.fake_runs import make_run

    run = make_run(tmp_path, {"gsm8k": [1, 1, 0, 0], "humaneval": [1, 0, 1]}, model="m-a")
    capsys.readouterr()
    return str(tmp_path / "out"), run
