"""Values the user must supply: ``???`` (the reference's marker), left by the user's file or by
the packaged base (``target.api_endpoint.url``/``model_id``, ``evaluation.tasks``).

The first one left becomes one ``ConfigError`` line, by what most likely happened:

- a misspelled key next to it (``modle_id: m`` beside the base's ``model_id: ???``): the
  typo, with "did you mean 'model_id'?" -- not the missing key the user did write;
- a ``???`` the user wrote: "a value is required here", with the ``-o`` that sets it;
- a key the user never wrote: it is missing, and how to add it in the file or with ``-o``.

Every ``-o`` suggested is in the form ``-o`` accepts (``evaluation.tasks.1.x=...``), shell
quoted, with an example value where the launcher knows one.
"""

from __future__ import annotations

import difflib
import typing
from collections.abc import Mapping
from typing import Any

import attrs

from launcher import keypaths
from launcher.errors import ConfigError
from launcher.keypaths import Part

MISSING_MARK = "???"  # the reference's marker for "the user must supply this value"
PLACEHOLDER = "VALUE"
# Example values for suggested overrides, by key name (valid when pasted as they are).
EXAMPLES = {
    "url": "http://localhost:8000/v1/chat/completions",
    "model_id": "meta/llama-3.1-8b-instruct",
    "tasks": "[{name: gsm8k}]",
    "name": "gsm8k",
    "api_key_name": "NGC_API_KEY",
    "limit_samples": "10",
    "output_dir": "./results",
}


def find(data: Any, path: tuple[Part, ...] = ()) -> list[Part] | None:
    """The path of the first ``???`` value, in document order."""
    if isinstance(data, Mapping):
        for key, value in data.items():
            found = find(value, (*path, key))
            if found is not None:
                return found
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found = find(value, (*path, i))
            if found is not None:
                return found
    elif data == MISSING_MARK:
        return list(path)
    return None


def check(data: Mapping[str, Any], user: Mapping[str, Any], *, source: str,
          schema: type) -> None:
    """Raise for the first ``???`` left in ``data`` (the merged config); ``user`` is what the
    user's file (with its defaults list) holds, to tell their ``???`` from the base's;
    ``schema`` is the attrs class of the whole config (to recognise misspelled keys)."""
    missing = find(data)
    if missing is None:
        return
    typo = _typo(data, missing, schema)
    if typo is not None:
        parent, wrote, meant = typo
        raise ConfigError(f"unknown key '{wrote}' (did you mean '{meant}'?)", source=source,
                          key=keypaths.render(parent) or None)
    name = str(missing[-1])
    example = EXAMPLES.get(name, PLACEHOLDER) if not isinstance(missing[-1], int) else PLACEHOLDER
    override = keypaths.override_text(missing, example)
    key = keypaths.render(missing)
    if keypaths.lookup(user, missing)[1] == MISSING_MARK:
        how = f"set it in the file or pass {override}" if override else "set it in the file"
        message = f"a value is required here (it is '{MISSING_MARK}'): {how}"
    else:
        parent_key = keypaths.render(missing[:-1])
        where = f" under {parent_key}" if parent_key else ""
        how = f"add '{name}: {example}'{where} in the file"
        message = f"required key missing: {how}" + (f", or pass {override}" if override else "")
    raise ConfigError(message, source=source, key=key)


def _typo(data: Any, missing: list[Part], schema: type) -> tuple[list[Part], str, str] | None:
    """(parent path, key written, key meant) when a key the schema does not know sits where a
    key on the way to ``missing`` belongs (deepest first): it is a misspelling of that key."""
    for depth in range(len(missing), 0, -1):
        parent, meant = missing[:depth - 1], missing[depth - 1]
        cls = _schema_at(schema, parent)
        node = keypaths.lookup(data, parent)[1]
        if cls is None or isinstance(meant, int) or not isinstance(node, Mapping):
            continue
        known = {a.name for a in attrs.fields(cls)}
        unknown = [str(k) for k in node if k not in known]
        close = difflib.get_close_matches(str(meant), unknown, n=1)
        if close:
            return parent, close[0], str(meant)
    return None


def _schema_at(schema: type, parts: list[Part]) -> type | None:
    """The attrs class of the block at ``parts`` (None for a free-form mapping)."""
    cls: Any = schema
    for part in parts:
        if typing.get_origin(cls) is list and isinstance(part, int):
            (cls,) = typing.get_args(cls)
            continue
        if not (isinstance(cls, type) and attrs.has(cls)) or isinstance(part, int):
            return None
        hints = typing.get_type_hints(cls)
        if part not in hints:
            return None
        cls = hints[part]
    return cls if isinstance(cls, type) and attrs.has(cls) else None
