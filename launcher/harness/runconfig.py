"""The run config an evaluation container is started with (``run_eval --run_config FILE``).

Shape (the eval-factory contract, see DESIGN.md)::

    config:
      type: gsm8k                 # the task
      output_dir: /results
      params: {limit_samples, parallelism, max_retries, request_timeout, temperature, top_p,
               max_new_tokens, extra}          # all optional
    target:
      api_endpoint: {url, model_id, type: chat|completions, api_key_name,
                     adapter_config}           # see launcher.harness.adapters

``params.extra`` holds harness options (``dataset_dir``, task options) and one nested mapping
for the request body: ``extra.request_params`` (e.g. ``{stop: ["###"], seed: 1}``) is merged
into every request body after ``model``/``temperature``/``top_p``/``max_tokens``, so it can
override them; ``adapter_config.params_to_add/remove/rename`` are applied after that.

Unknown keys are ignored (configs written for other harnesses carry more); wrong types are a
``ConfigError`` naming the key.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs
import yaml

from launcher.errors import ConfigError
from launcher.harness.adapters import AdapterConfig, parse_adapter_config

ENDPOINT_TYPES = ("chat", "completions")


@attrs.frozen
class Params:
    limit_samples: int | None = None
    parallelism: int = 8
    max_retries: int = 5
    request_timeout: float = 60.0
    temperature: float = 0.0
    top_p: float = 1.0
    max_new_tokens: int = 1024
    extra: dict[str, Any] = attrs.field(factory=dict)

    @property
    def request_params(self) -> dict[str, Any]:
        """``extra.request_params``: extra request-body params (validated by the parser)."""
        return dict(self.extra.get("request_params") or {})


@attrs.frozen
class ApiEndpoint:
    url: str
    model_id: str
    type: str = "chat"
    api_key_name: str | None = None
    api_key_file: str | None = None  # a file holding the key, mounted read-only


@attrs.frozen
class RunConfig:
    task: str
    output_dir: str
    endpoint: ApiEndpoint
    params: Params = attrs.field(factory=Params)
    adapter: AdapterConfig = attrs.field(factory=AdapterConfig)
    # The config's user_provided_metadata (the reference's key), copied into results.yml.
    metadata: dict[str, Any] = attrs.field(factory=dict)

    def echo(self) -> dict[str, Any]:
        """The ``config:`` section for results.yml (the parsed config, defaults filled in)."""
        return {
            "type": self.task,
            "output_dir": self.output_dir,
            "params": attrs.asdict(self.params),
        }

    def api_key(self, environ: Mapping[str, str] | None = None) -> str | None:
        """The API key from the file ``api_key_file`` or the env var named by ``api_key_name``
        (None when neither is set)."""
        if self.endpoint.api_key_file:
            return read_key_file(self.endpoint.api_key_file)
        name = self.endpoint.api_key_name
        if not name:
            return None
        env = os.environ if environ is None else environ
        value = env.get(name)
        if not value:
            raise ConfigError(
                f"the env var {name} (named by target.api_endpoint.api_key_name) is not set;"
                f" pass it to the container (-e {name})"
            )
        return value


KEY_FILE_LIMIT = 64 * 1024


def read_key_file(path: str) -> str:
    """The key in ``path`` (surrounding whitespace dropped); a one-line error, never the
    value, when it cannot be read or is empty."""
    try:
        with open(path, "rb") as f:
            data = f.read(KEY_FILE_LIMIT + 1)
    except OSError as e:
        raise ConfigError(
            f"cannot read the API key file {path} (target.api_endpoint.api_key_file): "
            f"{e.strerror or e}; make it readable by the uid the evaluation runs as "
            f"(uid {os.getuid()})") from None
    key = data.decode("utf-8", "replace").strip()
    if not key or len(data) > KEY_FILE_LIMIT or any(c in key for c in "\r\n\0"):
        raise ConfigError(f"the API key file {path} (target.api_endpoint.api_key_file) must "
                          "hold the key alone, on one line")
    return key


def load_run_config(path: str | os.PathLike[str]) -> RunConfig:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read the run config: {e.strerror or e}", source=str(p)) from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"not valid YAML: {_one_line(str(e))}", source=str(p)) from e
    return parse_run_config(data, source=str(p), warn=_warn)


def _warn(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def parse_run_config(
    data: Any, source: str | None = None, warn: Callable[[str], None] | None = None
) -> RunConfig:
    def err(key: str, message: str) -> ConfigError:
        return ConfigError(message, source=source, key=key)

    root = _mapping(data, "", err)
    config = _mapping(root.get("config"), "config", err)
    target = _mapping(root.get("target"), "target", err)
    api = _mapping(target.get("api_endpoint"), "target.api_endpoint", err)
    raw_params = config.get("params")
    params = {} if raw_params is None else _mapping(raw_params, "config.params", err)

    task = _string(config.get("type"), "config.type", err)
    output_dir = _string(config.get("output_dir", "/results"), "config.output_dir", err)
    endpoint_type = _string(api.get("type", "chat"), "target.api_endpoint.type", err)
    if endpoint_type not in ENDPOINT_TYPES:
        raise err("target.api_endpoint.type", f"must be one of {', '.join(ENDPOINT_TYPES)}")
    url = _string(api.get("url"), "target.api_endpoint.url", err)
    if not url.startswith(("http://", "https://")):
        raise err("target.api_endpoint.url", f"must start with http:// or https://, got {url!r}")
    key_name = api.get("api_key_name")
    if key_name is not None:
        key_name = _string(key_name, "target.api_endpoint.api_key_name", err)
    endpoint = ApiEndpoint(
        url=url,
        model_id=_string(api.get("model_id"), "target.api_endpoint.model_id", err),
        type=endpoint_type,
        api_key_name=key_name or None,
        api_key_file=_string(api["api_key_file"], "target.api_endpoint.api_key_file", err)
        if api.get("api_key_file") is not None else None,
    )

    defaults = Params()
    kw: dict[str, Any] = {}
    for name in ("parallelism", "max_retries", "max_new_tokens"):
        value = params.get(name)
        minimum = 0 if name == "max_retries" else 1
        kw[name] = (
            getattr(defaults, name)
            if value is None
            else _int(value, f"config.params.{name}", minimum, err)
        )
    limit = params.get("limit_samples")
    kw["limit_samples"] = (
        None if limit is None else _int(limit, "config.params.limit_samples", 1, err)
    )
    for name, lo, hi in (
        ("request_timeout", 0.0, None),
        ("temperature", 0.0, 2.0),
        ("top_p", 0.0, 1.0),
    ):
        value = params.get(name)
        kw[name] = (
            getattr(defaults, name)
            if value is None
            else _float(value, f"config.params.{name}", lo, hi, err)
        )
    if kw["request_timeout"] <= 0:
        raise err("config.params.request_timeout", "must be > 0")
    extra = params.get("extra")
    kw["extra"] = {} if extra is None else dict(_mapping(extra, "config.params.extra", err))
    request_params = kw["extra"].get("request_params")
    if request_params is not None:
        _mapping(request_params, "config.params.extra.request_params", err)
    adapter = parse_adapter_config(api.get("adapter_config"), source=source, warn=warn)
    metadata = root.get("user_provided_metadata")
    metadata = {} if metadata is None else _mapping(metadata, "user_provided_metadata", err)
    return RunConfig(
        task=task, output_dir=output_dir, endpoint=endpoint, params=Params(**kw), adapter=adapter,
        metadata=dict(metadata),
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _mapping(value: Any, key: str, err: Any) -> Mapping[str, Any]:
    if value is None and key:
        raise err(key, "is missing")
    if not isinstance(value, Mapping):
        raise err(key or "(top level)", f"must be a mapping, got {type(value).__name__}")
    return value


def _string(value: Any, key: str, err: Any) -> str:
    if value is None:
        raise err(key, "is missing")
    if not isinstance(value, str) or not value.strip():
        raise err(key, f"must be a non-empty string, got {value!r}")
    return value.strip()


def _int(value: Any, key: str, minimum: int, err: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise err(key, f"must be an integer, got {value!r}")
    if value < minimum:
        raise err(key, f"must be >= {minimum}, got {value}")
    return value


def _float(value: Any, key: str, lo: float, hi: float | None, err: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise err(key, f"must be a number, got {value!r}")
    if value < lo or (hi is not None and value > hi):
        bounds = f">= {lo}" if hi is None else f"between {lo} and {hi}"
        raise err(key, f"must be {bounds}, got {value}")
    return float(value)
