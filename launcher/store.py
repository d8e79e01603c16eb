"""Files the launcher writes into the output folder: directories owned by the output folder's
owner, atomic writes, and the invocation record (``invocation.json``), all through
:mod:`launcher.safe_fs` (no link followed). No Docker here."""

from __future__ import annotations

import json
import os
from typing import Any

from launcher import safe_fs
from launcher.safe_fs import Owner

__all__ = ["Owner", "make_dirs", "owner_of", "redact", "write_atomic", "write_json"]


def owner_of(path: str) -> Owner:
    """Owner of ``path``, or of its nearest existing ancestor (a folder about to be created)."""
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        parent = os.path.dirname(probe)
        if parent == probe:
            break
        probe = parent
    st = os.stat(probe)
    return Owner(st.st_uid, st.st_gid)


def make_dirs(path: str, owner: Owner) -> None:
    """``mkdir -p`` where every folder created is owned by ``owner`` (when we are root); a
    link on the way is refused (see :mod:`launcher.safe_fs`)."""
    safe_fs.make_dirs(path, owner)


def write_atomic(path: str, text: str, owner: Owner, mode: int = 0o644) -> None:
    """``path`` replaced whole, given to ``owner``; never through a link (see safe_fs)."""
    safe_fs.write_atomic(path, text, mode, owner)


def redact(raw: Any) -> Any:
    """Config as recorded: literal env values (``lit:...``) are replaced, names are kept."""
    if isinstance(raw, dict):
        return {k: redact(v) for k, v in raw.items()}
    if isinstance(raw, list):
        return [redact(v) for v in raw]
    if isinstance(raw, str) and raw.startswith("lit:"):
        return "lit:<redacted>"
    return raw


def write_json(path: str, data: Any, owner: Owner) -> None:
    write_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n", owner)
