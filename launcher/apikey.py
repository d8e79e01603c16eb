"""``target.api_endpoint.api_key_name`` in a config: the NAME of the host variable that holds
the API key, never the key. The older spelling ``api_key`` is renamed (with a note); a value
that is not a variable name, or that looks like a key pasted in, is refused without echoing it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from launcher.errors import ConfigError

OLD_API_KEY = "target.api_endpoint.api_key"
API_KEY_NAME = "target.api_endpoint.api_key_name"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SECRET_PREFIXES = ("sk-", "nvapi-", "hf_", "ghp_", "gho_", "github_pat_", "gsk_", "xoxb-",
                    "AIza")


def endpoint_of(data: Mapping[str, Any]) -> dict[str, Any] | None:
    target = data.get("target")
    endpoint = target.get("api_endpoint") if isinstance(target, Mapping) else None
    return endpoint if isinstance(endpoint, dict) else None


def rename_old_api_key(data: dict[str, Any], source: str,
                       note: Callable[[str], None]) -> bool:
    """``target.api_endpoint.api_key`` in a file is the older spelling of ``api_key_name``."""
    endpoint = endpoint_of(data)
    if endpoint is None or "api_key" not in endpoint:
        return False
    if endpoint.get("api_key_name") is not None:
        raise ConfigError("both api_key (the older spelling) and api_key_name are set: keep "
                          "only api_key_name: NAME (the host variable holding the key)",
                          source=source, key=OLD_API_KEY)
    endpoint["api_key_name"] = endpoint.pop("api_key")
    note(f"{OLD_API_KEY} is the older spelling of {API_KEY_NAME} (the NAME of the host "
         f"environment variable holding the key); write api_key_name instead")
    return True


def looks_like_secret(value: str) -> bool:
    """A key pasted where a variable NAME belongs: a known key prefix, or long and mixed."""
    if len(value) < 20:
        return False
    mixed = (any(c.islower() for c in value) and any(c.isupper() for c in value)
             and any(c.isdigit() for c in value))
    return value.startswith(_SECRET_PREFIXES) or mixed


def check_api_key_name(value: Any, *, source: str, key: str = API_KEY_NAME) -> None:
    """``api_key_name`` holds a variable NAME: it reaches generated shell scripts, so only
    ``[A-Za-z_][A-Za-z0-9_]*`` passes, and a value that may be the key itself is never shown."""
    if value is None:
        return
    fix = (f"export the key as a host variable (export NGC_API_KEY=...) and pass its name: "
           f"-o {API_KEY_NAME}=NGC_API_KEY")
    if not isinstance(value, str) or not _ENV_NAME.fullmatch(value):
        raise ConfigError("expected the NAME of the host environment variable that holds the "
                          "API key; this value (not shown, it may be the key itself) is not a "
                          f"variable name: {fix}", source=source, key=key)
    if looks_like_secret(value):
        raise ConfigError("this looks like an API key itself (not shown), but the setting "
                          f"holds the NAME of the host environment variable with the key: {fix}",
                          source=source, key=key)
