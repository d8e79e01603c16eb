"""Host variables from ``--env-file FILE`` and a ``.env`` beside the config.

They only supply variables that are not already set in the launcher's environment, and they
stay in memory: the launcher hands their values to the engine, never to a file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

from launcher.errors import ConfigError

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


def parse(text: str, *, source: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        match = _LINE.match(line)
        if not match:
            raise ConfigError(f"line {number} is not NAME=value", source=source)
        name, raw = match.groups()
        if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
            raw = raw[1:-1]
        else:
            raw = re.sub(r"\s+#.*$", "", raw)
        values[name] = raw
    return values


def _read(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as fh:
            return parse(fh.read(), source=path)
    except OSError as exc:
        raise ConfigError(f"cannot read env file: {exc.strerror}", source=path) from None


def host_environment(config_path: str | None, env_file: str | None,
                     environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """os.environ, completed by --env-file, then by a .env beside the config."""
    merged: dict[str, str] = {}
    if config_path:
        beside = os.path.join(os.path.dirname(os.path.abspath(config_path)), ".env")
        if os.path.isfile(beside):
            merged.update(_read(beside))
    if env_file:
        merged.update(_read(env_file))
    merged.update(os.environ if environ is None else environ)
    return merged
