"""``${a.b.c}`` references to other keys and ``${oc.env:VAR[,default]}`` (OmegaConf syntax).

A value that is exactly one ``${...}`` takes the referenced value with its type; a reference
inside a longer string is substituted as text. ``\\${`` escapes a literal ``${``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from launcher.errors import ConfigError

_REF = re.compile(r"(?<!\\)\$\{([^${}]*)\}")
_MISSING = object()


class _Resolver:
    def __init__(self, root: Any, environ: Mapping[str, str], source: str) -> None:
        self.root = root
        self.environ = environ
        self.source = source
        self.stack: list[str] = []

    def node(self, value: Any, path: str) -> Any:
        if isinstance(value, dict):
            return {k: self.node(v, f"{path}.{k}" if path else str(k)) for k, v in value.items()}
        if isinstance(value, list):
            return [self.node(v, f"{path}[{i}]") for i, v in enumerate(value)]
        if isinstance(value, str) and "${" in value:
            return self.text(value, path)
        return value

    def text(self, value: str, path: str) -> Any:
        whole = _REF.fullmatch(value)
        if whole:
            return self.expr(whole.group(1).strip(), path)
        out = _REF.sub(lambda m: _as_text(self.expr(m.group(1).strip(), path)), value)
        return out.replace("\\${", "${")

    def expr(self, inner: str, path: str) -> Any:
        if inner.startswith("oc.env:"):
            name, _, default = inner.removeprefix("oc.env:").partition(",")
            name = name.strip()
            if name in self.environ:
                return self.environ[name]
            if _:
                return _unquote(default.strip())
            raise ConfigError(f"${{oc.env:{name}}} needs host variable {name}, which is not set: "
                              f"export it or give a default, ${{oc.env:{name},value}}",
                              source=self.source, key=path)
        if ":" in inner:
            raise ConfigError(f"unsupported resolver in '${{{inner}}}' (supported: oc.env)",
                              source=self.source, key=path)
        if inner in self.stack:
            chain = " -> ".join([*self.stack, inner])
            raise ConfigError(f"circular reference: {chain}", source=self.source, key=path)
        target = _lookup(self.root, inner)
        if target is _MISSING:
            raise ConfigError(f"'${{{inner}}}' refers to a key that does not exist",
                              source=self.source, key=path)
        self.stack.append(inner)
        try:
            return self.node(target, inner)
        finally:
            self.stack.pop()


def _lookup(root: Any, dotted: str) -> Any:
    node = root
    for part in dotted.split("."):
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _MISSING
    return node


def _as_text(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    return str(value)


def _unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def resolve(data: dict[str, Any], environ: Mapping[str, str], *, source: str) -> dict[str, Any]:
    return _Resolver(data, environ, source).node(data, "")
