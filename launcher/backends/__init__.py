"""Where workloads run. ``base.Backend`` is the seam; ``docker.DockerBackend`` (the local
Docker engine, the only module importing the Docker SDK) is the first implementation."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from launcher.backends.base import Backend


def connect() -> Backend:
    """The backend for this launcher: the local Docker engine (imported only when needed)."""
    from launcher.backends.docker import DockerBackend

    return DockerBackend()
