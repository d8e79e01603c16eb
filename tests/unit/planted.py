"""Helpers for the planted-link tests (issue 12): plant a link as the folder's owner would, and
take a snapshot of what it points at (the ``outside`` fixture is in conftest.py)."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

OUTSIDE = b"root's own file: must never change\n"
ATTACKER = 4242  # the folder owner's uid, as whom links are planted when the tests run as root


def snapshot(path: Path) -> tuple[bytes, int, int, int, int]:
    """Content, owner, group, mode and link count: none of it may change."""
    st = os.lstat(path)
    return path.read_bytes(), st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode), st.st_nlink


def plant(at: Path, target: Path) -> None:
    """Put a link at ``at`` (whatever was there goes), owned by the attacker when we are root."""
    if at.is_symlink() or at.is_file():
        at.unlink()
    elif at.is_dir():
        shutil.rmtree(at)
    at.parent.mkdir(parents=True, exist_ok=True)
    at.symlink_to(target)
    if os.geteuid() == 0:
        os.lchown(at, ATTACKER, ATTACKER)


def refusals(text: str, path: Path | str) -> list[str]:
    """The one line (no traceback) in ``text`` that refuses to write (or read) ``path``."""
    assert "Traceback" not in text
    lines = [line for line in text.splitlines() if "refusing to " in line]
    assert len(lines) == 1, text
    assert str(path) in lines[0]
    return lines
