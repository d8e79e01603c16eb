"""``--gpus`` and ``--device`` values of ``execution.extra_docker_args``, read the way the
``docker run`` CLI reads them, into typed values the spec carries.

``--gpus`` is a CSV list (docker's ``opts/gpus.go``): ``all``, a count (``2``),
``device=0,1`` (GPU indexes or UUIDs), ``capabilities=compute,utility``, ``driver=nvidia``.
The CLI needs ``'"device=0,1"'`` (quoted, so the comma stays inside the field); unquoted
``device=0,1`` means nothing else to docker (it would be device 0 plus a count, which the
engine refuses), so a bare word after ``device=`` or ``capabilities=`` continues that list
here. ``--device`` is ``/dev/HOST[:/dev/CONTAINER][:rwm]`` or a CDI name
(``nvidia.com/gpu=all``), which the CLI sends as a device request of driver ``cdi``.
"""

from __future__ import annotations

import csv
import io
import re

import attrs

GPUS_HINT = "write --gpus all, --gpus 2, --gpus device=0,1 or --gpus capabilities=compute,utility"
DEVICE_HINT = ("write --device /dev/HOST[:/dev/CONTAINER][:rwm] or a CDI name such as "
               "--device nvidia.com/gpu=all")
_DEVICE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._-]*")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_CDI = re.compile(r"[a-z0-9][a-z0-9.-]*/[a-zA-Z0-9][a-zA-Z0-9._-]*=[a-zA-Z0-9][a-zA-Z0-9._:-]*")


class GpuValueError(ValueError):
    """A ``--gpus`` or ``--device`` value docker would not accept (message says how to fix)."""


@attrs.frozen
class GpuRequest:
    """One ``--gpus`` request: ``count`` (-1 all) or ``device_ids``; ``capabilities`` besides
    ``gpu`` (which every request has); ``driver`` when not the engine's default."""

    count: int | None = None
    device_ids: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    driver: str | None = None

    def cli_value(self) -> str:
        """The ``--gpus`` value ``docker run`` reads back as this request."""
        fields = []
        implied = self.count == 1 and (self.capabilities or self.driver)  # docker's default
        if self.count is not None and not implied:
            fields.append("all" if self.count == -1 else str(self.count))
        if self.device_ids:
            fields.append("device=" + ",".join(self.device_ids))
        if self.capabilities:
            fields.append("capabilities=" + ",".join(self.capabilities))
        if self.driver:
            fields.append(f"driver={self.driver}")
        out = io.StringIO()
        csv.writer(out, lineterminator="").writerow(fields)
        return out.getvalue()

    def engine_capabilities(self) -> list[list[str]]:
        """The Docker API's ``Capabilities``: one set, holding ``gpu``."""
        caps = list(self.capabilities)
        return [caps if "gpu" in caps else [*caps, "gpu"]]


def _count(text: str) -> int:
    if text == "all":
        return -1
    if not text.isdigit() or int(text) < 1:
        raise GpuValueError(f"'{text}' is not all or a positive count; {GPUS_HINT}")
    return int(text)


def parse_gpus(value: str) -> GpuRequest:
    try:
        fields = next(csv.reader([value]), [])
    except csv.Error as exc:
        raise GpuValueError(f"cannot read '{value}' ({exc}); {GPUS_HINT}") from None
    found: dict[str, object] = {}
    lists: dict[str, list[str]] = {"device": [], "capabilities": []}
    current: str | None = None  # the list a bare word continues
    for raw in fields:
        field = raw.strip()
        key, eq, item = field.partition("=")
        counts = field == "all" or field.isdigit()
        if not eq and (current == "device" or current == "capabilities" and not counts):
            lists[current].append(field)
            continue
        name = key if eq else "count"
        if name in found:
            raise GpuValueError(f"'{name}' is given twice in '{value}'; {GPUS_HINT}")
        current = None
        if not eq:
            found["count"] = _count(field)
        elif key in lists:
            found[key], current = True, key
            lists[key].extend(item.split(","))
        elif key == "count":
            found["count"] = _count(item)
        elif key == "driver":
            if not _WORD.fullmatch(item):
                raise GpuValueError(f"driver '{item}' is not a driver name; {GPUS_HINT}")
            found["driver"] = item
        else:
            raise GpuValueError(f"unexpected '{field}' in '{value}'; {GPUS_HINT}")
    for key, items in lists.items():
        pattern = _DEVICE_ID if key == "device" else _WORD
        bad = [i for i in items if not pattern.fullmatch(i)]
        if key in found and (bad or not items):
            raise GpuValueError(f"{key}= needs a comma-separated list, got '{value}'; "
                                f"{GPUS_HINT}")
    devices = tuple(lists["device"])
    count = found.get("count")
    if devices and count is not None:
        raise GpuValueError(f"'{value}' gives both a count and device=; give one; {GPUS_HINT}")
    if count is None and not devices:
        count = 1  # as docker does: --gpus capabilities=... asks for one GPU
    assert count is None or isinstance(count, int)
    driver = found.get("driver")
    return GpuRequest(count=count, device_ids=devices, capabilities=tuple(lists["capabilities"]),
                      driver=driver if isinstance(driver, str) else None)


def is_cdi(device: str) -> bool:
    """A CDI device name (``vendor.com/class=name``) rather than a device node path."""
    return bool(_CDI.fullmatch(device))


def parse_device(value: str) -> str:
    """``--device`` in one canonical form: the CDI name, or ``HOST:CONTAINER:PERMISSIONS`` (the
    form both the CLI and the Docker SDK read the same way)."""
    if is_cdi(value):
        return value
    parts = value.split(":")
    if not 1 <= len(parts) <= 3 or not all(parts):
        raise GpuValueError(f"cannot read '{value}'; {DEVICE_HINT}")
    host, rest = parts[0], parts[1:]
    perms = "rwm"
    if rest and set(rest[-1]) <= set("rwm"):
        perms = rest.pop()
    target = rest[0] if rest else host
    if rest[1:] or not host.startswith("/") or not target.startswith("/"):
        raise GpuValueError(f"cannot read '{value}': paths must be absolute; {DEVICE_HINT}")
    return f"{host}:{target}:{perms}"
