"""The one description of a container the launcher starts: ``ContainerSpec``. Pure data.

A planned Job (launcher-side paths) is resolved ONCE into a spec with HOST paths, labels and
user; the engine backend starts exactly that spec and the script renderer writes exactly that
spec as ``docker run`` words, so ``run.sh`` is the command the backend ran. Env vars are
recorded by NAME (``EnvVar``); their values are handed to the backend in memory only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence

import attrs

from launcher.envvars import EnvVar
from launcher.gpus import GpuRequest, parse_gpus
from launcher.hostpaths import HostSource
from launcher.labels import (
    LABEL_INVOCATION,
    LABEL_ROLE,
    ROLE_PROBE,
    ROLE_SUPERVISOR,
    ROLE_WAITER,
)
from launcher.plan import Job, Mount, Server

HOME_ENV = EnvVar("HOME", literal="/tmp")  # evaluation containers run as an arbitrary uid


@attrs.frozen
class MountSpec:
    """One mount: where it appears in the container, what the HOST engine mounts there."""

    target: str
    source: HostSource
    read_only: bool = False


@attrs.frozen
class ContainerSpec:
    image: str
    command: tuple[str, ...] = ()
    entrypoint: str | None = None
    name: str | None = None
    env: tuple[EnvVar, ...] = ()  # names (and non-secret literals), never host values
    mounts: tuple[MountSpec, ...] = ()
    labels: dict[str, str] = attrs.field(factory=dict)
    user: str | None = None
    network: str | None = None
    aliases: tuple[str, ...] = ()  # its names on ``network`` (the model server's)
    add_hosts: tuple[tuple[str, str], ...] = ()
    shm_size: str | None = None
    mem_limit: str | None = None
    cpus: float | None = None
    ipc_mode: str | None = None
    gpus: GpuRequest | None = None  # --gpus: a GPU device request
    devices: tuple[str, ...] = ()  # --device: HOST:CONTAINER:PERMS or a CDI name
    runtime: str | None = None  # --runtime (e.g. nvidia)
    init: bool = True
    auto_remove: bool = False  # the engine removes it when it exits (the supervisor)
    env_on_stdin: bool = False  # host values as one JSON line on stdin, not in its Env

    def environment(self, values: Mapping[str, str]) -> dict[str, str]:
        """What the engine puts in the container's Env: all of ``values``' variables, or
        with ``env_on_stdin`` only the literals (the rest go in ``stdin_payload``)."""
        out = self.all_values(values)
        if self.env_on_stdin:
            return {v.name: out[v.name] for v in self.env if v.host_name is None}
        return out

    def stdin_payload(self, values: Mapping[str, str]) -> bytes | None:
        """With ``env_on_stdin``: the host values as one JSON line, written to the
        container's stdin once it runs, so ``docker inspect`` shows none of them."""
        if not self.env_on_stdin:
            return None
        out = self.all_values(values)
        host = {v.name: out[v.name] for v in self.env if v.host_name and v.name in out}
        return json.dumps({"env": host}).encode() + b"\n"

    def all_values(self, values: Mapping[str, str]) -> dict[str, str]:
        """Name → value: literals from the spec, host values from ``values``
        (keyed by the container-side name, as ``envvars.resolve`` returns them)."""
        out: dict[str, str] = {}
        for var in self.env:
            if var.host_name is None:
                out[var.name] = var.literal or ""
            elif var.name in values:
                out[var.name] = values[var.name]
        return out

    def with_labels(self, extra: Mapping[str, str]) -> ContainerSpec:
        if not extra:
            return self
        return attrs.evolve(self, labels={**self.labels, **extra})


def host_mounts(job: Job | Server, to_host: Callable[[str], HostSource]
                ) -> tuple[MountSpec, ...]:
    mounts: tuple[Mount, ...] = job.mounts
    return tuple(MountSpec(m.target,
                           HostSource("volume", m.source) if m.is_named else to_host(m.source),
                           m.read_only) for m in mounts)


def server_spec(server: Server, to_host: Callable[[str], HostSource],
                extra_labels: Mapping[str, str]) -> ContainerSpec:
    """The model server, as the host engine must run it: as the image's own user (servers
    write caches where their image expects), named ``server.alias`` on the invocation's
    network, with its GPU request."""
    return ContainerSpec(
        image=server.image, command=server.command, entrypoint=server.entrypoint,
        name=server.container_name, env=server.env, mounts=host_mounts(server, to_host),
        labels={**extra_labels, **server.labels}, network=server.network,
        aliases=(server.alias,), shm_size=server.shm_size,
        gpus=parse_gpus(server.gpus) if server.gpus else None)


def for_job(job: Job, to_host: Callable[[str], HostSource], user: str | None,
            extra_labels: Mapping[str, str]) -> ContainerSpec:
    """The container of one job, as the host engine must run it."""
    d = job.docker
    entrypoint, command = job.entrypoint, job.command
    if job.hooks is not None:  # the same words for the backend and run.sh
        entrypoint, command = job.hooks.wrap(entrypoint, command)
    return ContainerSpec(
        image=job.image,
        command=command,
        entrypoint=entrypoint,
        name=job.container_name,
        env=job.env if any(v.name == HOME_ENV.name for v in job.env) else (HOME_ENV, *job.env),
        mounts=host_mounts(job, to_host),
        labels={**extra_labels, **job.labels},
        user=user,
        network=d.network,
        add_hosts=d.add_hosts,
        shm_size=d.shm_size,
        mem_limit=d.mem_limit,
        cpus=d.cpus,
        ipc_mode=d.ipc_mode,
        gpus=d.gpus or (parse_gpus(job.gpus) if job.gpus else None),  # flag, else tasks[].gpus
        devices=d.devices,
        runtime=d.runtime,
    )


def probe_spec(image: str, invocation_id: str, args: list[str], api_key_name: str | None,
               job: Job, labels: Mapping[str, str],
               mounts: Sequence[MountSpec] = ()) -> ContainerSpec:
    """The endpoint probe: our image, with the evaluation containers' network arguments."""
    return ContainerSpec(
        image=image, command=tuple(args), entrypoint="launcher", mounts=tuple(mounts),
        env=(EnvVar(api_key_name, host_name=api_key_name),) if api_key_name else (),
        labels={**labels, LABEL_INVOCATION: invocation_id, LABEL_ROLE: ROLE_PROBE},
        network=job.docker.network, add_hosts=job.docker.add_hosts)


def supervisor_spec(image: str, invocation_id: str, args: list[str], mounts: list[MountSpec],
                    env_names: list[str], labels: Mapping[str, str]) -> ContainerSpec:
    """A container of our own image that runs the jobs of a detached invocation; it outlives
    the launcher that started it, removes itself when done and is labelled like the jobs."""
    return ContainerSpec(
        image=image, command=tuple(args), entrypoint="launcher",
        name=f"eval-launcher-{invocation_id}-supervisor",
        env=tuple(EnvVar(name, host_name=name) for name in env_names),
        mounts=tuple(mounts), auto_remove=True, env_on_stdin=True,
        labels={**labels, LABEL_INVOCATION: invocation_id, LABEL_ROLE: ROLE_SUPERVISOR})


def waiter_spec(image: str, server: Server, url: str, model_id: str,
                labels: Mapping[str, str]) -> ContainerSpec:
    """Our image on the server's network, polling its health path every 0.05 s, then checking
    it serves the model: it exits 0 when the server is ready, 3 at the readiness timeout."""
    args = ("probe-endpoint", "--url", url, "--model-id", model_id, "--health-url",
            server.health_url, "--timeout", f"{server.readiness_timeout:g}", "--interval", "0.05")
    invocation = server.labels[LABEL_INVOCATION]
    return ContainerSpec(image=image, command=args, entrypoint="launcher",
                         name=f"eval-launcher-{invocation}-waiter", network=server.network,
                         labels={**labels, LABEL_INVOCATION: invocation, LABEL_ROLE: ROLE_WAITER})
