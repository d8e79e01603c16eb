"""Reading a user's YAML file safely: bounded size, nesting and alias expansion.

YAML aliases are references, so a few lines (``b: [*a, *a, ...]`` nine levels deep) can stand
for 10^9 values; PyYAML builds that as a small shared graph, but every consumer that copies it
(OmegaConf, Hydra, a JSON dump of the record) expands it and never finishes. A config is at
most a few thousand values, so :func:`load` refuses, with one line, before anything expands:

* files over ``MAX_BYTES`` or with NUL bytes (not a text file);
* more than ``MAX_VALUES`` values once aliases are expanded, or nesting deeper than
  ``MAX_DEPTH`` (counted on the composed node graph, each shared node once, so the check itself
  is linear in the file's size).
"""

from __future__ import annotations

import os
from typing import Any

import yaml

from launcher.errors import ConfigError

MAX_BYTES = 4 * 1024 * 1024
MAX_VALUES = 200_000
MAX_DEPTH = 64


def read(path: str, source: str | None = None) -> Any:
    """The file's YAML document (None when empty), after the checks of :func:`load`. OSError and
    UnicodeDecodeError and yaml.YAMLError propagate for the caller's messages."""
    source = source or path
    size = os.path.getsize(path)
    if size > MAX_BYTES:
        raise ConfigError(f"the file is {size} bytes; a config is far smaller (the limit is "
                          f"{MAX_BYTES}): check that --config names the right file", source=source)
    with open(path, encoding="utf-8") as fh:
        text = fh.read()
    return load(text, source)


def load(text: str, source: str) -> Any:
    """The YAML document of ``text`` (None when empty), built from the node graph the checks
    measured: parsed once."""
    if "\x00" in text:
        raise ConfigError("not a YAML text file (it holds NUL bytes): check that --config names "
                          "the right file", source=source)
    if len(text) > MAX_BYTES:
        raise ConfigError(f"the text is over {MAX_BYTES} bytes; a config is far smaller",
                          source=source)
    loader = yaml.SafeLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise _too_deep(source) from None
        if node is None:
            return None
        _measure(node, source)
        return loader.construct_document(node)
    finally:
        loader.dispose()


def _measure(root: yaml.Node, source: str) -> None:
    values: dict[int, int] = {}  # id(node) -> values under it, aliases expanded
    depths: dict[int, int] = {}
    stack: list[tuple[yaml.Node, bool]] = [(root, False)]
    active: set[int] = set()
    while stack:  # iterative post-order walk: no recursion limit to hit
        node, done = stack.pop()
        key = id(node)
        if key in values:
            continue
        children = _children(node)
        if not done:
            if key in active:
                raise ConfigError("an alias refers to the value that contains it (a cycle); "
                                  "remove that alias", source=source)
            active.add(key)
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in values)
            continue
        active.discard(key)
        values[key] = 1 + sum(values[id(c)] for c in children)
        depths[key] = 1 + max((depths[id(c)] for c in children), default=0)
        if values[key] > MAX_VALUES:
            raise ConfigError(f"the YAML expands to more than {MAX_VALUES} values (aliases "
                              f"repeated inside aliases); a config is far smaller: write the "
                              f"values out or remove the repeated aliases", source=source)
        if depths[key] > MAX_DEPTH:
            raise _too_deep(source)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _too_deep(source: str) -> ConfigError:
    return ConfigError(f"the YAML nests deeper than {MAX_DEPTH} levels; a config is far "
                       f"flatter: check that --config names the right file", source=source)
