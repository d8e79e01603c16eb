"""The libraries under config loading: Hydra's compose API for the ``defaults:`` list and
OmegaConf for ``${...}`` interpolation, as the reference launcher uses them.

Both are imported lazily, inside these functions, so ``launcher --help`` never pays for them.
Their exceptions become one ``ConfigError`` line naming the file and the key path.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Mapping
from contextvars import ContextVar
from importlib import resources
from typing import Any

from launcher import yamlfile
from launcher.errors import ConfigError

# Groups offered by the launcher itself (folders of launcher/data/configs).
PACKAGED_GROUPS = ("deployment", "execution")
# A config without a ``defaults:`` list gets these (the reference's usual list).
IMPLICIT_GROUPS = {"execution": "local", "deployment": "none"}
OMEGACONF_RESOLVERS = ("oc.create", "oc.decode", "oc.deprecated", "oc.dict.keys",
                       "oc.dict.values", "oc.env", "oc.select")

_environ: ContextVar[Mapping[str, str] | None] = ContextVar("launcher_environ", default=None)
_registered = False
_NO_DEFAULT = object()


def packaged_dir() -> str:
    return str(resources.files("launcher").joinpath("data/configs"))


# --------------------------------------------------------------------------- Hydra


def compose(path: str | None, group_overrides: list[str], *, has_defaults: bool,
            source: str) -> dict[str, Any]:
    """The file composed with its ``defaults:`` list (sibling files resolve against the
    file's folder, then the packaged groups), as a plain mapping, not yet interpolated."""
    import yaml
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra
    from hydra.errors import HydraException
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    packaged = packaged_dir()
    if path is None:
        folder, name = packaged, "base"
    else:
        if not path.endswith(".yaml"):
            stem = os.path.splitext(os.path.basename(path))[0]
            raise ConfigError(f"expected a .yaml file (defaults lists find configs by that "
                              f"suffix): rename it to {stem}.yaml", source=source)
        folder = os.path.dirname(os.path.abspath(path))
        name = os.path.basename(path).removesuffix(".yaml")
        _check_local_files(path, folder)
    overrides = list(group_overrides)
    if not has_defaults:  # Hydra would put appended groups after _self_: we re-merge below
        named = {o.lstrip("+").partition("=")[0]: o for o in overrides}
        overrides = [f"+{g}={named.pop(g).partition('=')[2]}" if g in named else f"+{g}={o}"
                     for g, o in IMPLICIT_GROUPS.items()] + list(named.values())
    overrides.append(f"hydra.searchpath=['file://{_quote(packaged)}']")
    if GlobalHydra.instance().is_initialized():
        GlobalHydra.instance().clear()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with initialize_config_dir(config_dir=folder, version_base=None):
                cfg = hydra_compose(config_name=name, overrides=overrides)
            data: Any = OmegaConf.to_container(cfg, resolve=False)
            if not has_defaults and path is not None:  # the file wins over its groups
                from launcher.config import deep_merge

                own: Any = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
                if isinstance(own, dict):
                    own.pop("hydra", None)  # Hydra's own settings, as compose drops them
                    data = deep_merge(data, own)
    except HydraException as exc:
        cause = exc.__cause__
        if isinstance(cause, OmegaConfBaseException) and not str(exc).strip():
            raise _omegaconf_error(cause, {}, source) from None  # e.g. a bad ${...}
        raise _hydra_error(str(exc), folder, source) from None
    except OmegaConfBaseException as exc:
        raise ConfigError(_first_line(str(exc)), source=source) from None
    except yaml.MarkedYAMLError as exc:  # a malformed sibling file
        mark = exc.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "somewhere"
        file = mark.name if mark and os.path.isfile(mark.name) else source
        raise ConfigError(f"malformed YAML at {where}: {exc.problem}", source=file) from None
    except (OSError, ValueError, TypeError) as exc:  # e.g. a malformed defaults entry
        raise _hydra_error(str(exc), folder, source) from None
    assert isinstance(data, dict)
    return {str(k): v for k, v in data.items()}


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace("'", "\\'")


def _first_line(message: str) -> str:
    """The first non-empty line; one ending in ':' is continued by the next (Hydra's
    "X raised while composing config:" puts the reason there)."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    if not lines:
        return "cannot compose the config"
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[1]}"
    return lines[0]


def _hydra_error(message: str, folder: str, source: str) -> ConfigError:
    first = _first_line(message)
    where = source
    match = re.match(r"In '?([^':]+)'?: (.*)", first)
    if match:
        name, first = match.groups()
        where = _config_file(name, folder) or source
    if "Cannot merge DictConfig with ListConfig" in message:
        return ConfigError("expected a mapping at the top level, got a list", source=where)
    entries = _defaults_of(where)
    found = re.match(r"Could not find '([^']+)/([^']+)'", first)
    if found:
        group, option = found.groups()
        index = _entry_index(entries, lambda e: isinstance(e, dict) and any(
            str(k).split()[-1].split("@")[0] == group for k in e))
        options = re.findall(r"^\t(\S+)$", message.split("Config search path")[0], re.M)
        if group == "execution" and options and "slurm/default" not in options:
            options.append("slurm/default")  # in a subfolder, which Hydra does not list
        if options:
            return ConfigError(f"unknown {group} '{option}' (available: {', '.join(options)})",
                               source=where, key=f"defaults[{index}].{group}")
        known = sorted({*PACKAGED_GROUPS, *_local_groups(folder)})
        return ConfigError(f"unknown defaults group '{group}' (known: {', '.join(known)})",
                           source=where, key=f"defaults[{index}]")
    loaded = re.match(r"Could not load '([^']+)'", first)
    if loaded:
        name = loaded.group(1)
        index = _entry_index(entries, lambda e: e == name)
        return ConfigError(f"no config '{name}': an entry without a group names a file beside "
                           f"the config, {os.path.join(folder, name)}.yaml; create it or fix the "
                           "entry (groups are written 'group: option', e.g. execution: local)",
                           source=where, key=f"defaults[{index}]")
    if first.startswith("Cannot find primary config"):
        return ConfigError("file not found; check the path given to --config", source=where)
    return ConfigError(first, source=where, key="defaults" if "efault" in first else None)


def _config_file(name: str, folder: str) -> str | None:
    for base in (folder, packaged_dir()):
        candidate = os.path.join(base, f"{name}.yaml")
        if os.path.isfile(candidate):
            return candidate
    return None


def _defaults_of(path: str) -> list[Any]:
    import yaml

    try:
        data = yamlfile.read(path)
    except (OSError, ValueError, yaml.YAMLError, ConfigError):
        return []
    return _entries(data)


def _entries(data: Any) -> list[Any]:
    entries = data.get("defaults") if isinstance(data, dict) else None
    return entries if isinstance(entries, list) else []


def _check_local_files(path: str, folder: str) -> None:
    """Every file of the config's folder its defaults list pulls in (recursively) passes
    the checks of :func:`launcher.yamlfile.load` before Hydra reads it; each is read once."""
    import yaml

    seen = {os.path.abspath(path)}
    todo = [_defaults_of(path)]
    while todo:
        for entry in todo.pop():
            if isinstance(entry, str) and entry != "_self_":
                names = [entry]
            elif isinstance(entry, dict):
                names = [f"{str(k).split()[-1].split('@')[0]}/{v}" for k, v in entry.items()
                         if isinstance(v, str)]
            else:
                continue
            for name in names:
                candidate = os.path.abspath(os.path.join(folder, f"{name}.yaml"))
                if candidate in seen or not os.path.isfile(candidate):
                    continue
                seen.add(candidate)
                try:
                    data = yamlfile.read(candidate)
                except (OSError, UnicodeDecodeError, ValueError, yaml.YAMLError):
                    continue  # Hydra reports these in its own words
                todo.append(_entries(data))


def _entry_index(entries: list[Any], match: Any) -> int:
    return next((i for i, entry in enumerate(entries) if match(entry)), 0)


def _local_groups(folder: str) -> list[str]:
    try:
        return [n for n in os.listdir(folder) if os.path.isdir(os.path.join(folder, n))]
    except OSError:
        return []


# --------------------------------------------------------------------------- OmegaConf


class _EnvUnset(LookupError):
    pass


def _env(name: str, default: Any = _NO_DEFAULT) -> Any:
    """``${oc.env:NAME[,default]}`` against the launcher's host environment (os.environ plus
    the env files), which stays in memory; OmegaConf's own reads os.environ only."""
    environ = _environ.get()
    environ = os.environ if environ is None else environ
    if name in environ:
        return environ[name]
    if default is not _NO_DEFAULT:
        return None if default is None else str(default)
    raise _EnvUnset(name)


def _select_not_null(*args: Any, _root_: Any) -> Any:
    """``${select_not_null:a.key,/fallback}`` (the reference's): the first argument that is a
    key with a value, or that is not a key at all (a literal)."""
    from omegaconf import OmegaConf

    for arg in args:
        if not isinstance(arg, str) or arg.startswith("/") or "." not in arg:
            return arg
        value = OmegaConf.select(_root_, arg, default=None)
        if value is not None:
            return value
    return None


def _register() -> None:
    global _registered
    if not _registered:
        from omegaconf import OmegaConf

        OmegaConf.register_new_resolver("oc.env", _env, replace=True, use_cache=False)
        OmegaConf.register_new_resolver("select_not_null", _select_not_null, replace=True)
        _registered = True


def resolve(data: dict[str, Any], environ: Mapping[str, str] | None, *,
            source: str) -> dict[str, Any]:
    """Every ``${...}`` resolved (OmegaConf): a value that is one reference keeps the
    referenced type; ``\\${`` is a literal ``${``."""
    from omegaconf import OmegaConf
    from omegaconf.errors import OmegaConfBaseException

    _register()
    token = _environ.set(environ)
    try:
        out = OmegaConf.to_container(OmegaConf.create(data), resolve=True)
    except OmegaConfBaseException as exc:
        raise _omegaconf_error(exc, data, source) from None
    finally:
        _environ.reset(token)
    assert isinstance(out, dict)
    return {str(k): v for k, v in out.items()}


def _omegaconf_error(exc: Exception, data: dict[str, Any], source: str) -> ConfigError:
    from omegaconf.errors import (
        GrammarParseError,
        InterpolationKeyError,
        UnsupportedInterpolationType,
    )

    key = _key_of(exc)
    message = _first_line(str(exc))
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, _EnvUnset):
        cause = cause.__cause__ or cause.__context__
    if isinstance(cause, _EnvUnset):
        name = cause.args[0]
        return ConfigError(f"${{oc.env:{name}}} needs host variable {name}, which is not set: "
                           f"export it or give a default, ${{oc.env:{name},value}}",
                           source=source, key=key)
    if isinstance(exc, InterpolationKeyError):
        match = re.search(r"Interpolation key '([^']*)' not found", message)
        ref = match.group(1) if match else "?"
        root = re.split(r"[.\[]", ref, maxsplit=1)[0]
        hint = ("" if root in data else
                f" (a helper block at the top level works too: {root}: {{...}})")
        return ConfigError(f"'${{{ref}}}' refers to a key that does not exist; check its "
                           f"spelling{hint}", source=source, key=key)
    if isinstance(exc, UnsupportedInterpolationType):
        match = re.search(r"Unsupported interpolation type (\S+)", message)
        name = match.group(1) if match else "?"
        return ConfigError(f"unsupported resolver '{name}' (supported: "
                           f"{', '.join(OMEGACONF_RESOLVERS)}); a literal ${{ is written \\${{",
                           source=source, key=key)
    if "Recursive interpolation" in message:
        return ConfigError(f"circular reference: {_chain(data, key)}", source=source, key=key)
    if isinstance(exc, GrammarParseError):
        return ConfigError(f"cannot parse the ${{...}} in this value ({message}); a literal ${{ "
                           "is written \\${", source=source, key=key)
    return ConfigError(message, source=source, key=key)


def _key_of(exc: Exception) -> str | None:
    """The failing key as the user wrote it (``mounts.evaluation['./x']``), from the node
    chain; OmegaConf's own ``full_key`` joins keys with dots (``mounts.evaluation../x``)."""
    from launcher import keypaths

    node: Any = getattr(exc, "parent_node", None)
    key = getattr(exc, "key", None)
    if node is None or key is None:
        return getattr(exc, "full_key", None) or None
    parts = [key]
    while node is not None and node._get_parent() is not None:
        parts.insert(0, node._key())
        node = node._get_parent()
    return keypaths.render(parts) or None


_WHOLE_REF = re.compile(r"\$\{\s*([^${}:\s]+)\s*\}")


def _chain(data: dict[str, Any], key: str | None) -> str:
    """a -> b -> a: the references followed from ``key`` until one repeats (best effort)."""
    if not key:
        return "a value refers back to itself"
    chain = [key]
    for _ in range(50):
        value = _get(data, chain[-1])
        match = _WHOLE_REF.search(value) if isinstance(value, str) else None
        if not match:
            break
        chain.append(match.group(1))
        if chain[-1] in chain[:-1]:
            break
    return " -> ".join(chain)


def _get(data: Any, dotted: str) -> Any:
    node = data
    for part in re.split(r"\.|\[(\d+)\]", dotted):
        if not part:
            continue
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node


def referenced_roots(data: Any) -> set[str]:
    """Top-level names that some ``${...}`` refers to (``${common.x}`` → common), including
    inside resolver arguments (``${oc.select:common.x,1}``)."""
    found: set[str] = set()

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)
        elif isinstance(node, str) and "${" in node:
            found.update(re.findall(r"(?:\$\{|[:,])\s*([A-Za-z_][\w-]*)(?=[.\[}\s,])", node))

    walk(data)
    return found
