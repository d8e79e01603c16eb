"""The local Docker engine as a backend: the only module that talks to Docker (through the
Docker SDK for Python), honouring DOCKER_HOST.

Mounts are ``Mount(type="bind"|"volume")`` objects, never ``volumes=``, which would silently
create a missing host folder.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import docker
from docker.constants import DEFAULT_DOCKER_API_VERSION
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.types import DeviceRequest, EndpointConfig

from launcher import hostpaths
from launcher.backends.base import Backend, Workload, WorkloadGone
from launcher.errors import EnvironmentProblem
from launcher.gpus import is_cdi
from launcher.hostpaths import PathTranslator
from launcher.spec import ContainerSpec
from launcher.status import ContainerFact

CONNECT_ATTEMPTS = 3
BUILTIN_NETWORKS = frozenset({"bridge", "host", "none", "default"})
NO_GPU_SUPPORT = (
    "the Docker engine cannot give this container GPUs (--gpus in execution.extra_docker_args): "
    "install the NVIDIA Container Toolkit and run `sudo nvidia-ctk runtime configure "
    "--runtime=docker` (then restart Docker), or remove --gpus")


def _engine_problem(exc: BaseException) -> EnvironmentProblem:
    text = str(exc)
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if "PermissionError" in text or "Permission denied" in text:
        return EnvironmentProblem(
            f"permission denied on the Docker engine at {where}: add your user to the 'docker' "
            "group, or run the launcher container with --group-add $(stat -c %g "
            "/var/run/docker.sock)")
    if isinstance(exc, APIError):  # it answered: say what it said, not that it is down
        said = " ".join(str(exc.explanation or exc).split())[:300]
        return EnvironmentProblem(f"the Docker engine at {where} answered an error: {said}")
    return EnvironmentProblem(
        f"cannot reach the Docker engine at {where}: start Docker or set DOCKER_HOST; when the "
        "launcher runs in a container, add -v /var/run/docker.sock:/var/run/docker.sock")


def _fact(attrs: Mapping[str, Any], fallback: str = "") -> ContainerFact:
    state = attrs.get("State") or {}
    return ContainerFact(state.get("Status", fallback), state.get("ExitCode"),
                         bool(state.get("OOMKilled")))


def create_kwargs(spec: ContainerSpec, env: Mapping[str, str]) -> dict[str, Any]:
    """The SDK's ``containers.create`` arguments for ``spec`` (what ``run.sh`` renders)."""
    return {
        "image": spec.image,
        "command": list(spec.command),
        "entrypoint": [spec.entrypoint] if spec.entrypoint else None,
        "name": spec.name,
        "labels": dict(spec.labels),
        "user": spec.user,
        "mounts": [m.source.api_mount(m.target, m.read_only) for m in spec.mounts],
        "environment": spec.environment(env),
        "init": spec.init,
        "auto_remove": spec.auto_remove,
        "detach": True,
        "network": spec.network,
        "networking_config": {spec.network: EndpointConfig(DEFAULT_DOCKER_API_VERSION,
                                                           aliases=list(spec.aliases))}
        if spec.network and spec.aliases else None,
        "extra_hosts": dict(spec.add_hosts) or None,
        "shm_size": spec.shm_size,
        "mem_limit": spec.mem_limit,
        "nano_cpus": int(spec.cpus * 1e9) if spec.cpus else None,
        "ipc_mode": spec.ipc_mode,
        "device_requests": device_requests(spec) or None,
        "devices": [d for d in spec.devices if not is_cdi(d)] or None,
        "runtime": spec.runtime,
        "stdin_open": spec.env_on_stdin,
    }


def device_requests(spec: ContainerSpec) -> list[DeviceRequest]:
    """``--gpus`` as the CLI sends it, then the CDI names of ``--device`` as one request of
    driver ``cdi`` (the CLI does the same)."""
    out = []
    if spec.gpus:
        g = spec.gpus
        out.append(DeviceRequest(driver=g.driver or "", count=g.count or 0,
                                 device_ids=list(g.device_ids) or None,
                                 capabilities=g.engine_capabilities()))
    cdi = [d for d in spec.devices if is_cdi(d)]
    if cdi:
        out.append(DeviceRequest(driver="cdi", device_ids=cdi))
    return out


def _send_and_close(sock: Any, data: bytes) -> None:
    """Write ``data`` to an attach socket (the SDK's SocketIO wraps the raw socket), then
    close it: the container reads one line, so it does not wait for the end of input."""
    raw = getattr(sock, "_sock", sock)
    try:
        raw.sendall(data)
    finally:
        sock.close()


class DockerBackend(Backend):
    name = "docker"

    def __init__(self) -> None:
        for attempt in range(CONNECT_ATTEMPTS):  # a busy or restarting engine gets a second go
            try:
                self.client = docker.from_env(timeout=120)
                self.client.ping()
                self.info = self.client.info()
                version = self.client.version()
                break
            except DockerException as exc:
                if attempt + 1 == CONNECT_ATTEMPTS:
                    raise _engine_problem(exc) from None
                time.sleep(0.5 * (attempt + 1))
        self.supports_subpath = hostpaths.api_supports_volume_subpath(version.get("ApiVersion"))
        self.rootless = any("rootless" in opt for opt in self.info.get("SecurityOptions") or [])
        self._started: dict[str, Container] = {}
        self._lock = threading.Lock()

    # ------------------------------------------------------------ the host

    def path_translator(self, output_dir: str, override: str | None = None) -> PathTranslator:
        """Translate launcher-side paths to host paths by inspecting our own container."""
        container_id = hostpaths.read_own_container_id()
        mounts: list[dict[str, Any]] = []
        if container_id:
            try:
                attrs = self.client.api.inspect_container(container_id)
                container_id, mounts = attrs["Id"], attrs.get("Mounts") or []
            except NotFound:
                # In a container, but not one of this engine's (e.g. a remote DOCKER_HOST):
                # paths cannot be translated, so they are used as they are.
                container_id = None
            except DockerException as exc:
                raise _engine_problem(exc) from None
        return PathTranslator(container_id=container_id, mounts=mounts,
                              overrides=hostpaths.output_overrides(output_dir, override),
                              volume_subpath_supported=self.supports_subpath)

    def image_id(self, image: str) -> str:
        try:
            return str(self.client.images.get(image).id)
        except ImageNotFound:
            hint = ("build it with `bash scripts/build-images.sh`" if image.startswith(
                "eval-launcher") else f"pull it with `docker pull {image}`")
            raise EnvironmentProblem(f"image {image} is not on the Docker engine: {hint}") from None
        except DockerException as exc:
            raise _engine_problem(exc) from None

    def check_networks(self, specs: Iterable[ContainerSpec]) -> None:
        for name in sorted({s.network for s in specs if s.network}):
            if name in BUILTIN_NETWORKS or name.startswith("container:"):
                continue
            try:
                self.client.networks.get(name)
            except NotFound:
                raise EnvironmentProblem(
                    f"network '{name}' (--network in execution.extra_docker_args) does not exist "
                    f"on the Docker engine: create it with `docker network create {name}` or "
                    "name an existing one (`docker network ls`)") from None
            except DockerException as exc:
                raise _engine_problem(exc) from None

    def check_runtimes(self, specs: Iterable[ContainerSpec]) -> None:
        have = sorted(self.info.get("Runtimes") or {})
        for name in sorted({s.runtime for s in specs if s.runtime}):
            if have and name not in have:
                hint = (" install the NVIDIA Container Toolkit and run `sudo nvidia-ctk runtime "
                        "configure --runtime=docker` (then restart Docker), or" if name == "nvidia"
                        else "")
                raise EnvironmentProblem(
                    f"runtime '{name}' (--runtime in execution.extra_docker_args) is not on the "
                    f"Docker engine, which has {', '.join(have)}:{hint} remove --runtime {name} "
                    "(with --gpus, the engine's default runtime usually suffices)")

    def create_network(self, name: str, labels: Mapping[str, str]) -> None:
        try:
            self.client.networks.get(name)
            return
        except NotFound:
            pass
        except DockerException as exc:
            raise _engine_problem(exc) from None
        try:
            self.client.networks.create(name, driver="bridge", labels=dict(labels))
        except DockerException as exc:
            raise _engine_problem(exc) from None

    def remove_networks(self, labels: Mapping[str, str]) -> int:
        try:
            found = self.client.networks.list(
                filters={"label": [f"{k}={v}" for k, v in labels.items()]})
        except DockerException as exc:
            raise _engine_problem(exc) from None
        for network in found:
            with contextlib.suppress(NotFound, APIError):
                network.remove()
        return len(found)

    # ------------------------------------------------------------ one workload

    def _container(self, handle: str) -> Container:
        with self._lock:
            known = self._started.get(handle)
        if known is not None:
            return known
        try:
            return self.client.containers.get(handle)
        except (NotFound, APIError):
            raise WorkloadGone(handle) from None

    def start(self, spec: ContainerSpec, env: Mapping[str, str]) -> str:
        kwargs = create_kwargs(spec, env)
        payload = spec.stdin_payload(env)
        container = self.client.containers.create(kwargs.pop("image"), **kwargs)
        try:
            stdin = self._attach_stdin(container.id) if payload is not None else None
            container.start()
            if stdin is not None and payload is not None:
                _send_and_close(stdin, payload)
        except BaseException as exc:
            with contextlib.suppress(NotFound, APIError):
                container.remove(force=True)
            if isinstance(exc, APIError) and "could not select device driver" in str(exc):
                raise EnvironmentProblem(NO_GPU_SUPPORT) from None
            raise
        handle = str(container.id)
        with self._lock:
            self._started[handle] = container
        return handle

    def _attach_stdin(self, container_id: str) -> Any:
        """A hijacked connection to the created container's stdin (before it starts, as
        ``docker run -i`` does, so nothing written is lost)."""
        return self.client.api.attach_socket(container_id, params={"stdin": 1, "stream": 1})

    def logs(self, handle: str, *, follow: bool, tail: int | None = None) -> Iterator[bytes]:
        container = self._container(handle)
        try:
            if not follow:
                yield container.logs()
                return
            kwargs: dict[str, Any] = {"stream": True, "follow": True}
            if tail is not None:
                kwargs["tail"] = tail
            yield from container.logs(**kwargs)
        except (NotFound, APIError):  # removed by hand (or removal in progress: 409)
            raise WorkloadGone(handle) from None

    def wait(self, handle: str, timeout: float | None = None) -> int:
        container = self._container(handle)
        try:
            result = container.wait(timeout=timeout) if timeout else container.wait()
            return int(result.get("StatusCode", 1))
        except (NotFound, APIError):
            raise WorkloadGone(handle) from None

    def state(self, handle: str) -> ContainerFact | None:
        try:
            return _fact(self.client.api.inspect_container(handle))
        except (NotFound, APIError):
            return None
        except DockerException as exc:
            raise _engine_problem(exc) from None

    def stop(self, handle: str, timeout: float = 10) -> None:
        with contextlib.suppress(NotFound, APIError, WorkloadGone):
            self._container(handle).stop(timeout=int(timeout))

    def remove(self, handle: str) -> None:
        with contextlib.suppress(NotFound, APIError, WorkloadGone):
            self._container(handle).remove(force=True)
        with self._lock:
            self._started.pop(handle, None)

    def find(self, labels: Mapping[str, str]) -> list[Workload]:
        """The containers with ``labels``. Listed, then inspected one by one: one removed in
        between (an auto-removed supervisor, a job removed by hand) is left out, not an error
        (docker-py's non-sparse list would fail the whole call on it)."""
        try:
            summaries = self.client.api.containers(
                all=True, filters={"label": [f"{k}={v}" for k, v in labels.items()]})
        except DockerException as exc:
            raise _engine_problem(exc) from None
        found = []
        for summary in summaries:
            try:
                c = self.client.containers.get(summary["Id"])
            except NotFound:
                continue
            except DockerException as exc:
                raise _engine_problem(exc) from None
            found.append(Workload(str(c.id), dict(c.labels), _fact(c.attrs, str(c.status))))
        return found
