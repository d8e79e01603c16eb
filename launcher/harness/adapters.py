"""``target.api_endpoint.adapter_config``: what the harness does around each request.

The keys are the reference's (NeMo Evaluator's "legacy" flat adapter config), with its
defaults; the interceptor-list form (``interceptors: [{name, enabled, config}]``) is read too,
for the interceptors below. Unknown keys are ignored with one warning line (configs written for
other harnesses carry more); a known key of the wrong type is a ConfigError naming it.

=============================  ===========  ===================================================
key                            default      effect
=============================  ===========  ===================================================
use_caching                    true         replay/record answers in
                                            ``<output_dir>/cache/responses.sqlite`` (resume)
caching_dir                    none         the cache folder instead of ``<output_dir>/cache``
use_request_logging            false        request bodies to ``<output_dir>/logs/requests.jsonl``
max_logged_requests            none (all)   ... at most this many
use_response_logging           false        responses to ``<output_dir>/logs/responses.jsonl``
max_logged_responses           none (all)   ... at most this many
log_failed_requests            false        every failed attempt (kind, status, request body,
                                            response snippet) to ``logs/failed_requests.jsonl``
tracking_requests_stats        true         latency percentiles, token counts, errors by kind,
                                            retries -> ``request_stats`` in results.yml
use_reasoning /                false        strip reasoning before scoring: everything up to
process_reasoning_traces                    the last ``end_reasoning_token`` goes; the raw text
                                            stays in samples.jsonl (``raw_response``) and logs
start_reasoning_token          ``<think>``  reasoning started but never ended: the text is
end_reasoning_token            ``</think>`` kept if ``include_if_reasoning_not_finished`` (true)
include_if_reasoning_not_fin.  true         else the answer is empty
use_system_prompt +            false/none   chat: replace any system message with this one
custom_system_prompt
params_to_add                  none         body params set on every request (deep values ok)
params_to_remove               none         body params removed
params_to_rename               none         body params renamed {old: new}
=============================  ===========  ===================================================

Interceptor names understood: ``caching`` (config ``cache_dir``, ``reuse_cached_responses``),
``request_logging`` (``max_requests``), ``response_logging`` (``max_responses``),
``response_stats``, ``reasoning`` (``start_reasoning_token``, ``end_reasoning_token``,
``include_if_not_finished``), ``system_message`` (``system_message``), ``payload_modifier``
(``params_to_add``, ``params_to_remove``, ``params_to_rename``); ``endpoint`` and
``progress_tracking`` are always on. With an interceptor list, an interceptor not listed is off
(caching and stats included), as in the reference.

The logs are written by :mod:`launcher.harness.requestlog`, the stats by
:mod:`launcher.harness.stats`. Request and response logs never contain headers, so never the
API key.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from launcher.errors import ConfigError

KEY = "target.api_endpoint.adapter_config"

# Keys of the reference's flat config that this harness has no use for (accepted silently).
_IGNORED = frozenset({
    "save_responses", "save_requests", "max_saved_requests", "max_saved_responses",
    "generate_html_report", "html_report_size", "include_json", "mode", "endpoint_type",
    "output_dir", "use_progress_tracking", "progress_tracking_url", "progress_tracking_interval",
    "logging_aggregated_stats_interval", "track_reasoning", "use_nvcf", "use_omni_info",
    "use_raise_client_errors", "discovery", "post_eval_hooks", "interceptors",
})


@attrs.frozen
class AdapterConfig:
    use_caching: bool = True
    caching_dir: str | None = None
    use_request_logging: bool = False
    max_logged_requests: int | None = None
    use_response_logging: bool = False
    max_logged_responses: int | None = None
    log_failed_requests: bool = False
    tracking_requests_stats: bool = True
    process_reasoning_traces: bool = False
    start_reasoning_token: str | None = "<think>"
    end_reasoning_token: str = "</think>"
    include_if_reasoning_not_finished: bool = True
    use_system_prompt: bool = False
    custom_system_prompt: str | None = None
    params_to_add: dict[str, Any] = attrs.field(factory=dict)
    params_to_remove: tuple[str, ...] = ()
    params_to_rename: dict[str, str] = attrs.field(factory=dict)

    @property
    def system_prompt(self) -> str | None:
        return self.custom_system_prompt if self.use_system_prompt else None

    def echo(self) -> dict[str, Any]:
        data = attrs.asdict(self)
        data["params_to_remove"] = list(self.params_to_remove)
        return data


_BOOL = ("use_caching", "use_request_logging", "use_response_logging", "log_failed_requests",
         "tracking_requests_stats", "process_reasoning_traces", "use_reasoning",
         "include_if_reasoning_not_finished", "use_system_prompt")
_OPT_INT = ("max_logged_requests", "max_logged_responses")
_OPT_STR = ("caching_dir", "custom_system_prompt", "start_reasoning_token")


def parse_adapter_config(
    data: Any, source: str | None = None, warn: Callable[[str], None] | None = None
) -> AdapterConfig:
    """Parse the ``adapter_config`` mapping (None or {} gives the defaults)."""

    def err(key: str, message: str) -> ConfigError:
        return ConfigError(message, source=source, key=f"{KEY}.{key}" if key else KEY)

    if data is None:
        return AdapterConfig()
    if not isinstance(data, Mapping):
        raise err("", f"must be a mapping, got {type(data).__name__}")
    interceptors = data.get("interceptors")
    if interceptors:
        flat = _from_interceptors(interceptors, err)
        for key in ("log_failed_requests", "caching_dir"):
            if key in data:
                flat[key] = data[key]
    else:
        flat = dict(data)
    known = set(attrs.fields_dict(AdapterConfig)) | {"use_reasoning"} | _IGNORED
    unknown = sorted(str(k) for k in flat if k not in known)
    if unknown and warn is not None:
        warn(f"warning: {KEY}: ignoring keys this harness does not know: {', '.join(unknown)}")

    kw: dict[str, Any] = {}
    for name in _BOOL:
        if flat.get(name) is not None:
            value = flat[name]
            if not isinstance(value, bool):
                raise err(name, f"must be true or false, got {value!r}")
            kw[name] = value
    if kw.pop("use_reasoning", False):
        kw["process_reasoning_traces"] = True
    for name in _OPT_INT:
        value = flat.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise err(name, f"must be an integer >= 0, got {value!r}")
            kw[name] = value
    for name in _OPT_STR:
        if name in flat:
            value = flat[name]
            if value is not None and not isinstance(value, str):
                raise err(name, f"must be a string, got {value!r}")
            kw[name] = value
    if "end_reasoning_token" in flat:
        value = flat["end_reasoning_token"]
        if not isinstance(value, str) or not value:
            raise err("end_reasoning_token", f"must be a non-empty string, got {value!r}")
        kw["end_reasoning_token"] = value
    add = flat.get("params_to_add")
    if add is not None:
        if not isinstance(add, Mapping):
            raise err("params_to_add", f"must be a mapping, got {add!r}")
        kw["params_to_add"] = dict(add)
    remove = flat.get("params_to_remove")
    if remove is not None:
        if not isinstance(remove, list | tuple) or not all(isinstance(r, str) for r in remove):
            raise err("params_to_remove", f"must be a list of names, got {remove!r}")
        kw["params_to_remove"] = tuple(remove)
    rename = flat.get("params_to_rename")
    if rename is not None:
        if not isinstance(rename, Mapping) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in rename.items()
        ):
            raise err("params_to_rename", f"must map names to names, got {rename!r}")
        kw["params_to_rename"] = dict(rename)
    config = AdapterConfig(**kw)
    if config.use_system_prompt and not config.custom_system_prompt:
        raise err("custom_system_prompt", "is required when use_system_prompt is true")
    return config


def _from_interceptors(items: Any, err: Callable[[str, str], ConfigError]) -> dict[str, Any]:
    if not isinstance(items, list):
        raise err("interceptors", "must be a list")
    flat: dict[str, Any] = {"use_caching": False, "tracking_requests_stats": False}
    for i, item in enumerate(items):
        if isinstance(item, str):
            item = {"name": item}
        if not isinstance(item, Mapping) or not isinstance(item.get("name"), str):
            raise err(f"interceptors[{i}]", "must be a name or a mapping with a name")
        if item.get("enabled", True) is False:
            continue
        cfg = item.get("config") or {}
        if not isinstance(cfg, Mapping):
            raise err(f"interceptors[{i}].config", "must be a mapping")
        name = item["name"]
        if name == "caching":
            flat["use_caching"] = cfg.get("reuse_cached_responses", True)
            if cfg.get("cache_dir") is not None:
                flat["caching_dir"] = cfg["cache_dir"]
        elif name == "request_logging":
            flat["use_request_logging"] = True
            flat["max_logged_requests"] = cfg.get("max_requests")
        elif name == "response_logging":
            flat["use_response_logging"] = True
            flat["max_logged_responses"] = cfg.get("max_responses")
        elif name == "response_stats":
            flat["tracking_requests_stats"] = True
        elif name == "reasoning":
            flat["process_reasoning_traces"] = True
            for src, dst in (("start_reasoning_token", "start_reasoning_token"),
                             ("end_reasoning_token", "end_reasoning_token"),
                             ("include_if_not_finished", "include_if_reasoning_not_finished")):
                if src in cfg:
                    flat[dst] = cfg[src]
        elif name == "system_message":
            flat["use_system_prompt"] = True
            flat["custom_system_prompt"] = cfg.get("system_message")
        elif name == "payload_modifier":
            for key in ("params_to_add", "params_to_remove", "params_to_rename"):
                if key in cfg:
                    flat[key] = cfg[key]
        elif name not in ("endpoint", "progress_tracking"):  # those two are always on
            flat[f"interceptors.{name}"] = True  # reported as an unknown key
    return flat


# -- request side ---------------------------------------------------------------------------


def apply_system_prompt(messages: Sequence[Mapping[str, Any]], prompt: str | None) -> list[Any]:
    """Replace any system message by ``prompt`` (first); unchanged when ``prompt`` is None."""
    if prompt is None:
        return list(messages)
    rest = [m for m in messages if m.get("role") != "system"]
    return [{"role": "system", "content": prompt}, *rest]


def modify_payload(body: dict[str, Any], config: AdapterConfig) -> dict[str, Any]:
    """params_to_remove, then params_to_rename, then params_to_add (as the reference)."""
    for name in config.params_to_remove:
        body.pop(name, None)
    for old, new in config.params_to_rename.items():
        if old in body:
            body[new] = body.pop(old)
    body.update(config.params_to_add)
    return body


# -- response side --------------------------------------------------------------------------


def strip_reasoning(
    text: str,
    end_token: str = "</think>",
    start_token: str | None = "<think>",
    include_if_not_finished: bool = True,
) -> str:
    """The answer without its reasoning: the text after the last ``end_token``.

    No end token: unchanged, unless reasoning started (``start_token`` present) and
    ``include_if_not_finished`` is false, which gives "".
    """
    return split_reasoning(text, end_token, start_token, include_if_not_finished)[0]


def split_reasoning(
    text: str,
    end_token: str = "</think>",
    start_token: str | None = "<think>",
    include_if_not_finished: bool = True,
) -> tuple[str, str | None]:
    """:func:`strip_reasoning`'s answer and which case it was (a key of
    ``RequestStats.reasoning``): "stripped" (an end token), "unfinished" (a start token but no
    end token) or None (no reasoning)."""
    at = text.rfind(end_token)
    if at >= 0:
        return text[at + len(end_token):].strip(), "stripped"
    if start_token and start_token in text:
        return (text if include_if_not_finished else ""), "unfinished"
    return text, None
