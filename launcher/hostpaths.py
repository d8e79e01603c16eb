"""Translate paths the launcher sees into mount sources the host's Docker Engine understands.

The launcher runs either on the host or in its own container with the host's docker socket
mounted. Sibling containers are started on the HOST engine, so a bind-mount source must be a
host path: inside the launcher container ``/results/x`` may really be ``/home/u/proj/results/x``
on the host, or a subfolder of a named volume.

This module is pure logic (no Docker SDK, no network). The caller finds our own container id
(``read_own_container_id``), inspects that container, and builds a ``PathTranslator`` from the
``Mounts`` array; ``PathTranslator.to_host`` then maps each path to a ``HostSource``.
"""

from __future__ import annotations

import csv
import io
import os
import posixpath
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from launcher.errors import EnvironmentProblem

HOST_OUTPUT_DIR_ENV = "EVAL_LAUNCHER_HOST_OUTPUT_DIR"
VOLUME_SUBPATH_MIN_API = (1, 45)  # Docker Engine 26: Mount.VolumeOptions.Subpath

_HEX64 = r"[0-9a-f]{64}"
# Docker: <data-root>/containers/<id>/{hostname,hosts,resolv.conf}. The root field is relative
# to the filesystem the file lives on, so the data-root prefix varies (or is absent entirely
# when the data-root is its own filesystem): match only from "/containers/" on.
_DOCKER_FILE_RE = re.compile(rf"/containers/({_HEX64})/(hostname|hosts|resolv\.conf)$")
# Podman: <storage>/overlay-containers/<id>/userdata/{hostname,hosts,resolv.conf,.containerenv}
_PODMAN_FILE_RE = re.compile(
    rf"/overlay-containers/({_HEX64})/userdata/(hostname|hosts|resolv\.conf|\.containerenv)$"
)
# /proc/self/cgroup: ".../docker/<id>" (cgroup v1, cgroupfs driver), "docker-<id>.scope"
# (systemd driver), "libpod-<id>.scope" or ".../libpod-<id>" (podman). Not libpod-conmon-<id>.
_CGROUP_RE = re.compile(rf"(?:/docker/|docker-|libpod-)({_HEX64})(?:\.scope)?(?=/|$)")
_SHORT_ID_RE = re.compile(r"[0-9a-f]{12}")
_OCTAL_ESCAPE_RE = re.compile(r"\\([0-7]{3})")

# Files a runtime bind-mounts from the container's own directory. ``.containerenv`` is the
# most specific: with ``--network=container:X`` the hostname/hosts/resolv.conf files are X's.
_FILE_PRIORITY = {".containerenv": 0, "hostname": 1, "hosts": 2, "resolv.conf": 3}


def _unescape_mountinfo(field: str) -> str:
    """Undo the kernel's octal escaping of space, tab, newline and backslash in mountinfo."""
    return _OCTAL_ESCAPE_RE.sub(lambda m: chr(int(m.group(1), 8)), field)


def _id_from_mountinfo(mountinfo: str) -> str | None:
    best: tuple[int, int, str] | None = None  # (priority, line number, id)
    for lineno, line in enumerate(mountinfo.splitlines()):
        fields = line.split()
        if len(fields) < 5:
            continue
        root = _unescape_mountinfo(fields[3])
        match = _DOCKER_FILE_RE.search(root) or _PODMAN_FILE_RE.search(root)
        if match is None:
            continue
        candidate = (_FILE_PRIORITY[match.group(2)], lineno, match.group(1))
        if best is None or candidate < best:
            best = candidate
    return best[2] if best else None


def _id_from_cgroup(cgroup: str) -> str | None:
    for line in cgroup.splitlines():
        # "<hierarchy-id>:<controllers>:<path>"; the path may itself contain ':'
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        found = _CGROUP_RE.findall(parts[2])
        if found:
            return found[-1]  # innermost, for docker-in-docker on cgroup v1
    return None


def find_own_container_id(
    mountinfo: str, cgroup: str | None = None, hostname: str | None = None
) -> str | None:
    """Return the id of the container this process runs in, or None on a plain host.

    Sources, most reliable first: /proc/self/mountinfo (works with --hostname, --network=host,
    --cgroupns=private and cgroup v2), /proc/self/cgroup (cgroup v1 or --cgroupns=host), then a
    hostname that looks like a 12-hex short id (the caller must confirm it by inspecting).
    The full 64-hex id is returned except in the hostname case.

    Known limit: with ``docker run --network=container:X`` Docker shares X's hostname, hosts
    and resolv.conf files, so the mountinfo answer is X's id; the caller can detect this from
    the inspected ``HostConfig.NetworkMode``.
    """
    found = _id_from_mountinfo(mountinfo)
    if found is None and cgroup:
        found = _id_from_cgroup(cgroup)
    if found is None and hostname:
        name = hostname.strip()
        if _SHORT_ID_RE.fullmatch(name):
            found = name
    return found


def _read_text(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as fh:
            return fh.read()
    except OSError:
        return None


def read_own_container_id() -> str | None:
    """``find_own_container_id`` fed from /proc/self/{mountinfo,cgroup} and $HOSTNAME."""
    return find_own_container_id(
        _read_text("/proc/self/mountinfo") or "",
        _read_text("/proc/self/cgroup"),
        os.environ.get("HOSTNAME"),
    )


def api_supports_volume_subpath(api_version: str | None) -> bool:
    """True if an Engine API version string such as "1.45" supports ``VolumeOptions.Subpath``."""
    if not api_version:
        return False
    try:
        major, minor = (int(p) for p in api_version.strip().split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= VOLUME_SUBPATH_MIN_API


def _csv_field(text: str) -> str:
    """Quote one ``--mount`` field the way the docker CLI's CSV parser expects."""
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([text])
    return buf.getvalue()


@attrs.frozen
class HostSource:
    """What to give the host engine as a mount source.

    kind: "bind" (source is a host path) or "volume" (source is a volume name, subpath a
    relative path inside it, "" for the volume's root; always "" for bind).
    """

    kind: str
    source: str
    subpath: str = ""

    def describe(self) -> str:
        if self.kind == "bind":
            return self.source
        if self.subpath:
            return f"volume {self.source}:{self.subpath}"
        return f"volume {self.source}"

    def api_mount(self, target: str, read_only: bool = False) -> dict[str, Any]:
        """An Engine API ``Mount`` object (accepted as-is in ``docker.types``' ``mounts=``).

        A bind mount of a missing source fails instead of creating a stray host folder.
        """
        spec: dict[str, Any] = {
            "Type": self.kind,
            "Source": self.source,
            "Target": target,
            "ReadOnly": read_only,
        }
        if self.subpath:
            spec["VolumeOptions"] = {"Subpath": self.subpath}
        return spec

    def cli_mount(self, target: str, read_only: bool = False) -> str:
        """The value of a ``docker run --mount`` option (not shell-quoted)."""
        fields = [f"type={self.kind}", f"src={self.source}", f"dst={target}"]
        if self.subpath:
            fields.append(f"volume-subpath={self.subpath}")
        if read_only:
            fields.append("readonly")
        return ",".join(_csv_field(f) for f in fields)


def _show(path: str) -> str:
    """A path for a one-line message: control characters (e.g. newlines) escaped."""
    if path.isprintable():
        return path
    return path.encode("unicode_escape", errors="backslashreplace").decode("ascii")


def _is_under(path: str, prefix: str) -> bool:
    """Component-wise prefix: /results is under /results and / but not under /results2."""
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def _remainder(path: str, prefix: str) -> str:
    if path == prefix:
        return ""
    return path[len(prefix) :].lstrip("/")


def _join(base: str, remainder: str) -> str:
    if not remainder:
        return posixpath.normpath(base) if base else base
    return posixpath.normpath(posixpath.join(base, remainder))


def _to_tuple(items: Sequence[Mapping[str, Any]] | None) -> tuple[Mapping[str, Any], ...]:
    return tuple(items or ())


def _to_dict(items: Mapping[str, str] | None) -> dict[str, str]:
    return dict(items or {})


@attrs.frozen
class PathTranslator:
    """Maps paths as the launcher sees them to ``HostSource``s for sibling containers.

    container_id: our own container (None when running on the host).
    mounts: ``Mounts`` from ``docker inspect`` of our container.
    overrides: container path -> host path, set explicitly by the user; wins over ``mounts``.
    volume_subpath_supported: the engine accepts ``VolumeOptions.Subpath`` (API >= 1.45).
    realpath: resolves symlinks in a container-side path (injectable for tests).
    """

    container_id: str | None
    mounts: tuple[Mapping[str, Any], ...] = attrs.field(default=(), converter=_to_tuple)
    overrides: dict[str, str] = attrs.field(factory=dict, converter=_to_dict)
    volume_subpath_supported: bool = False
    realpath: Callable[[str], str] = attrs.field(default=os.path.realpath, repr=False)

    @property
    def in_container(self) -> bool:
        return self.container_id is not None

    @property
    def short_id(self) -> str:
        return (self.container_id or "")[:12]

    def _resolve(self, path: str) -> str:
        return posixpath.normpath(self.realpath(path))

    def _match_override(self, path: str) -> tuple[str, str] | None:
        best: tuple[str, str] | None = None
        for key, host in self.overrides.items():
            key = self._resolve(key)
            if _is_under(path, key) and (best is None or len(key) > len(best[0])):
                best = (key, host)
        return best

    def _match_mount(self, path: str) -> tuple[str, Mapping[str, Any]] | None:
        best: tuple[str, Mapping[str, Any]] | None = None
        for mount in self.mounts:
            dest = mount.get("Destination")
            if not dest:
                continue
            dest = self._resolve(dest)
            if _is_under(path, dest) and (best is None or len(dest) > len(best[0])):
                best = (dest, mount)
        return best

    def to_host(self, path: str) -> HostSource:
        """The host-side source for ``path``; EnvironmentProblem if siblings cannot see it."""
        resolved = self._resolve(path)
        override = self._match_override(resolved)
        if override is not None:
            key, host = override
            return HostSource("bind", _join(host, _remainder(resolved, key)))
        if not self.in_container:
            return HostSource("bind", resolved)

        matched = self._match_mount(resolved)
        if matched is None:
            raise EnvironmentProblem(
                f"{_show(resolved)} is not on a volume or bind mount of the launcher container "
                f"{self.short_id}, so sibling containers cannot see it: add "
                f"`-v /path/on/host:{_show(resolved)}` to your `docker run`, "
                f"or set {HOST_OUTPUT_DIR_ENV} to its host path"
            )
        dest, mount = matched
        rest = _remainder(resolved, dest)
        kind = str(mount.get("Type") or "")
        source = str(mount.get("Source") or "")

        if kind == "bind":
            return HostSource("bind", _join(source, rest))
        if kind == "volume":
            return self._from_volume(resolved, dest, rest, mount)
        raise EnvironmentProblem(
            f"{_show(resolved)} is on a {kind or 'non-persistent'} mount at {_show(dest)} inside "
            f"the launcher container {self.short_id}, so sibling containers cannot see it and "
            f"results would be lost: add `-v <host dir>:{_show(dest)}` to your `docker run`"
        )

    def _from_volume(
        self, resolved: str, dest: str, rest: str, mount: Mapping[str, Any]
    ) -> HostSource:
        name = str(mount.get("Name") or "")
        source = str(mount.get("Source") or "")
        driver = str(mount.get("Driver") or "")
        if not rest:
            return HostSource("volume", name)
        if self.volume_subpath_supported:
            return HostSource("volume", name, rest)
        if driver in ("", "local") and source:
            # The local driver's <data-root>/volumes/<name>/_data is a real host directory.
            return HostSource("bind", _join(source, rest))
        raise EnvironmentProblem(
            f"{_show(resolved)} is in a subfolder of volume {_show(name)} (driver "
            f"{_show(driver)}) and this Docker Engine cannot mount a volume subfolder into "
            f"sibling containers: mount a host directory instead (`-v /path/on/host:"
            f"{_show(dest)}`) or upgrade to Docker Engine >= 26 (API 1.45)"
        )


def output_overrides(output_dir: str, override: str | None,
                     environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The user's host path for the output folder (``--host-output-dir``, else
    ``EVAL_LAUNCHER_HOST_OUTPUT_DIR``) as ``PathTranslator.overrides``: the one rule, for runs
    and dry runs alike."""
    host_output = override or (os.environ if environ is None else environ).get(
        HOST_OUTPUT_DIR_ENV)
    return {os.path.realpath(output_dir): host_output} if host_output else {}
