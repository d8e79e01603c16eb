"""``-o`` overrides: Hydra's override grammar (parsed by Hydra), applied by our policy.

The grammar is Hydra's own (``key=value``, ``+key=value`` add, ``++key=value`` add or
override, ``~key`` / ``~key=value`` delete; values are Hydra values, so numbers, booleans,
lists, dicts, null and quoted strings keep their types). What is ours:

- ``key=value`` on a key that does not exist sets it instead of failing: the typed schema
  then rejects unknown keys with a "did you mean" hint, which is the friendlier error.
- List items are addressed by index (``evaluation.tasks.0.name=gsm8k``); an index one past
  the end appends. The bracket form of messages (``evaluation.tasks[0].name=gsm8k``) means
  the same; any other bracket in a key is an error. As in the reference, a task may be
  addressed by its name instead (``evaluation.tasks.gsm8k.timeout=600``).
- ``target.api_endpoint.api_key`` (an older spelling) is rewritten to ``api_key_name``.
- Every mistake is one line naming the override and a fix; values of key-related settings
  are never echoed.

Hydra is imported here, lazily: this module is only imported on the loading path.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import attrs

from launcher.apikey import API_KEY_NAME, OLD_API_KEY
from launcher.errors import ConfigError

SOURCE = "-o"
CHANGE, ADD, FORCE_ADD, DELETE = "change", "add", "force_add", "delete"
_ABSENT = object()


@attrs.frozen
class Override:
    text: str  # as the user typed it (never shown for key-related settings: see shown())
    kind: str  # CHANGE, ADD, FORCE_ADD or DELETE
    key: str  # dotted, as the user wrote it (list indexes as numbers)
    value: Any = None  # None for a bare ~key
    has_value: bool = True

    @property
    def path(self) -> list[str]:
        return self.key.split(".")

    def shown(self) -> str:
        return shown(self.text)


def shown(text: str) -> str:
    """The override as it may appear in a message: values of ``api_key*`` keys are hidden."""
    key, sep, _ = text.partition("=")
    if sep and "api_key" in key:
        return f"{key}=<value not shown>"
    return text


def parse(texts: Iterable[str]) -> list[Override]:
    """Parse with Hydra's override parser; one ConfigError line per bad override."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType
    from hydra.errors import HydraException

    parser = OverridesParser.create()
    kinds = {OverrideType.CHANGE: CHANGE, OverrideType.ADD: ADD,
             OverrideType.FORCE_ADD: FORCE_ADD, OverrideType.DEL: DELETE}
    out: list[Override] = []
    for text in texts:
        try:
            (parsed,) = parser.parse_overrides([_dotted_indexes(text)])
        except HydraException as exc:
            detail = _detail(str(exc), text)
            raise ConfigError(f"override '{shown(text)}' is not of the form dotted.key=value"
                              f"{detail}; e.g. -o execution.output_dir=/results (quote a value "
                              "with special characters: -o \"key='a=b,c'\")",
                              source=SOURCE) from None
        key = parsed.key_or_group
        if not key or any(not part for part in key.split(".")):
            raise ConfigError(f"override '{shown(text)}' is not of the form dotted.key=value "
                              "(the key is empty); e.g. -o execution.output_dir=/results",
                              source=SOURCE)
        if parsed.package is not None:
            raise ConfigError(f"override '{shown(text)}': '@package' is not supported; write "
                              "the full dotted key instead", source=SOURCE)
        if parsed.is_sweep_override():
            raw = text.partition("=")[2]
            fix = "" if "api_key" in key else f"; quote it: -o \"{key}='{raw}'\" or use a list: " \
                                              f"-o '{key}=[{raw}]'"
            raise ConfigError(f"override '{shown(text)}' looks like a sweep (a comma-separated "
                              f"value), which a single run cannot take{fix}", source=SOURCE)
        kind = kinds[parsed.type]
        value = parsed.value()
        has_value = not (kind == DELETE and value is None and "=" not in text)
        out.append(Override(text=text, kind=kind, key=key, value=value, has_value=has_value))
    return out


_INDEX = re.compile(r"\[(\d+|[A-Za-z_][A-Za-z0-9_-]*)\]")


def _dotted_indexes(text: str) -> str:
    """``evaluation.tasks[1].x=v`` (the form messages and YAML paths use) is
    ``evaluation.tasks.1.x=v`` (a task's name works too: ``tasks[gsm8k]``); any other bracket
    in the key is one error line, never a key named ``tasks[1]``."""
    key, sep, value = text.partition("=")
    if "[" not in key and "]" not in key:
        return text
    dotted = _INDEX.sub(r".\1", key)
    if "[" in dotted or "]" in dotted:
        raise ConfigError(f"override '{shown(text)}': -o addresses list items as .N "
                          "(evaluation.tasks.1.name=...) and mapping keys by plain names "
                          "(letters, digits, _ and -); set a key like this one in the file",
                          source=SOURCE)
    return f"{dotted}{sep}{value}"


def _detail(message: str, text: str) -> str:
    """Hydra's reason without its first line (which repeats the override) or its URL."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(("See https", "Error parsing"))]
    if not lines or "api_key" in text.partition("=")[0]:
        return ""
    return f" ({lines[0]})"


def rename_old_api_key(items: list[Override], note: Callable[[str], None]) -> list[Override]:
    """``-o target.api_endpoint.api_key=NAME`` → ``api_key_name`` (with a note); both given
    is an error. The value is checked by the caller, as ``api_key_name`` values are."""
    old = [o for o in items if o.key == OLD_API_KEY]
    if not old:
        return items
    if any(o.key == API_KEY_NAME for o in items):
        raise ConfigError(f"both {OLD_API_KEY} (the older spelling) and {API_KEY_NAME} are "
                          f"given: keep only -o {API_KEY_NAME}=NAME", source=SOURCE,
                          key=OLD_API_KEY)
    note(f"{OLD_API_KEY} is the older spelling of {API_KEY_NAME} (the NAME of the host "
         f"environment variable holding the key); use -o {API_KEY_NAME}=NAME")
    # +api_key adds the old key, which never exists: it may replace the file's api_key_name.
    return [attrs.evolve(o, key=API_KEY_NAME, kind=FORCE_ADD if o.kind == ADD else o.kind)
            if o.key == OLD_API_KEY else o for o in items]


def apply(data: dict[str, Any], override: Override) -> None:
    """Apply one override to a plain mapping, in place (Hydra's +/++/~ rules, our policy)."""
    *parents, last = override.path
    node: Any = data
    for i, part in enumerate(parents):
        part = _by_name(node, part, override)
        child = _child(node, part, override)
        if child is _ABSENT or not isinstance(child, dict | list):
            if override.kind == DELETE:
                raise _no_such_key(override)
            if isinstance(node, list):
                raise _not_an_index(node, part, override)
            child = [] if override.path[i + 1].isdigit() else {}
            node[part] = child
        node = child
    if not isinstance(node, dict | list):
        raise ConfigError(f"override '{override.shown()}': cannot set '{override.key}', its "
                          "parent is not a mapping", source=SOURCE, key=override.key)
    last = _by_name(node, last, override)
    current = _child(node, last, override)
    if override.kind == DELETE:
        if current is _ABSENT:
            raise _no_such_key(override)
        if override.has_value and override.value != current:
            raise ConfigError(f"override '{override.shown()}': cannot delete '{override.key}', "
                              f"its value is not the one given; write -o ~{override.key}",
                              source=SOURCE, key=override.key)
        if isinstance(node, list):
            del node[int(last)]
        else:
            del node[last]
        return
    if override.kind == ADD and current is not _ABSENT and current is not None:
        raise ConfigError(f"override '{override.shown()}': '{override.key}' is already set, so "
                          f"it cannot be added; to replace it write -o "
                          f"{shown(override.text.lstrip('+'))} (or ++ to add or replace)",
                          source=SOURCE, key=override.key)
    value = copy.deepcopy(override.value)
    if isinstance(value, Mapping) and isinstance(current, dict):  # Hydra merges mappings
        from launcher.config import deep_merge

        value = deep_merge(current, value)
    if isinstance(node, list):
        index = int(last)
        if index == len(node):
            node.append(value)
        else:
            node[index] = value
    else:
        node[last] = value


def _by_name(node: Any, part: str, override: Override) -> str:
    """The reference's sugar ``evaluation.tasks.<name>.x=v``: a list of named items (tasks)
    may be indexed by an item's name (or its last dotted part) instead of its position."""
    if not isinstance(node, list) or part.isdigit():
        return part
    found = [i for i, item in enumerate(node) if isinstance(item, Mapping) and (
        item.get("name") == part or str(item.get("name", "")).rsplit(".", 1)[-1] == part)]
    if len(found) == 1:
        return str(found[0])
    names = [str(item.get("name")) for item in node if isinstance(item, Mapping)]
    what = "more than one item is named" if found else "no item is named"
    raise ConfigError(f"override '{override.shown()}': {what} '{part}' in this list (names: "
                      f"{', '.join(names) or 'none'}); use an index, e.g. "
                      f"{override.key.replace(f'.{part}', '.0', 1)}", source=SOURCE,
                      key=override.key)


def _child(node: Any, part: str, override: Override) -> Any:
    if isinstance(node, dict):
        return node.get(part, _ABSENT)
    if isinstance(node, list):
        if not part.isdigit() or int(part) > len(node):
            raise _not_an_index(node, part, override)
        return node[int(part)] if int(part) < len(node) else _ABSENT
    return _ABSENT


def _not_an_index(node: list[Any], part: str, override: Override) -> ConfigError:
    return ConfigError(f"override '{override.shown()}': '{part}' is not an index of a list of "
                       f"{len(node)} items (index {len(node)} appends)",
                       source=SOURCE, key=override.key)


def _no_such_key(override: Override) -> ConfigError:
    return ConfigError(f"override '{override.shown()}': cannot delete '{override.key}', there is "
                       "no such key; check the spelling with `launcher config show`",
                       source=SOURCE, key=override.key)
