"""``-o dotted.key=value`` overrides (Hydra style; ``+key`` and ``++key`` are accepted too).

Values parse as YAML, so numbers, booleans, lists and null keep their types. List items are
addressed by index (``evaluation.tasks.0.name=gsm8k``); an index one past the end appends.
"""

from __future__ import annotations

from typing import Any

from launcher.errors import ConfigError

SOURCE = "-o"


def parse(text: str) -> tuple[list[str], Any]:
    import yaml

    key, sep, raw = text.partition("=")
    key = key.lstrip("+").strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"override '{text}' is not of the form dotted.key=value (e.g. "
                          "-o execution.output_dir=/results)", source=SOURCE)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value


def apply(data: dict[str, Any], text: str) -> None:
    path, value = parse(text)
    node: Any = data
    for i, part in enumerate(path[:-1]):
        if isinstance(node, list):
            node = node[_index(node, part, text)]
        elif isinstance(node, dict):
            if not isinstance(node.get(part), dict | list):
                node[part] = [] if path[i + 1].isdigit() else {}
            node = node[part]
        else:
            break
    last = path[-1]
    if isinstance(node, list):
        index = _index(node, last, text, allow_append=True)
        if index == len(node):
            node.append(value)
        else:
            node[index] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(f"cannot set '{'.'.join(path)}': its parent is not a mapping",
                          source=SOURCE)


def _index(node: list[Any], part: str, text: str, allow_append: bool = False) -> int:
    limit = len(node) + (1 if allow_append else 0)
    if not part.isdigit() or int(part) >= limit:
        raise ConfigError(f"override '{text}': '{part}' is not an index of a list of "
                          f"{len(node)} items", source=SOURCE)
    return int(part)
