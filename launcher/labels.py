"""Labels on everything the launcher creates. Pure.

Every container (job, probe, supervisor) carries ``eval-launcher.invocation``; jobs also
``eval-launcher.job`` and ``eval-launcher.task``. ``EVAL_LAUNCHER_LABELS`` adds more to all
of them (comma-separated ``key=value``), e.g. to tell one user's or one test's resources apart
from others on a shared engine.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from launcher.errors import ConfigError

LABELS_ENV = "EVAL_LAUNCHER_LABELS"
LABEL_PREFIX = "eval-launcher"
LABEL_INVOCATION = f"{LABEL_PREFIX}.invocation"
LABEL_JOB = f"{LABEL_PREFIX}.job"
LABEL_TASK = f"{LABEL_PREFIX}.task"
LABEL_ROLE = f"{LABEL_PREFIX}.role"
ROLE_SUPERVISOR = "supervisor"
ROLE_PROBE = "probe"
ROLE_SERVER = "server"  # the model server of a deployment
ROLE_WAITER = "waiter"  # polls the server's health from its network
RESERVED = (LABEL_INVOCATION, LABEL_JOB, LABEL_TASK, LABEL_ROLE)
_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


def extra_labels(environ: Mapping[str, str]) -> dict[str, str]:
    """The labels from ``EVAL_LAUNCHER_LABELS``; ConfigError (exit 2) on a bad shape."""
    text = environ.get(LABELS_ENV, "")
    labels: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq or not _KEY.fullmatch(key) or "," in value:
            raise ConfigError(f"{LABELS_ENV}: expected comma-separated key=value labels, got "
                              f"'{item}'")
        if key in RESERVED:
            raise ConfigError(f"{LABELS_ENV}: '{key}' is set by the launcher itself; choose "
                              "another key")
        labels[key] = value.strip()
    return labels
