"""Shared fixtures for the unit tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.harness_stub import StubServer
from tests.unit.planted import OUTSIDE


@pytest.fixture
def server() -> Iterator[StubServer]:
    """A scripted OpenAI-compatible stub on loopback (see ``harness_stub``), stopped afterwards."""
    srv = StubServer().start()
    yield srv
    srv.stop()


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A root-only file outside any output folder: what a planted link points at (issue 12)."""
    folder = tmp_path / "outside"
    folder.mkdir(mode=0o700)
    secret = folder / "secret"
    secret.write_bytes(OUTSIDE)
    secret.chmod(0o600)
    return secret
