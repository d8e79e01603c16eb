"""Shared fixtures for the unit tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.unit.harness_stub import StubServer


@pytest.fixture
def server() -> Iterator[StubServer]:
    """A scripted OpenAI-compatible stub on loopback (see ``harness_stub``), stopped afterwards."""
    srv = StubServer().start()
    yield srv
    srv.stop()
