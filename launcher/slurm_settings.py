"""``execution.type: slurm``: the reference's Slurm keys, checked once into ``SlurmSettings``.
Pure; every problem is one ``ConfigError`` at the key as written.

Walltimes are Slurm's ``[D-]HH:MM:SS`` (or minutes); an unquoted ``01:00:00`` that YAML 1.1
read as a number of seconds is taken back as that duration.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

import attrs

from launcher.errors import ConfigError

if TYPE_CHECKING:
    from launcher.config import Execution

RUNTIMES = ("pyxis", "docker")
_DURATION = re.compile(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?")
_FLAG = re.compile(r"[a-z][a-z0-9-]*")
# Keys of the Slurm executor; with execution.type: local each one is refused (see check_local).
SLURM_KEYS = ("hostname", "username", "account", "partition", "gres", "walltime", "max_walltime",
              "num_nodes", "ntasks_per_node", "sbatch_extra_flags", "container_runtime",
              "gpus_per_node", "sbatch_comment", "subproject", "cpu_partition", "num_instances",
              "proxy", "eval_ray_cluster", "deployment")


@attrs.frozen
class SlurmSettings:
    hostname: str | None = None
    username: str | None = None
    account: str | None = None
    partition: str | None = None
    gres: str | None = None
    walltime: str = "01:00:00"
    max_walltime: str | None = None
    num_nodes: int = 1
    ntasks_per_node: int = 1
    extra_flags: tuple[tuple[str, str | None], ...] = ()  # (flag, value or None for a switch)
    runtime: str = "pyxis"
    mount_home: bool = True
    gpus_per_node: int | None = None  # --gpus-per-node (then no --gres)
    comment: str | None = None  # sbatch_comment: before the labels in --comment
    subproject: str | None = None
    server_tasks: int = 1  # the deployment's srun --ntasks (execution.deployment.n_tasks)

    @property
    def remote(self) -> bool:
        return bool(self.hostname)

    @property
    def destination(self) -> str:
        """``user@host`` (or ``host``) for ssh."""
        host = self.hostname or ""
        return f"{self.username}@{host}" if self.username else host


def seconds(text: str) -> int:
    """``[D-]HH:MM:SS``, ``MM:SS``, ``D-HH`` or minutes, as Slurm reads ``--time``, in seconds."""
    match = _DURATION.fullmatch(text.strip())
    if not match:
        raise ValueError(text)
    days, a, b, c = match.groups()
    d = int(days or 0)
    if c is not None:
        h, m, s = int(a), int(b), int(c)
    elif b is not None:
        h, m, s = (int(a), int(b), 0) if days else (0, int(a), int(b))
    else:
        h, m, s = (int(a), 0, 0) if days else (0, int(a), 0)
    return ((d * 24 + h) * 60 + m) * 60 + s


def walltime_seconds(value: Any) -> int:
    """``execution.walltime`` in seconds, read as :func:`settings` reads it (one hour when it
    is not a Slurm time: the settings check reports that at its key)."""
    try:
        return seconds(_duration(value, "walltime", "", nullable=False) or "")
    except (ConfigError, ValueError):
        return 3600


def hms(total: int) -> str:
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"


def _duration(value: Any, key: str, source: str, nullable: bool) -> str | None:
    if value is None and nullable:
        return None
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return hms(value)  # YAML 1.1 read 01:00:00 as 3600
    if isinstance(value, str):
        try:
            if seconds(value) > 0:
                return value.strip()
        except ValueError:
            pass
    null = " or null (no limit)" if nullable else ""
    raise ConfigError(f"expected a Slurm time such as '01:00:00' (HH:MM:SS) or '2-00:00:00'"
                      f"{null}, got {value!r}", source=source, key=f"execution.{key}")


def _flags(value: dict[str, Any], source: str) -> tuple[tuple[str, str | None], ...]:
    out: list[tuple[str, str | None]] = []
    for flag, item in value.items():
        key = f"execution.sbatch_extra_flags.{flag}"
        if not _FLAG.fullmatch(str(flag)):
            raise ConfigError("expected an sbatch long option without its dashes (e.g. "
                              "constraint, exclusive)", source=source, key=key)
        if item is True:
            out.append((str(flag), None))
        elif item is False or item is None:
            continue
        elif isinstance(item, str | int | float):
            out.append((str(flag), str(item)))
        else:
            raise ConfigError(f"expected a string, a number, true or false, got {item!r}",
                              source=source, key=key)
    return tuple(out)


def _not_here(execution: Execution, source: str) -> None:
    """The reference's multi-instance and multi-node features: refused at their key."""
    if execution.num_instances != 1:
        raise ConfigError(f"one server instance per job only (several behind a proxy are not "
                          f"built), got {execution.num_instances}: set execution.num_instances=1",
                          source=source, key="execution.num_instances")
    if execution.eval_ray_cluster:
        raise ConfigError("a Ray cluster across the job's nodes is not built: set "
                          "execution.eval_ray_cluster=false", source=source,
                          key="execution.eval_ray_cluster")
    if execution.mounts.auxiliary:
        raise ConfigError("auxiliary deployments (a judge served in the job) are not built: "
                          "serve it yourself and set the task's judge url; remove the key",
                          source=source, key="execution.mounts.auxiliary")


def _comment(text: str | None, source: str) -> None:
    """The launcher finds its jobs by the labels after the user's comment in ``--comment``
    (``squeue -o '%i|%T|%k|%o'``): no ``|``, no line break, none of its own labels."""
    if text and ("|" in text or "\n" in text or "\r" in text or "eval-launcher." in text):
        raise ConfigError("a job comment without '|', line breaks or 'eval-launcher.' (the "
                          "launcher's labels follow it in --comment)", source=source,
                          key="execution.sbatch_comment")


def settings(execution: Execution, source: str) -> SlurmSettings:
    for key in ("num_nodes", "ntasks_per_node", "gpus_per_node"):
        value = getattr(execution, key)
        if value is not None and value < 1:
            raise ConfigError(f"expected a positive integer, got {value}",
                              source=source, key=f"execution.{key}")
    n_tasks = execution.deployment.n_tasks
    if n_tasks is not None and n_tasks < 1:
        raise ConfigError(f"expected a positive integer, got {n_tasks}", source=source,
                          key="execution.deployment.n_tasks")
    if n_tasks is not None and n_tasks < execution.num_nodes:
        raise ConfigError(f"expected at least one task per node (num_nodes is "
                          f"{execution.num_nodes}), got {n_tasks}", source=source,
                          key="execution.deployment.n_tasks")
    _comment(execution.sbatch_comment, source)
    _not_here(execution, source)
    if execution.container_runtime not in RUNTIMES:
        raise ConfigError(f"expected 'pyxis' (srun --container-image) or 'docker' (docker run "
                          f"on the node), got '{execution.container_runtime}'", source=source,
                          key="execution.container_runtime")
    if not execution.output_dir.startswith("/"):
        raise ConfigError(f"expected an absolute path the cluster's nodes share, got "
                          f"'{execution.output_dir}'", source=source, key="execution.output_dir")
    return SlurmSettings(
        hostname=execution.hostname or None, username=execution.username or None,
        account=execution.account or None, partition=execution.partition or None,
        gres=execution.gres or None,
        walltime=_duration(execution.walltime, "walltime", source, nullable=False) or "",
        max_walltime=_duration(execution.max_walltime, "max_walltime", source, nullable=True),
        num_nodes=execution.num_nodes, ntasks_per_node=execution.ntasks_per_node,
        extra_flags=_flags(execution.sbatch_extra_flags, source),
        runtime=execution.container_runtime, mount_home=execution.mounts.mount_home,
        gpus_per_node=execution.gpus_per_node, comment=execution.sbatch_comment or None,
        subproject=execution.subproject or None,
        server_tasks=n_tasks if n_tasks is not None else execution.num_nodes)


def check_local(execution: Execution, source: str) -> None:
    """A Slurm key under ``execution.type: local`` is a mistake: say which executor has it."""
    from launcher.config import Execution, Mounts

    default = Execution()
    for key in SLURM_KEYS:
        if getattr(execution, key) != getattr(default, key):
            where = "deployment.n_tasks" if key == "deployment" else key
            raise ConfigError("is a key of the Slurm executor: set execution.type: slurm (or "
                              "defaults: [{execution: slurm/default}]), or remove the key",
                              source=source, key=f"execution.{where}")
    if execution.mounts.auxiliary:
        raise ConfigError("is a key of the Slurm executor: set execution.type: slurm, or "
                          "remove the key", source=source, key="execution.mounts.auxiliary")
    if execution.mounts.mount_home != Mounts().mount_home:
        raise ConfigError("is a key of the Slurm executor (pyxis): set execution.type: slurm, "
                          "or remove the key", source=source, key="execution.mounts.mount_home")
