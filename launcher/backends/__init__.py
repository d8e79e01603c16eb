"""Where workloads run. ``base.Backend`` is the seam; ``docker.DockerBackend`` (the local
Docker engine, the only module importing the Docker SDK) is the first implementation,
``slurm.SlurmBackend`` (batch jobs on a Slurm cluster, through ``slurm_cli``) the second."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from launcher.backends.base import Backend
    from launcher.config import Execution


def connect(execution: Execution | None = None) -> Backend:
    """The backend of ``execution.type`` (the local Docker engine when None or local),
    imported only when needed."""
    if execution is not None and execution.type == "slurm":
        from launcher import slurm_settings
        from launcher.backends.slurm import SlurmBackend

        settings = slurm_settings.settings(execution, "execution")
        return SlurmBackend(settings, execution.output_dir)
    from launcher.backends.docker import DockerBackend

    return DockerBackend()


def recorded_execution(config: Mapping[str, Any] | None) -> Execution | None:
    """The typed ``execution`` block of a recorded (resolved) config, or None."""
    block = (config or {}).get("execution")
    if not isinstance(block, Mapping) or block.get("type", "local") == "local":
        return None
    from launcher.config import Execution, _converter

    return _converter.structure(dict(block), Execution)
