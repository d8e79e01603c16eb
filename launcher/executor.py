"""The only module that talks to Docker (through the Docker SDK for Python).

It connects to the engine (honouring DOCKER_HOST), inspects the launcher's own container to
translate paths, checks images, and runs one job's evaluation container: labelled, with bind
mounts (``Mount(type="bind")``, never ``volumes=``, which would silently create a missing host
folder), as the owner of the output folder, logs streamed to a file, stage markers written.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from launcher import hostpaths
from launcher.dockerargs import DockerArgs
from launcher.errors import EnvironmentProblem
from launcher.hostpaths import HostSource, PathTranslator
from launcher.plan import LABEL_INVOCATION, LABEL_JOB, Job
from launcher.status import ContainerFact
from launcher.store import Owner, write_atomic

LABEL_ROLE = "eval-launcher.role"
KILLED_MARKER = "stage.killed"  # written by `launcher kill` before it removes containers


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _engine_problem(exc: BaseException) -> EnvironmentProblem:
    text = str(exc)
    where = os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    if "PermissionError" in text or "Permission denied" in text:
        return EnvironmentProblem(
            f"permission denied on the Docker engine at {where}: add your user to the 'docker' "
            "group, or run the launcher container with --group-add $(stat -c %g "
            "/var/run/docker.sock)")
    return EnvironmentProblem(
        f"cannot reach the Docker engine at {where}: start Docker or set DOCKER_HOST; when the "
        "launcher runs in a container, add -v /var/run/docker.sock:/var/run/docker.sock")


class Engine:
    def __init__(self) -> None:
        try:
            self.client = docker.from_env(timeout=120)
            self.client.ping()
            self.info = self.client.info()
            version = self.client.version()
        except DockerException as exc:
            raise _engine_problem(exc) from None
        self.supports_subpath = hostpaths.api_supports_volume_subpath(version.get("ApiVersion"))
        self.rootless = any("rootless" in opt for opt in self.info.get("SecurityOptions") or [])

    # ------------------------------------------------------------------ paths

    def path_translator(self, output_dir: str, override: str | None = None) -> PathTranslator:
        """Translate launcher-side paths to host paths by inspecting our own container."""
        overrides = {}
        host_output = override or os.environ.get(hostpaths.HOST_OUTPUT_DIR_ENV)
        if host_output:
            overrides[os.path.realpath(output_dir)] = host_output
        container_id = hostpaths.read_own_container_id()
        mounts: list[dict] = []
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
        return PathTranslator(container_id=container_id, mounts=mounts, overrides=overrides,
                              volume_subpath_supported=self.supports_subpath)

    # ------------------------------------------------------------------ images

    def image_id(self, image: str) -> str:
        try:
            return self.client.images.get(image).id
        except ImageNotFound:
            hint = ("build it with `bash scripts/build-images.sh`" if image.startswith(
                "eval-launcher") else f"pull it with `docker pull {image}`")
            raise EnvironmentProblem(f"image {image} is not on the Docker engine: {hint}") from None
        except DockerException as exc:
            raise _engine_problem(exc) from None

    # ------------------------------------------------------------------ jobs

    def run_job(
        self,
        job: Job,
        mounts: list[HostSource],
        env: Mapping[str, str],
        owner: Owner,
        echo: Callable[[str], None] | None = None,
    ) -> int:
        """Run one evaluation container to its end; return its exit code."""
        logs = job.logs_dir
        for stale in ("stage.running", "stage.exit", KILLED_MARKER):  # a resumed job
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(logs, stale))
        write_atomic(os.path.join(logs, "stage.pre-start"), _now() + "\n", owner)
        code, status, container, note = 125, "failed", None, ""
        try:
            container = self.client.containers.create(
                job.image,
                list(job.command),
                entrypoint=[job.entrypoint],
                name=job.container_name,
                labels=job.labels,
                user=None if self.rootless else owner.user,
                mounts=[src.api_mount(m.target, m.read_only)
                        for src, m in zip(mounts, job.mounts, strict=True)],
                environment={"HOME": "/tmp", **env},
                init=True,
                detach=True,
                network=job.docker.network,
                extra_hosts=dict(job.docker.add_hosts) or None,
                shm_size=job.docker.shm_size,
                mem_limit=job.docker.mem_limit,
                nano_cpus=int(job.docker.cpus * 1e9) if job.docker.cpus else None,
                ipc_mode=job.docker.ipc_mode,
            )
            code, status = 137, "killed"
            container.start()
            write_atomic(os.path.join(logs, "stage.running"), _now() + "\n", owner)
            timed_out = threading.Event()
            timer = None
            if job.timeout:
                def expire() -> None:
                    timed_out.set()
                    with contextlib.suppress(NotFound, APIError):
                        container.stop(timeout=5)

                timer = threading.Timer(job.timeout, expire)
                timer.daemon = True
                timer.start()
            note = ""
            try:
                self._stream_logs(container, os.path.join(logs, "stdout.log"), owner, echo)
                code = int(container.wait().get("StatusCode", 1))
                container.reload()
                if (container.attrs.get("State") or {}).get("OOMKilled"):
                    note = " oom"
                elif code == 137 and not os.path.exists(os.path.join(logs, KILLED_MARKER)):
                    note = self._killed_from_outside(container)
            except (NotFound, APIError):  # removed by hand (or removal in progress: 409)
                code, note = 137, " removed"
            finally:
                if timer is not None:
                    timer.cancel()
            status = "success" if code == 0 and not note else "failed"
            if os.path.exists(os.path.join(logs, KILLED_MARKER)):
                status = "killed"
            elif timed_out.is_set():
                code, status = 124, "failed"
                with open(os.path.join(logs, "stdout.log"), "a", encoding="utf-8") as log:
                    log.write(f"eval-launcher: stopped after the task timeout of {job.timeout}s\n")
            return code
        finally:
            # Also reached on KeyboardInterrupt (SIGINT/SIGTERM): no orphan container is left.
            if container is not None:
                with contextlib.suppress(NotFound, APIError):
                    container.remove(force=True)
            write_atomic(os.path.join(logs, "stage.exit"),
                         f"{_now()} {code} {status}{note if status == 'failed' else ''}\n", owner)

    @staticmethod
    def _killed_from_outside(container) -> str:
        """SIGKILLed by someone else: ``docker rm -f`` (the container vanishes a moment later)
        or ``docker kill``."""
        for _ in range(10):
            time.sleep(0.1)
            try:
                container.reload()
            except (NotFound, APIError):
                return " removed"
        return " killed"

    @staticmethod
    def _stream_logs(container, path: str, owner: Owner,
                     echo: Callable[[str], None] | None) -> None:
        with open(path, "wb") as log:
            if os.geteuid() == 0:
                os.chown(path, owner.uid, owner.gid)
            for chunk in container.logs(stream=True, follow=True):
                log.write(chunk)
                log.flush()
                if echo:
                    for line in chunk.decode("utf-8", "replace").splitlines():
                        echo(line)

    def stop_containers(self, invocation_id: str, job_id: str | None = None) -> int:
        """Remove the containers labelled with this invocation (or job): ours, and only ours."""
        label = f"{LABEL_JOB}={job_id}" if job_id else f"{LABEL_INVOCATION}={invocation_id}"
        found = self._list(label)
        for container in found:  # the supervisor first, so it starts nothing new
            if container.labels.get(LABEL_ROLE) == "supervisor":
                with contextlib.suppress(NotFound, APIError):
                    container.remove(force=True)
        for container in found:
            with contextlib.suppress(NotFound, APIError):
                container.remove(force=True)
        return len(found)

    def _list(self, label: str) -> list:
        try:
            return self.client.containers.list(all=True, filters={"label": label})
        except DockerException as exc:
            raise _engine_problem(exc) from None

    def job_containers(self, invocation_id: str) -> dict[str, ContainerFact]:
        facts = {}
        for container in self._list(f"{LABEL_INVOCATION}={invocation_id}"):
            job_id = container.labels.get(LABEL_JOB)
            if job_id:
                state = container.attrs.get("State") or {}
                facts[job_id] = ContainerFact(state.get("Status", container.status),
                                              state.get("ExitCode"), bool(state.get("OOMKilled")))
        return facts

    def supervisor_running(self, invocation_id: str) -> bool:
        return any(c.labels.get(LABEL_ROLE) == "supervisor" and c.status == "running"
                   for c in self._list(f"{LABEL_INVOCATION}={invocation_id}"))

    def container_running(self, container_id: str | None) -> bool:
        if not container_id:
            return False
        try:
            return self.client.containers.get(container_id).status == "running"
        except NotFound:
            return False
        except DockerException as exc:
            raise _engine_problem(exc) from None

    def follow(self, job_id: str) -> Iterator[bytes] | None:
        """The live log stream of a job's running container, or None if it has none."""
        for container in self._list(f"{LABEL_JOB}={job_id}"):
            if container.status == "running":
                return container.logs(stream=True, follow=True, tail=0)
        return None

    def start_supervisor(self, image: str, args: list[str], invocation_id: str,
                         mounts: list[dict], env: Mapping[str, str]) -> str:
        """A container of our own image that runs the jobs of a detached invocation; it
        survives the launcher container that started it and is labelled like the jobs."""
        container = self.client.containers.run(
            image, args, entrypoint=["launcher"], detach=True, init=True, mounts=mounts,
            environment=dict(env), auto_remove=True,
            name=f"eval-launcher-{invocation_id}-supervisor",
            labels={LABEL_INVOCATION: invocation_id, LABEL_ROLE: "supervisor"},
        )
        return container.id

    def probe(self, image: str, url: str, model_id: str, api_key_name: str | None,
              env: Mapping[str, str], docker: DockerArgs, timeout: float) -> tuple[int, str]:
        """Check the endpoint from where the evaluation containers run (same image, same
        network arguments): (exit code, last line of the probe's output)."""
        args = ["probe-endpoint", "--url", url, "--model-id", model_id, "--timeout", str(timeout)]
        if api_key_name:
            args += ["--api-key-name", api_key_name]
        container = self.client.containers.create(
            image, args, entrypoint=["launcher"], detach=True, init=True,
            environment={k: v for k, v in env.items() if k == api_key_name},
            network=docker.network, extra_hosts=dict(docker.add_hosts) or None,
            labels={LABEL_ROLE: "probe"},
        )
        try:
            container.start()
            code = int(container.wait(timeout=timeout + 30).get("StatusCode", 1))
            lines = container.logs().decode("utf-8", "replace").strip().splitlines()
            return code, lines[-1] if lines else ""
        finally:
            with contextlib.suppress(NotFound, APIError):
                container.remove(force=True)


def echo_stderr(prefix: str) -> Callable[[str], None]:
    def echo(line: str) -> None:
        print(f"[{prefix}] {line}", file=sys.stderr, flush=True)

    return echo
