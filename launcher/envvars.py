"""Environment variables for evaluation containers, passed by NAME, never written anywhere.

Config values follow the reference launcher: a bare value is the NAME of a host variable,
``host:NAME`` says the same explicitly, ``lit:value`` is a literal, ``runtime:NAME`` a variable
of the environment the container starts from that need not be set when the config is checked
(unset then, the container gets it empty instead of the run stopping). Host values are
read from the launcher's environment only at container start and handed to the engine in
memory; files the launcher writes (scripts, records, dry-run output) refer to them as
``$NAME``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

import attrs

from launcher import keypaths
from launcher.errors import ConfigError

_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSW|CREDENTIAL", re.IGNORECASE)


@attrs.frozen
class EnvVar:
    name: str  # the name inside the evaluation container
    host_name: str | None = None  # read from this host variable ...
    literal: str | None = None  # ... or this fixed value
    runtime: bool = False  # runtime:NAME: need not be set; empty in the container when unset

    @property
    def from_host(self) -> bool:
        return self.host_name is not None

    def shell_flag(self) -> str:
        """The ``docker run`` flag for a script: values never appear, only ``$NAME``."""
        if self.host_name is None:
            from shlex import quote

            return f"-e {quote(f'{self.name}={self.literal}')}"
        if self.runtime:  # empty when unset, as the backend passes it
            return f'-e {self.name}="${{{self.host_name}-}}"'
        if self.host_name == self.name:
            return f"-e {self.name}"
        return f'-e {self.name}="${{{self.host_name}}}"'

    def describe(self) -> str:
        if self.host_name is None:
            return f"{self.name}=<literal>"
        return self.name if self.host_name == self.name else f"{self.name}=${self.host_name}"


def parse_spec(name: str, spec: str, *, source: str, key: str) -> EnvVar:
    spec = str(spec)
    if spec.startswith("lit:"):
        if _SECRET_NAME.search(name):
            raise ConfigError(
                f"'{name}' looks like a secret but is given as a literal (lit:), which would be "
                f"written into the rerun scripts; export it on the host and use host:VAR_NAME",
                source=source,
                key=key,
            )
        return EnvVar(name, literal=spec.removeprefix("lit:"))
    runtime = spec.startswith("runtime:")
    host = spec.removeprefix("runtime:").removeprefix("host:").removeprefix("$")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", host):
        raise ConfigError(
            f"'{spec}' is not a host variable name; use NAME, host:NAME, runtime:NAME or "
            "lit:value",
            source=source,
            key=key,
        )
    return EnvVar(name, host_name=host, runtime=runtime)


def merge(scopes: Iterable[tuple[str, Mapping[str, str]]], *, source: str) -> list[EnvVar]:
    """Later scopes win (top-level, then evaluation, then task)."""
    out: dict[str, EnvVar] = {}
    for scope, mapping in scopes:
        for name, spec in mapping.items():
            out[name] = parse_spec(name, spec, source=source, key=keypaths.child(scope, name))
    return list(out.values())


def resolve(env: Iterable[EnvVar], environ: Mapping[str, str], *, source: str) -> dict[str, str]:
    """Values to hand to the engine; every host variable must be set (checked before any start)."""
    values: dict[str, str] = {}
    for var in env:
        if var.host_name is None:
            values[var.name] = var.literal or ""
        elif var.host_name in environ:
            values[var.name] = environ[var.host_name]
        elif var.runtime:
            values[var.name] = ""
        else:
            raise ConfigError(
                f"host environment variable {var.host_name} is not set (needed for {var.name} "
                f"in the evaluation container): export it, or pass it to the launcher "
                f"container with -e {var.host_name}",
                source=source,
            )
    return values
