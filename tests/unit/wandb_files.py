"""Reads back what W&B's offline mode writes: each ``offline-run-*/run-<id>.wandb`` file, a
LevelDB-log-format transaction log of ``wandb_internal_pb2.Record`` protobufs (W&B's own
format: a 7-byte header ``:W&B``, 0xBEE1, version 0; then 32 KiB blocks of chunks, each
crc32c(4) length(2, LE) type(1: full, 2: first, 3: middle, 4: last) data). The installed
wandb (0.2x/0.3x) writes these from its Go core and ships no Python reader, so the tests read
them here, with wandb's own protobuf classes. Not a mock: the bytes are W&B's."""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs

BLOCK = 32 * 1024
HEADER = b":W&B" + struct.pack("<HB", 0xBEE1, 0)
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: Path) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    assert data[:7] == HEADER, f"{path}: not a W&B transaction log"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # block trailer
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if length == 0 and kind == 0:  # zero padding at the end of a block
            pos += left
            continue
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (FULL, FIRST):
            pending = chunk
        else:
            pending += chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            yield record
            pending = b""


@attrs.define
class OfflineRun:
    """One offline run folder, as W&B would sync it."""

    folder: Path
    run_id: str = ""
    project: str = ""
    entity: str = ""
    name: str = ""
    group: str = ""
    job_type: str = ""
    notes: str = ""
    tags: list[str] = attrs.field(factory=list)
    config: dict[str, Any] = attrs.field(factory=dict)
    summary: dict[str, Any] = attrs.field(factory=dict)
    history: list[dict[str, Any]] = attrs.field(factory=list)
    files: list[str] = attrs.field(factory=list)
    exited: bool = False


def read_run(folder: Path) -> OfflineRun:
    (log,) = folder.glob("run-*.wandb")
    run = OfflineRun(folder)
    for record in records(log):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.project, run.entity = r.run_id, r.project, r.entity
            run.name, run.group, run.job_type, run.notes = (r.display_name, r.run_group,
                                                            r.job_type, r.notes)
            run.tags = list(r.tags)
            for item in r.config.update:
                run.config[item.key] = json.loads(item.value_json)
        elif kind == "config":
            for item in record.config.update:
                run.config[item.key] = json.loads(item.value_json)
        elif kind == "summary":
            for item in record.summary.update:
                key = item.key or "/".join(item.nested_key)
                run.summary[key] = json.loads(item.value_json)
        elif kind == "history":
            run.history.append({item.key or "/".join(item.nested_key):
                                json.loads(item.value_json) for item in record.history.item})
        elif kind == "files":
            run.files += [f.path for f in record.files.files]
        elif kind == "exit":
            run.exited = True
    return run


def offline_runs(wandb_dir: Path) -> list[OfflineRun]:
    """Every offline run under ``wandb_dir`` (WANDB_DIR: its ``wandb/`` subfolder)."""
    return [read_run(f) for f in sorted((wandb_dir / "wandb").glob("offline-run-*"))
            if f.is_dir()]
