"""Files the launcher writes into the output folder: directories owned by the output folder's
owner, atomic writes, and the invocation record (``invocation.json``). No Docker here."""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any

import attrs


@attrs.frozen
class Owner:
    uid: int
    gid: int

    @property
    def user(self) -> str:
        return f"{self.uid}:{self.gid}"


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


def chown(path: str, owner: Owner) -> None:
    """Give ``path`` to ``owner`` when we are root (a no-op otherwise, and for root:root)."""
    if os.geteuid() == 0 and (owner.uid, owner.gid) != (0, 0):
        os.chown(path, owner.uid, owner.gid)


def make_dirs(path: str, owner: Owner) -> None:
    """``mkdir -p`` where every folder created is owned by ``owner`` (when we are root)."""
    missing = []
    probe = os.path.abspath(path)
    while not os.path.isdir(probe):
        missing.append(probe)
        probe = os.path.dirname(probe)
    for folder in reversed(missing):
        try:
            os.mkdir(folder)
        except FileExistsError:
            continue
        chown(folder, owner)


def write_atomic(path: str, text: str, owner: Owner, mode: int = 0o644) -> None:
    folder = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        chown(tmp, owner)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
