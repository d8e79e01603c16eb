"""Planning the model server of a deployment: the typed ``deployment:`` block becomes one
``plan.Server`` (image, command words, env var NAMES, mounts as the launcher sees them,
labels, network, GPUs, health path). Pure data, no engine.

The command is the reference's ``deployment.command`` string: a plain command line is split
into words (its first word becomes the entrypoint, replacing the image's own, as the
reference's ``--entrypoint ''`` does); a command with shell syntax (several lines, ``&&``,
``$VAR``, pipes, ...) runs under ``/bin/sh -c``.
"""

from __future__ import annotations

import os
import re
import shlex

from launcher import envvars
from launcher.config import Config
from launcher.deployment import CACHE_MOUNT, CHECKPOINT_MOUNT, SERVER_HOST
from launcher.errors import ConfigError
from launcher.labels import LABEL_INVOCATION, LABEL_ROLE, ROLE_SERVER
from launcher.plan import Mount, Server, _evaluation_mounts

_SHELL_SYNTAX = re.compile(r"[\n;&|<>`$()]")
SERVER_LOG = "server.log"


def command_words(command: str) -> tuple[str, tuple[str, ...]]:
    """(entrypoint, arguments) for a ``deployment.command`` string."""
    text = command.strip()
    if _SHELL_SYNTAX.search(text):
        return "/bin/sh", ("-c", text)
    words = shlex.split(text)
    return words[0], tuple(words[1:])


def _path_mount(path: str, target: str, read_only: bool, key: str, source: str) -> Mount:
    local = os.path.abspath(os.path.expanduser(path))
    if not os.path.exists(local):
        raise ConfigError(f"'{local}' does not exist (as the launcher sees it; inside the "
                          "launcher container, mount it with -v)", source=source, key=key)
    return Mount(local, target, read_only=read_only)


def build(config: Config, invocation_id: str, network: str, source: str) -> Server:
    d = config.deployment
    assert d.image and d.command  # deployment.check
    entrypoint, command = command_words(d.command)
    mounts = []
    if d.checkpoint_path:
        mounts.append(_path_mount(d.checkpoint_path, CHECKPOINT_MOUNT, True,
                                  "deployment.checkpoint_path", source))
    if d.cache_path:
        mounts.append(_path_mount(d.cache_path, CACHE_MOUNT, False, "deployment.cache_path",
                                  source))
    mounts.extend(_evaluation_mounts(config, source, block="deployment"))
    env = envvars.merge([("deployment.env_vars", d.env_vars)], source=source)
    return Server(
        type=d.type, image=d.image, entrypoint=entrypoint, command=command, env=tuple(env),
        mounts=tuple(mounts), labels={LABEL_INVOCATION: invocation_id, LABEL_ROLE: ROLE_SERVER},
        container_name=f"eval-launcher-{invocation_id}-server", network=network,
        alias=SERVER_HOST, port=d.port, health_path=d.endpoints.health,
        gpus=d.gpu_request(), shm_size=d.shm_size,
        readiness_timeout=config.execution.readiness_timeout(deployed=True))
