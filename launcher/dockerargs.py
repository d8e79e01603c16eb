"""``execution.extra_docker_args``: the reference's free-form ``docker run`` flags, parsed.

The launcher starts containers through the Docker API, not the CLI, so each flag is mapped to
its API field. Only flags we can honour are accepted; anything else is a config error, never
silently dropped. Volume sources are paths as the launcher sees them and are translated to
host paths like every other mount. ``--gpus`` and ``--device`` are read as the CLI reads them
(``launcher/gpus.py``); sizes, ``--ipc`` and ``--runtime`` are checked here, so a value the
engine would refuse is a config error before anything starts.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import attrs

from launcher.envvars import EnvVar, parse_spec
from launcher.errors import ConfigError
from launcher.gpus import GpuRequest, GpuValueError, parse_device, parse_gpus

KEY = "execution.extra_docker_args"


@attrs.frozen
class VolumeArg:
    source: str
    target: str
    read_only: bool = False
    is_named: bool = False  # a named volume rather than a path


@attrs.frozen
class DockerArgs:
    network: str | None = None
    add_hosts: tuple[tuple[str, str], ...] = ()
    volumes: tuple[VolumeArg, ...] = ()
    env: tuple[EnvVar, ...] = ()
    shm_size: str | None = None
    mem_limit: str | None = None
    cpus: float | None = None
    ipc_mode: str | None = None
    gpus: GpuRequest | None = None
    devices: tuple[str, ...] = ()  # gpus.parse_device's canonical form, in the order given
    runtime: str | None = None


_VALUE_FLAGS = {
    "--network": "network", "--net": "network", "--add-host": "add_host", "-v": "volume",
    "--volume": "volume", "-e": "env", "--env": "env", "--shm-size": "shm_size",
    "-m": "memory", "--memory": "memory", "--cpus": "cpus", "--ipc": "ipc", "--gpus": "gpus",
    "--device": "device", "--runtime": "runtime",
}
# What the Docker SDK's parse_bytes (shm_size, mem_limit) reads: 512m, 1.5g, 100g, 1024.
_SIZE = re.compile(r"\d+(\.\d+)?([kmg]b?|b)?", re.IGNORECASE)
_IPC = re.compile(r"none|private|shareable|host|container:[A-Za-z0-9][\w.-]*")
_RUNTIME = re.compile(r"[A-Za-z0-9][\w.-]*")


def parse(text: str, *, source: str) -> DockerArgs:
    try:
        words = shlex.split(text or "")
    except ValueError as exc:
        raise ConfigError(f"cannot split into flags: {exc}", source=source, key=KEY) from None
    fields: dict[str, Any] = {"add_hosts": [], "volumes": [], "env": [], "device": []}
    i = 0
    while i < len(words):
        word = words[i]
        flag, eq, value = word.partition("=")
        if flag not in _VALUE_FLAGS:
            known = ", ".join(sorted(set(_VALUE_FLAGS)))
            raise ConfigError(f"unsupported docker flag '{word}' (supported: {known})",
                              source=source, key=KEY)
        if not eq:
            if i + 1 >= len(words) or words[i + 1].startswith("-"):
                raise ConfigError(f"flag '{flag}' needs a value ({flag} VALUE or {flag}=VALUE)",
                                  source=source, key=KEY)
            value = words[i + 1]
            i += 1
        i += 1
        _apply(fields, _VALUE_FLAGS[flag], value, source)
    return DockerArgs(
        network=fields.get("network"),
        add_hosts=tuple(fields["add_hosts"]),
        volumes=tuple(fields["volumes"]),
        env=tuple(fields["env"]),
        shm_size=fields.get("shm_size"),
        mem_limit=fields.get("memory"),
        cpus=fields.get("cpus"),
        ipc_mode=fields.get("ipc"),
        gpus=fields.get("gpus"),
        devices=tuple(fields["device"]),
        runtime=fields.get("runtime"),
    )


def _apply(fields: dict[str, Any], kind: str, value: str, source: str) -> None:
    if kind == "add_host":
        host, sep, ip = value.partition(":")
        if not sep or not host:
            raise ConfigError(f"--add-host expects host:ip, got '{value}'", source=source, key=KEY)
        fields["add_hosts"].append((host, ip))
    elif kind == "volume":
        parts = value.split(":")
        if len(parts) not in (2, 3) or not parts[0] or not parts[1].startswith("/"):
            raise ConfigError(f"--volume expects SRC:/container/path[:ro], got '{value}'",
                              source=source, key=KEY)
        mode = parts[2] if len(parts) == 3 else "rw"
        if mode not in ("ro", "rw"):
            raise ConfigError(f"--volume mode must be ro or rw, got '{mode}'", source=source,
                              key=KEY)
        fields["volumes"].append(VolumeArg(
            parts[0], parts[1], mode == "ro", is_named=not parts[0].startswith((".", "/", "~"))))
    elif kind == "env":
        name, eq, literal = value.partition("=")
        spec = f"lit:{literal}" if eq else f"host:{name}"
        fields["env"].append(parse_spec(name, spec, source=source, key=KEY))
    elif kind == "cpus":
        try:
            fields["cpus"] = float(value)
        except ValueError:
            raise ConfigError(f"--cpus expects a number, got '{value}'", source=source,
                              key=KEY) from None
    elif kind in ("gpus", "device"):
        if kind == "gpus" and "gpus" in fields:
            raise ConfigError("--gpus is given twice: give one --gpus with every GPU it needs",
                              source=source, key=KEY)
        try:
            if kind == "gpus":
                fields["gpus"] = parse_gpus(value)
            else:
                fields["device"].append(parse_device(value))
        except GpuValueError as exc:
            raise ConfigError(f"--{kind} {value}: {exc}", source=source, key=KEY) from None
    else:
        _check_plain(kind, value, source)
        fields[kind] = value


_PLAIN_CHECKS = {
    "shm_size": (_SIZE, "--shm-size expects a size such as 1g or 512m"),
    "memory": (_SIZE, "--memory expects a size such as 8g or 512m"),
    "ipc": (_IPC, "--ipc expects host, private, shareable, none or container:NAME"),
    "runtime": (_RUNTIME, "--runtime expects a runtime name such as nvidia"),
}


def _check_plain(kind: str, value: str, source: str) -> None:
    check = _PLAIN_CHECKS.get(kind)
    if check and not check[0].fullmatch(value):
        raise ConfigError(f"{check[1]}, got '{value}'", source=source, key=KEY)
