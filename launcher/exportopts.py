"""The options of ``launcher export --dest DEST`` and of auto-export, as one flat
``{key: text}`` mapping per destination, from either of the reference's two spellings:
``-o export.<dest>.<key>=value`` lines, or a config's ``export.<dest>`` block (YAML values:
lists, mappings, booleans). Pure: no files, no clients.

A key that takes sub-keys (``export.mlflow.tags.team=x``, ``export.wandb.extra_metadata.a=1``)
comes back as ``tags.team``; a list (``export.wandb.tags: [a, b]``) as comma-separated text,
which ``-o export.wandb.tags=a,b`` gives directly."""

from __future__ import annotations

import contextlib
import difflib
import os
import urllib.parse
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from launcher import keypaths
from launcher.errors import ConfigError

DESTS = ("local", "mlflow", "wandb", "gsheets")
LOCAL_KEYS = ("output_dir", "format", "filename")
# The reference's keys of export.mlflow; tags.KEY=VALUE adds one tag (repeatable).
MLFLOW_KEYS = ("tracking_uri", "experiment_name", "description", "tags", "log_artifacts",
               "log_logs")
# The reference's keys of export.wandb, plus `mode` (wandb.init's: online | offline) and `dir`
# (its WANDB_DIR), which the environment variables WANDB_MODE / WANDB_DIR also set.
WANDB_KEYS = ("entity", "project", "name", "group", "job_type", "tags", "description",
              "log_mode", "log_metrics", "log_artifacts", "log_logs", "extra_metadata", "mode",
              "dir")
KEYS: dict[str, tuple[str, ...]] = {"local": LOCAL_KEYS, "mlflow": MLFLOW_KEYS,
                                    "wandb": WANDB_KEYS}
NESTED = {"mlflow": ("tags",), "wandb": ("extra_metadata",)}  # take a sub-key: tags.team=x
LISTS = {"wandb": ("tags", "log_metrics")}  # a list, or comma-separated text
NOT_BUILT = ("gsheets",)


def unknown_dest(dest: str) -> str:
    if dest in NOT_BUILT:
        return (f"{dest} is not built yet; export to files with local, to MLflow with "
                "mlflow or to W&B with wandb")
    return f"unknown destination '{dest}': use {', '.join(KEYS)}"


def _unknown_key(dest: str, key: str) -> str:
    close = difflib.get_close_matches(key, KEYS[dest], n=1)
    hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(KEYS[dest])}"
    return f"unknown key '{key}' of export.{dest} ({hint})"


def options(dest: str, overrides: Sequence[str]) -> dict[str, str]:
    """``-o export.<dest>.<key>=value`` lines as {key: value}, for ``dest`` only; a nested key
    (``export.mlflow.tags.team=x``) comes back as ``tags.team``."""
    keys = KEYS.get(dest, ())
    nested = NESTED.get(dest, ())
    found: dict[str, str] = {}
    for line in overrides:
        key, eq, value = line.lstrip("+").partition("=")
        parts = key.strip().split(".")
        if not eq or len(parts) < 3 or parts[0] != "export":
            raise ConfigError(f"-o {line}: expected export.{dest}.KEY=VALUE (keys: "
                              f"{', '.join(keys)})")
        if parts[1] != dest:
            raise ConfigError(f"-o {line}: applies to --dest {parts[1]}, not --dest {dest}")
        if parts[2] not in keys:
            raise ConfigError(f"-o {line}: unknown key '{parts[2]}' of export.{dest}; known: "
                              f"{', '.join(keys)}")
        if parts[2] in nested:
            if len(parts) < 4 or not all(parts[3:]):
                raise ConfigError(f"-o {line}: expected export.{dest}.{parts[2]}.NAME=VALUE")
        elif len(parts) != 3:
            raise ConfigError(f"-o {line}: export.{dest}.{parts[2]} takes a value, not "
                              "sub-keys")
        text = value.strip()
        if parts[2] in LISTS.get(dest, ()) and text.startswith("[") and text.endswith("]"):
            text = text[1:-1]  # Hydra's list form: -o export.wandb.tags=[a,b]
        found[".".join(parts[2:])] = text
    return found


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def from_section(dest: str, section: Any, source: str) -> dict[str, str]:
    """A config's ``export.<dest>`` block as the same mapping ``options`` makes; a wrong key or
    shape is one ConfigError at its key path."""
    where = ["export", dest]
    if dest not in KEYS:
        raise ConfigError(unknown_dest(dest), source=source, key=keypaths.render(where))
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise ConfigError(f"expected a mapping of {', '.join(KEYS[dest])}", source=source,
                          key=keypaths.render(where))
    found: dict[str, str] = {}
    for key, value in section.items():
        path = keypaths.render([*where, str(key)])
        if key not in KEYS[dest]:
            raise ConfigError(_unknown_key(dest, str(key)), source=source, key=path)
        if key in NESTED.get(dest, ()):
            if not isinstance(value, Mapping):
                raise ConfigError("expected a mapping of NAME: value", source=source, key=path)
            for name, item in value.items():
                if isinstance(item, Mapping | list):
                    raise ConfigError("expected a plain value (text, number, true/false)",
                                      source=source, key=keypaths.render([*where, key, name]))
                found[f"{key}.{name}"] = _text(item)
        elif key in LISTS.get(dest, ()) and isinstance(value, list):
            if any(isinstance(v, Mapping | list) for v in value):
                raise ConfigError("expected a list of names", source=source, key=path)
            found[str(key)] = ",".join(_text(v) for v in value)
        elif isinstance(value, Mapping | list):
            raise ConfigError("expected a plain value (text, number, true/false)",
                              source=source, key=path)
        else:
            found[str(key)] = _text(value)
    uri = found.get("tracking_uri", "")
    if uri and urllib.parse.urlsplit(uri).password is not None:
        raise ConfigError("a password in the URL would be kept in the run's record: drop it "
                          "and set MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD (or "
                          "MLFLOW_TRACKING_TOKEN) in the environment instead", source=source,
                          key=keypaths.render([*where, "tracking_uri"]))
    return found


def names(text: str | None) -> list[str]:
    """Comma-separated names (a LISTS option) as a list, blanks dropped."""
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def flag(dest: str, opts: Mapping[str, str], key: str, default: bool) -> bool:
    value = opts.get(key)
    if value is None or value == "":
        return default
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ConfigError(f"export.{dest}.{key}={value}: use true or false")


@contextlib.contextmanager
def env_defaults(values: Mapping[str, str]) -> Iterator[None]:
    """These environment variables, where the user has not set them, for the block only (the
    exporters' clients read their settings from the environment)."""
    saved = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        os.environ.setdefault(key, value)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
