"""``ls runs --since`` (the reference's): Nd / Nh into the past, or an ISO date/date-time."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from launcher import runs
from launcher.errors import ConfigError
from tests.unit.cli_run import launcher

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(("text", "expected"), [
    ("2d", NOW - timedelta(days=2)),
    ("3H", NOW - timedelta(hours=3)),
    ("0h", NOW),
    ("2026-12-01T06:30:00+00:00", datetime(2026, 12, 1, 6, 30, tzinfo=UTC)),
])
def test_since_forms(text: str, expected: datetime) -> None:
    assert runs.since(text, NOW) == expected


def test_a_date_without_offset_is_local_time() -> None:
    assert runs.since("2026-12-01", NOW) == datetime(2026, 12, 1).astimezone()


@pytest.mark.parametrize("text", ["yesterday", "-1d", "2w", ""])
def test_bad_since_names_the_flag(text: str) -> None:
    with pytest.raises(ConfigError, match="--since"):
        runs.since(text, NOW)


def ls(monkeypatch, capsys, out: str, *args: str) -> tuple[int, str, str]:
    return launcher(monkeypatch, capsys, "ls", "runs", "--output-dir", out, *args)


def test_ls_runs_since_filters_by_start(finished, monkeypatch, capsys) -> None:
    out, run = finished
    code, text, _ = ls(monkeypatch, capsys, out, "--since", "1h", "--json")
    assert code == 0 and [r["invocation_id"] for r in json.loads(text)] == [run.invocation_id]
    code, text, _ = ls(monkeypatch, capsys, out, "--since", "2099-01-01", "--json")
    assert code == 0 and json.loads(text) == []
    code, _, err = ls(monkeypatch, capsys, out, "--since", "soon")
    assert code == 2 and err.startswith("error: --since 'soon'") and len(err.splitlines()) == 1
