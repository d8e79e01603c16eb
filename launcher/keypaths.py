"""Key paths as the user wrote them, for error messages, and as ``-o`` takes them.

Two spellings of one place in the config:

- ``render``: how messages name a key of the file: dotted names, ``[i]`` for a list item and
  ``['./hf_cache']`` for a key that is not a plain name (a path, a key with spaces), so the
  key reads back as the YAML it came from (``execution.mounts.evaluation['./hf_cache']``).
- ``override_key``: the same place in the form ``-o`` accepts (Hydra's dotted keys, list
  items by index: ``evaluation.tasks.1.name``), or None when ``-o`` cannot address it.

``where_set`` finds which ``nemo_evaluator_config`` a merged task setting came from (the
task's own, else the evaluation-level one), so an error names the key the user wrote.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Part = str | int  # a mapping key or a list index

_NAME = re.compile(r"[A-Za-z_$][A-Za-z0-9_$-]*")  # a key both messages and Hydra write bare


def _is_index(part: Part) -> bool:
    return isinstance(part, int) and not isinstance(part, bool)


def render(parts: Iterable[Part]) -> str:
    """``['execution', 'mounts', 'evaluation', './x']`` → ``execution.mounts.evaluation['./x']``;
    list indexes (ints) as ``[i]``."""
    out = ""
    for part in parts:
        if _is_index(part):
            out += f"[{part}]"
        elif _NAME.fullmatch(str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{str(part)!r}]"
    return out


def child(path: str, key: Part) -> str:
    """``path`` (already rendered) and one more key: ``child('env_vars', 'A B')`` is
    ``env_vars['A B']``."""
    return f"{path}{render(['_', key])[1:]}" if path else render([key])


def override_key(parts: Iterable[Part]) -> str | None:
    """The dotted key ``-o`` takes for this place (``evaluation.tasks.1.x``), or None when a
    part cannot be written in Hydra's key grammar (``./hf_cache``, a key with a space)."""
    out = []
    for part in parts:
        if not (_is_index(part) or _NAME.fullmatch(str(part))):
            return None
        out.append(str(part))
    return ".".join(out) or None


def override_text(parts: Iterable[Part], value: str) -> str | None:
    """``-o KEY=VALUE`` as it can be pasted into a shell (quoted when it needs to be)."""
    key = override_key(parts)
    return None if key is None else f"-o {shlex.quote(f'{key}={value}')}"


def dotted_parts(dotted: str) -> list[str]:
    return [p for p in dotted.split(".") if p]


def lookup(data: Any, parts: Sequence[Part]) -> tuple[bool, Any]:
    """(found, value) of the key at ``parts`` (mapping keys and list indexes)."""
    node = data
    for part in parts:
        if isinstance(node, Mapping) and part in node:
            node = node[part]
            continue
        if not (isinstance(node, list) and _is_index(part) and 0 <= int(part) < len(node)):
            return False, None
        node = node[int(part)]
    return True, node


def has_path(data: Any, parts: Sequence[Part]) -> bool:
    return lookup(data, parts)[0]


def where_set(task_config: Mapping[str, Any], evaluation_config: Mapping[str, Any],
              index: int, dotted: str) -> str:
    """The user's key of a ``nemo_evaluator_config`` setting (``config.params.parallelism``)
    of task ``index``: the task's own block when it sets the key, else the evaluation-level
    block; a ``target.*`` key neither sets is the config's own ``target``."""
    parts: list[Part] = list(dotted_parts(dotted))
    if has_path(task_config, parts):
        return render(["evaluation", "tasks", index, "nemo_evaluator_config", *parts])
    if parts[:1] == ["target"] and not has_path(evaluation_config, parts):
        return render(parts)
    return render(["evaluation", "nemo_evaluator_config", *parts])
