"""The run config: typed models (attrs), loading (Hydra + OmegaConf), ``-o`` overrides,
validation.

The YAML shape follows the reference launcher (NeMo Evaluator Launcher) so its configs run
unchanged. Conversion happens once, at the edge (``load_config``): the rest of the launcher
only sees typed, validated ``Config`` objects. Every mistake becomes one ``ConfigError`` line
naming the file, the key path and what to do.
"""

from __future__ import annotations

import copy
import difflib
import os
import sys
from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from typing import Any, get_origin

import attrs
import cattrs
import yaml
from cattrs.cols import list_structure_factory
from cattrs.errors import ClassValidationError, ForbiddenExtraKeysError, IterableValidationError

from launcher import apikey, keypaths, missing, semantics, yamlfile
from launcher import deployment as deployment_mod
from launcher.deployment import Deployment
from launcher.errors import ConfigError


@attrs.frozen
class ApiEndpoint:
    url: str
    model_id: str
    api_key_name: str | None = None
    api_key_file: str | None = None  # a file holding the key, mounted read-only (built-in tasks)
    type: str = "chat"
    adapter_config: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Target:
    api_endpoint: ApiEndpoint


@attrs.frozen
class Mounts:
    evaluation: dict[str, str] = attrs.field(factory=dict)  # launcher-side path: container path
    deployment: dict[str, str] = attrs.field(factory=dict)  # the same, for the model server
    mount_home: bool = True  # Slurm with pyxis: mount the user's home (the reference's)
    auxiliary: dict[str, Any] = attrs.field(factory=dict)  # Slurm: auxiliary deployments' (none)


@attrs.frozen
class AutoExport:
    destinations: list[str] = attrs.field(factory=list)  # local | mlflow | wandb (autoexport.py)


@attrs.frozen
class SlurmDeployment:
    n_tasks: int | None = None  # Slurm: the server step's tasks (default: num_nodes)


@attrs.frozen
class Execution:
    type: str = "local"
    output_dir: str = "./results"
    extra_docker_args: str = ""
    mode: str = "sequential"
    max_parallel: int = 4
    endpoint_readiness_timeout: float | None = None  # 600 s for a deployment, 30 s otherwise
    evaluation_gpu_visible: Any = False  # the reference's: GPUs for every evaluation container
    mounts: Mounts = attrs.field(factory=Mounts)
    auto_export: AutoExport = attrs.field(factory=AutoExport)
    # execution.type: slurm (the reference's keys; launcher/slurm_settings.py reads them)
    hostname: str | None = None  # empty: sbatch on this machine; set: over SSH
    username: str | None = None
    account: str | None = None
    partition: str | None = None
    gres: str | None = None
    walltime: Any = "01:00:00"  # HH:MM:SS (YAML may read an unquoted one as seconds)
    max_walltime: Any = "120:00:00"
    num_nodes: int = 1
    ntasks_per_node: int = 1
    sbatch_extra_flags: dict[str, Any] = attrs.field(factory=dict)
    container_runtime: str = "pyxis"  # pyxis (srun --container-image) | docker (docker run)
    gpus_per_node: int | None = None  # --gpus-per-node, instead of --gres
    sbatch_comment: str | None = None  # in --comment, before the launcher's labels
    subproject: str | None = None  # job names <account>-<subproject>.<name> (the reference's)
    cpu_partition: str | None = None  # the reference's export jobs' (exports run here: unused)
    num_instances: int = 1  # server instances per job (only 1: no load-balancing proxy)
    proxy: dict[str, Any] = attrs.field(factory=dict)  # the proxy of num_instances > 1 (unused)
    eval_ray_cluster: bool = False  # the reference's multi-node Ray evaluation (not here)
    deployment: SlurmDeployment = attrs.field(factory=SlurmDeployment)

    def readiness_timeout(self, deployed: bool) -> float:
        """Seconds to wait for the endpoint: the key; else 30 s for an endpoint that already
        runs, 600 s for a deployment, the walltime for one inside a Slurm job (as the
        reference: the image import and the model download count too)."""
        if self.endpoint_readiness_timeout is not None:
            return self.endpoint_readiness_timeout
        if deployed and self.type == "slurm":
            from launcher.slurm_settings import walltime_seconds

            return float(walltime_seconds(self.walltime))
        return 600.0 if deployed else 30.0


@attrs.frozen
class Task:
    name: str
    container: str | None = None
    endpoint_type: str | None = None  # this task's target.api_endpoint.type (the reference's)
    dataset_dir: str | None = None
    dataset_mount_path: str = "/datasets"
    timeout: float | None = None  # seconds; a task running longer is stopped and marked failed
    gpus: Any = None  # "all" or a count: GPUs for this task's evaluation container
    env_vars: dict[str, str] = attrs.field(factory=dict)
    nemo_evaluator_config: dict[str, Any] = attrs.field(factory=dict)
    pre_cmd: str = ""  # shell in the container before / after the evaluation (launcher/hooks.py)
    post_cmd: str = ""


@attrs.frozen
class Evaluation:
    tasks: list[Task]
    env_vars: dict[str, str] = attrs.field(factory=dict)
    nemo_evaluator_config: dict[str, Any] = attrs.field(factory=dict)
    pre_cmd: str = ""  # every task's, unless the task has its own
    post_cmd: str = ""


@attrs.frozen
class Config:
    target: Target
    evaluation: Evaluation
    execution: Execution = attrs.field(factory=Execution)
    deployment: Deployment = attrs.field(factory=Deployment)
    env_vars: dict[str, str] = attrs.field(factory=dict)
    defaults: list[Any] = attrs.field(factory=list)
    # Free-form, kept in the invocation record; never sent to a container (docs/reference-keys.md)
    user_provided_metadata: dict[str, Any] = attrs.field(factory=dict)
    # export.<dest>.*: the options of `launcher export` and auto-export (launcher/exportopts.py)
    export: dict[str, Any] = attrs.field(factory=dict)


# --------------------------------------------------------------------------- conversion


class _TypeMismatch(ValueError):
    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key  # the mapping key whose value is wrong, under the field's path


_SUBKEY = "\x1f"  # separates a message from the mapping key it belongs to (see _first_error)


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
    out = {}
    for key, item in _strict_dict(value, type_).items():
        try:
            out[str(key)] = to_str(item, str)
        except _TypeMismatch as exc:  # name the key: mounts.evaluation['./x'], not the block
            raise _TypeMismatch(str(exc), key=str(key)) from None
    return out


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


_LEGACY_OVERRIDES = ("is the reference's older form: write its dotted keys nested under "
                     "nemo_evaluator_config instead (config.params.temperature: 0 becomes "
                     "nemo_evaluator_config: {config: {params: {temperature: 0}}})")
# Keys the reference has that mean something else here, by the block they sit in: a hint
# that says what to use instead, never a "did you mean" guess at an unrelated key.
KNOWN_ELSEWHERE: dict[tuple[str, str], str] = {
    ("Evaluation", "overrides"): _LEGACY_OVERRIDES,
    **{(block, "user_provided_metadata"): "belongs at the top level of the config, beside "
       "target and evaluation, as in the reference: move it there"
       for block in ("Evaluation", "Execution", "Task")},
    ("Task", "overrides"): _LEGACY_OVERRIDES,
    ("AutoExport", "configs"): "is the reference's older place of the exporters' options: move "
    "them to the top-level export block (execution.auto_export.configs.mlflow.X becomes "
    "export.mlflow.X)",
}


def _format_exception(exc: BaseException, type_: Any) -> str:
    if isinstance(exc, ForbiddenExtraKeysError):
        known = [a.name for a in attrs.fields(exc.cl)]
        parts = []
        for extra in sorted(exc.extra_fields):
            elsewhere = KNOWN_ELSEWHERE.get((exc.cl.__name__, extra))
            if elsewhere:
                parts.append(f"unknown key '{extra}': it {elsewhere}")
                continue
            close = difflib.get_close_matches(extra, known, n=1)
            hint = (f" (did you mean '{close[0]}'?)" if close
                    else f" (known keys: {', '.join(known)})")
            parts.append(f"unknown key '{extra}'{hint}")
        return "; ".join(parts)
    if isinstance(exc, KeyError):
        return "required value missing"
    if isinstance(exc, _TypeMismatch):
        return str(exc) if exc.key is None else f"{exc}{_SUBKEY}{exc.key}"
    if isinstance(exc, AttributeError) and attrs.has(type_):  # a scalar where a block belongs
        return f"expected a mapping of {', '.join(a.name for a in attrs.fields(type_))}"
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
    text, sep, key = text.partition(_SUBKEY)
    if sep:
        path = keypaths.child(path, key)
    return path, text


# --------------------------------------------------------------------------- loading


def _read_yaml(path: str) -> dict[str, Any]:
    try:
        data = yamlfile.read(path)
    except FileNotFoundError:
        raise ConfigError("file not found; check the path given to --config", source=path) from None
    except IsADirectoryError:
        raise ConfigError("is a directory, expected a YAML file", source=path) from None
    except PermissionError:
        raise ConfigError("cannot read the file (permission denied)", source=path) from None
    except UnicodeDecodeError:
        raise ConfigError("cannot read the file: it is not UTF-8 text", source=path) from None
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


def _packaged(name: str) -> dict[str, Any] | None:
    node = resources.files("launcher").joinpath(f"data/configs/{name}.yaml")
    if not node.is_file():
        return None
    return yaml.safe_load(node.read_text(encoding="utf-8")) or {}


DEFAULTS_LIST: list[Any] = [{"execution": "local"}, {"deployment": "none"}, "_self_"]


def deep_merge(base: Mapping[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive merge of mappings; ``top`` wins; lists and scalars are replaced whole."""
    out = copy.deepcopy(dict(base))
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), Mapping):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def locate(config: str | None, config_dir: str | None, config_name: str | None) -> str | None:
    """``--config FILE`` or ``--config-dir DIR --config-name NAME`` (NAME with or without .yaml)."""
    if config and (config_dir or config_name):
        raise ConfigError("--config cannot be combined with --config-dir/--config-name: give "
                          "either a file or a directory and a name", source="command line")
    if config_dir and not config_name:
        raise ConfigError("--config-dir needs --config-name NAME", source="command line")
    if config_name:
        name = config_name if config_name.endswith((".yaml", ".yml")) else f"{config_name}.yaml"
        return os.path.join(config_dir or ".", name)
    return config


def _note(text: str) -> None:
    print(f"note: {text}", file=sys.stderr)


def load_config(path: str | None, overrides: Iterable[str] = (),
                environ: Mapping[str, str] | None = None,
                note: Callable[[str], None] = _note) -> tuple[Config, dict[str, Any]]:
    """Read, compose the ``defaults:`` list (Hydra), apply overrides, interpolate (OmegaConf),
    validate.

    Layers, later wins: the packaged base, the defaults list (``_self_`` last unless placed),
    then ``-o`` overrides. Returns the typed config and the resolved raw mapping (for
    ``config show``, ``--dry-run`` and the invocation record). ``path`` None means the
    built-in defaults alone. Deprecation notes go to ``note`` once the config is valid.
    """
    from launcher import loader
    from launcher import overrides as overrides_mod

    source = path or "<built-in defaults>"
    user = _read_yaml(path) if path else {}
    entries = user.get("defaults", DEFAULTS_LIST)
    if not isinstance(entries, list):
        raise ConfigError(f"expected a list, got {_describe(entries)}", source=source,
                          key="defaults")
    notes: list[str] = []
    parsed = overrides_mod.rename_old_api_key(overrides_mod.parse(overrides), notes.append)
    groups = [o for o in parsed if o.key in loader.PACKAGED_GROUPS and o.kind != "delete"
              and isinstance(o.value, str)]
    composed = loader.compose(path, [o.text for o in groups], has_defaults="defaults" in user,
                              source=source)
    data = deep_merge(_packaged("base") or {}, composed)
    old_key = apikey.rename_old_api_key(data, source, notes.append) or bool(notes)
    for override in parsed:
        if override not in groups:
            overrides_mod.apply(data, override)
    old_key = apikey.rename_old_api_key(data, overrides_mod.SOURCE, notes.append) or old_key
    deployment_mod.fill_target(data, source)
    missing.check(data, composed, source=source, schema=Config)
    helpers = set(data) - {a.name for a in attrs.fields(Config)}
    helpers &= loader.referenced_roots(data)  # helper blocks (common: {...}) used by ${...}
    data = loader.resolve(data, environ, source=source)
    endpoint = apikey.endpoint_of(data)
    if endpoint is not None:
        apikey.check_api_key_name(endpoint.get("api_key_name"), source=source,
                                  key=apikey.OLD_API_KEY if old_key else apikey.API_KEY_NAME)
    data["defaults"] = entries if "_self_" in entries else [*entries, "_self_"]
    body = {k: v for k, v in data.items() if k not in helpers}
    try:
        config = _converter.structure(body, Config)
    except (ClassValidationError, IterableValidationError) as exc:
        key, message = _first_error(exc)
        raise ConfigError(message, source=source, key=key or None) from None
    semantics.check(config, source)
    for text in dict.fromkeys(notes):
        note(text)
    return config, data


def task_evaluator_config(config: Config, task: Task) -> dict[str, Any]:
    """The task's ``nemo_evaluator_config``: evaluation-level, deep-merged with the task's own."""
    return deep_merge(config.evaluation.nemo_evaluator_config, task.nemo_evaluator_config)


def task_params(config: Config, task: Task) -> dict[str, Any]:
    merged = task_evaluator_config(config, task)
    params = (merged.get("config") or {}).get("params") or {}
    return dict(params) if isinstance(params, Mapping) else {}
