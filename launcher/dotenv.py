"""Host variables from ``--env-file FILE`` and a ``.env`` beside the config (python-dotenv).

Our policy on top of python-dotenv's parser:

- The files only supply variables that are not already set in the launcher's environment
  (os.environ wins, then ``--env-file``, then the ``.env`` beside the config).
- They stay in memory: nothing is written to ``os.environ`` or to a file; the launcher hands
  the values to the engine.
- Values are taken literally (no ``${VAR}`` expansion), and a line that is not ``NAME=value``
  (a bare word, a bad name) is an error naming the file and the line, not a skipped line.
"""

from __future__ import annotations

import io
import os
import re
from collections.abc import Mapping

from launcher.errors import ConfigError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse(text: str, *, source: str) -> dict[str, str]:
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    for binding in parse_stream(io.StringIO(text)):
        if binding.error or (binding.key is not None and (
                binding.value is None or not _NAME.fullmatch(binding.key))):
            raise ConfigError(f"line {binding.original.line} is not NAME=value", source=source)
    values = dotenv_values(stream=io.StringIO(text), interpolate=False)
    return {name: value for name, value in values.items() if value is not None}


def _read(path: str) -> dict[str, str]:
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read env file: {exc.strerror}", source=path) from None
    except UnicodeDecodeError:
        raise ConfigError("cannot read env file: it is not UTF-8 text", source=path) from None
    return parse(text, source=path)


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
