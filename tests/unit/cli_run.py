"""Run the real CLI in-process (``cli.main`` with its argv): (exit code, stdout, stderr)."""

from __future__ import annotations

import pytest

from launcher import cli


def launcher(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
             *argv: str) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.argv", ["launcher", *argv])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    captured = capsys.readouterr()
    return int(exc.value.code or 0), captured.out, captured.err
