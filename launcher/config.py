"""The run config: typed models (attrs), loading from YAML, ``-o`` overrides, validation.

The YAML shape follows the reference launcher (NeMo Evaluator Launcher) so its configs run
unchanged. Conversion happens once, at the edge (``load_config``): the rest of the launcher
only sees typed, validated ``Config`` objects. Every mistake becomes one ``ConfigError`` line
naming the file, the key path and what to do.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping
from importlib import resources
from typing import Any, get_origin

import attrs
import cattrs
import yaml
from cattrs.cols import list_structure_factory
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from launcher.errors import ConfigError

MISSING_MARK = "???"  # the reference's marker for "the user must supply this value"


@attrs.frozen
class ApiEndpoint:
    url: str
    model_id: str
    api_key_name: str | None = None
    type: str = "chat"
    adapter_config: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Target:
    api_endpoint: ApiEndpoint


@attrs.frozen
class Execution:
    type: str = "local"
    output_dir: str = "./results"
    extra_docker_args: str = ""
    mode: str = "sequential"


@attrs.frozen
class Task:
    name: str
    container: str | None = None
    dataset_dir: str | None = None
    dataset_mount_path: str = "/datasets"
    env_vars: dict[str, str] = attrs.field(factory=dict)
    nemo_evaluator_config: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Evaluation:
    tasks: list[Task]
    env_vars: dict[str, str] = attrs.field(factory=dict)
    nemo_evaluator_config: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Deployment:
    type: str = "none"


@attrs.frozen
class Config:
    target: Target
    evaluation: Evaluation
    execution: Execution = attrs.field(factory=Execution)
    deployment: Deployment = attrs.field(factory=Deployment)
    env_vars: dict[str, str] = attrs.field(factory=dict)
    defaults: list[Any] = attrs.field(factory=list)


# --------------------------------------------------------------------------- conversion


class _TypeMismatch(ValueError):
    pass


def _describe(value: Any) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"


def _strict(expected: type, accept: tuple[type, ...]):
    def hook(value: Any, _type: Any) -> Any:
        if isinstance(value, bool) and expected is not bool:
            raise _TypeMismatch(f"expected {expected.__name__}, got {_describe(value)}")
        if not isinstance(value, accept):
            raise _TypeMismatch(f"expected {expected.__name__}, got {_describe(value)}")
        return expected(value)

    return hook


def _strict_dict(value: Any, type_: Any) -> Any:
    if not isinstance(value, Mapping):
        raise _TypeMismatch(f"expected a mapping, got {_describe(value)}")
    return dict(value)


def _strict_str_dict(value: Any, type_: Any) -> dict[str, str]:
    to_str = _strict(str, (str, int, float))
    return {str(k): to_str(v, str) for k, v in _strict_dict(value, type_).items()}


def _strict_list_factory(type_: Any, converter: cattrs.Converter) -> Any:
    inner = list_structure_factory(type_, converter)

    def hook(value: Any, _type: Any) -> Any:
        if not isinstance(value, list):
            raise _TypeMismatch(f"expected a list, got {_describe(value)}")
        return inner(value, _type)

    return hook


def _make_converter() -> cattrs.Converter:
    conv = cattrs.Converter(forbid_extra_keys=True, detailed_validation=True)
    conv.register_structure_hook(str, _strict(str, (str,)))
    conv.register_structure_hook(int, _strict(int, (int,)))
    conv.register_structure_hook(float, _strict(float, (int, float)))
    conv.register_structure_hook(bool, _strict(bool, (bool,)))
    conv.register_structure_hook_func(lambda t: t == dict[str, Any], _strict_dict)
    conv.register_structure_hook_func(lambda t: t == dict[str, str], _strict_str_dict)
    conv.register_structure_hook_factory(lambda t: get_origin(t) is list, _strict_list_factory)
    return conv


_converter = _make_converter()


def _format_exception(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, ForbiddenExtraKeysError):
        known = [a.name for a in attrs.fields(exc.cl)]
        parts = []
        for extra in sorted(exc.extra_fields):
            close = difflib.get_close_matches(extra, known, n=1)
            hint = (f" (did you mean '{close[0]}'?)" if close
                    else f" (known keys: {', '.join(known)})")
            parts.append(f"unknown key '{extra}'{hint}")
        return "; ".join(parts)
    if isinstance(exc, KeyError):
        return "required value missing"
    if isinstance(exc, _TypeMismatch):
        return str(exc)
    return cattrs.v.format_exception(exc, type_)


def _first_error(exc: Exception) -> tuple[str, str]:
    """(key path, message) of the first problem cattrs found, key path without ``$.``."""
    messages = cattrs.transform_error(exc, path="$", format_exception=_format_exception)
    # An unknown key explains a "missing" one next to it (a typo), so report it first.
    messages.sort(key=lambda m: "unknown key" not in m)
    first = messages[0] if messages else str(exc)
    text, _, where = first.rpartition(" @ ")
    path = where.removeprefix("$").removeprefix(".")
    if isinstance(exc, ClassValidationError | IterableValidationError) and not text:
        text = first
    return path, text


# --------------------------------------------------------------------------- loading


def _read_yaml(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError("file not found; check the path given to --config", source=path) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, expected a YAML file", source=path) from None
    except PermissionError:
        raise ConfigError("cannot read the file (permission denied)", source=path) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        raise ConfigError(f"malformed YAML at {where}: {exc.problem}", source=path) from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"malformed YAML: {exc}", source=path) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"expected a mapping at the top level, got {_describe(data)}",
                          source=path)
    return data


def packaged_defaults() -> dict[str, Any]:
    """The built-in defaults (``launcher/data/defaults.yaml``), under every user config."""
    text = resources.files("launcher").joinpath("data/defaults.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text) or {}


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive merge of mappings; ``top`` wins; lists and scalars are replaced whole."""
    out = copy.deepcopy(dict(base))
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def parse_override(text: str) -> tuple[list[str], Any, bool]:
    """``a.b.c=value`` (or ``+a.b=value``) → (key path, YAML-parsed value, adds_key)."""
    key, sep, raw = text.partition("=")
    adds = key.startswith("+")
    key = key.removeprefix("+").strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(
            f"override '{text}' is not of the form dotted.key=value (e.g. "
            "-o execution.output_dir=/results)",
            source="-o",
        )
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.split("."), value, adds


def apply_override(data: dict[str, Any], text: str) -> None:
    path, value, _adds = parse_override(text)
    node: Any = data
    for i, part in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(node, list):
            node = _list_item(node, part, text)
            continue
        if part not in node or node[part] is None:
            node[part] = [] if nxt.isdigit() else {}
        node = node[part]
    last = path[-1]
    if isinstance(node, list):
        index = _list_index(node, last, text, allow_append=True)
        if index == len(node):
            node.append(value)
        else:
            node[index] = value
    elif isinstance(node, dict):
        node[last] = value
    else:
        raise ConfigError(
            f"cannot set '{'.'.join(path)}': '{'.'.join(path[:-1])}' is not a mapping",
            source="-o",
        )


def _list_index(node: list[Any], part: str, text: str, allow_append: bool = False) -> int:
    limit = len(node) + (1 if allow_append else 0)
    if not part.isdigit() or int(part) >= limit:
        raise ConfigError(
            f"override '{text}': '{part}' is not an index of a list of {len(node)} items",
            source="-o",
        )
    return int(part)


def _list_item(node: list[Any], part: str, text: str) -> Any:
    return node[_list_index(node, part, text)]


def _find_missing(data: Any, path: str = "") -> str | None:
    if isinstance(data, Mapping):
        for key, value in data.items():
            found = _find_missing(value, f"{path}.{key}" if path else str(key))
            if found:
                return found
    elif isinstance(data, list):
        for i, value in enumerate(data):
            found = _find_missing(value, f"{path}[{i}]")
            if found:
                return found
    elif data == MISSING_MARK:
        return path
    return None


def load_config(path: str | None, overrides: Iterable[str] = ()) -> tuple[Config, dict[str, Any]]:
    """Read, merge with the packaged defaults, apply overrides, validate.

    Returns the typed config and the merged raw mapping (for ``--dry-run`` display and the
    invocation record). ``path`` None means the built-in defaults alone.
    """
    source = path or "<built-in defaults>"
    user = _read_yaml(path) if path else {}
    data = deep_merge(packaged_defaults(), user)
    for text in overrides:
        apply_override(data, text)
    missing = _find_missing(data)
    if missing:
        raise ConfigError(
            f"a value is required here (it is '{MISSING_MARK}'): set it in the file or pass "
            f"-o {missing}=...",
            source=source,
            key=missing,
        )
    try:
        config = _converter.structure(data, Config)
    except (ClassValidationError, IterableValidationError) as exc:
        key, message = _first_error(exc)
        raise ConfigError(message, source=source, key=key or None) from None
    _check_semantics(config, source)
    return config, data


def _check_semantics(config: Config, source: str) -> None:
    ep = config.target.api_endpoint
    if not ep.url.startswith(("http://", "https://")):
        raise ConfigError(
            f"expected an http(s) URL of an OpenAI-compatible endpoint, got '{ep.url}'",
            source=source,
            key="target.api_endpoint.url",
        )
    if ep.type not in ("chat", "completions"):
        raise ConfigError(
            f"expected 'chat' or 'completions', got '{ep.type}'",
            source=source,
            key="target.api_endpoint.type",
        )
    if config.execution.type != "local":
        raise ConfigError(
            f"only the 'local' executor exists, got '{config.execution.type}'",
            source=source,
            key="execution.type",
        )
    if config.execution.mode not in ("sequential", "parallel"):
        raise ConfigError(
            f"expected 'sequential' or 'parallel', got '{config.execution.mode}'",
            source=source,
            key="execution.mode",
        )
    if not config.evaluation.tasks:
        raise ConfigError(
            "no tasks: list at least one, e.g. tasks: [{name: gsm8k}]",
            source=source,
            key="evaluation.tasks",
        )
    for i, task in enumerate(config.evaluation.tasks):
        params = task_params(config, task)
        limit = params.get("limit_samples")
        bad = isinstance(limit, bool) or not isinstance(limit, int) or limit < 1
        if limit is not None and bad:
            raise ConfigError(
                f"expected a positive integer or null, got {_describe(limit)}",
                source=source,
                key=f"evaluation.tasks[{i}].nemo_evaluator_config.config.params.limit_samples",
            )
        for scope, env in (("env_vars", config.env_vars), ("evaluation.env_vars",
                           config.evaluation.env_vars), (f"evaluation.tasks[{i}].env_vars",
                           task.env_vars)):
            for name in env:
                if not name.isidentifier():
                    raise ConfigError(
                        f"'{name}' is not a valid environment variable name",
                        source=source,
                        key=f"{scope}.{name}",
                    )


def task_evaluator_config(config: Config, task: Task) -> dict[str, Any]:
    """The task's ``nemo_evaluator_config``: evaluation-level, deep-merged with the task's own."""
    return deep_merge(config.evaluation.nemo_evaluator_config, task.nemo_evaluator_config)


def task_params(config: Config, task: Task) -> dict[str, Any]:
    merged = task_evaluator_config(config, task)
    params = (merged.get("config") or {}).get("params") or {}
    return dict(params) if isinstance(params, Mapping) else {}
