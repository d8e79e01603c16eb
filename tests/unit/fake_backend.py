"""A fake engine behind the backend seam: workloads are threads of nothing, scripted per task
(exit code, output, OOM, hang until stopped), so the orchestration layer (run, scheduler,
jobrun, status, kill, resume, supervise) runs in-process with no real engine."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator, Mapping

import attrs

from launcher.backends.base import Backend, Workload, WorkloadGone
from launcher.hostpaths import PathTranslator, output_overrides
from launcher.labels import LABEL_ROLE, LABEL_TASK
from launcher.spec import ContainerSpec
from launcher.status import ContainerFact


@attrs.define
class Script:
    """How a workload behaves."""

    exit_code: int = 0
    output: bytes = b"hello from the fake engine\n"
    oom: bool = False
    hang: bool = False  # runs until stopped or removed
    files: dict[str, str] = attrs.field(factory=dict)  # written into its /results mount


@attrs.define
class FakeWorkload:
    handle: str
    spec: ContainerSpec
    env: dict[str, str]  # what its process gets (from its Env and, for the supervisor, stdin)
    script: Script
    inspect_env: dict[str, str] = attrs.field(factory=dict)  # what `docker inspect` shows
    done: threading.Event = attrs.field(factory=threading.Event)
    removed: bool = False
    code: int | None = None

    def fact(self) -> ContainerFact:
        if not self.done.is_set():
            return ContainerFact("running")
        return ContainerFact("exited", self.code, self.script.oom)


class FakeBackend(Backend):
    name = "fake"

    def __init__(self, scripts: Mapping[str, Script] | None = None) -> None:
        self.scripts = dict(scripts or {})  # by task label, or by role label
        self.workloads: dict[str, FakeWorkload] = {}
        self.started: list[FakeWorkload] = []
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.networks: dict[str, dict[str, str]] = {}  # name -> labels, while it exists
        self.networks_created: list[str] = []

    def path_translator(self, output_dir: str, override: str | None = None) -> PathTranslator:
        return PathTranslator(container_id=None,
                              overrides=output_overrides(output_dir, override))

    def image_id(self, image: str) -> str:
        return f"sha256:{image}"

    def create_network(self, name: str, labels: Mapping[str, str]) -> None:
        if name not in self.networks:
            self.networks[name] = dict(labels)
            self.networks_created.append(name)

    def remove_networks(self, labels: Mapping[str, str]) -> int:
        gone = [n for n, have in self.networks.items()
                if all(have.get(k) == v for k, v in labels.items())]
        for name in gone:
            del self.networks[name]
        return len(gone)

    def start(self, spec: ContainerSpec, env: Mapping[str, str]) -> str:
        key = spec.labels.get(LABEL_TASK) or spec.labels.get(LABEL_ROLE, "")
        script = self.scripts.get(key, Script())
        with self._lock:
            handle = f"fake{next(self._ids)}"
            workload = FakeWorkload(handle, spec, spec.all_values(env), script,
                                    spec.environment(env))
            self.workloads[handle] = workload
            self.started.append(workload)
        for mount in spec.mounts:
            if mount.target == "/results" and mount.source.kind == "bind":
                for name, text in script.files.items():
                    with open(f"{mount.source.source}/{name}", "w") as fh:
                        fh.write(text)
        if not script.hang:
            workload.code = 137 if script.oom else script.exit_code
            workload.done.set()
        return handle

    def _get(self, handle: str) -> FakeWorkload:
        workload = self.workloads.get(handle)
        if workload is None or workload.removed:
            raise WorkloadGone(handle)
        return workload

    def logs(self, handle: str, *, follow: bool, tail: int | None = None) -> Iterator[bytes]:
        workload = self._get(handle)
        yield workload.script.output
        if follow:
            workload.done.wait()
            if workload.removed:
                raise WorkloadGone(handle)

    def wait(self, handle: str, timeout: float | None = None) -> int:
        workload = self._get(handle)
        workload.done.wait(timeout)
        if workload.removed:
            raise WorkloadGone(handle)
        assert workload.code is not None
        return workload.code

    def state(self, handle: str) -> ContainerFact | None:
        workload = self.workloads.get(handle)
        return None if workload is None or workload.removed else workload.fact()

    def stop(self, handle: str, timeout: float = 10) -> None:
        workload = self.workloads.get(handle)
        if workload is not None and not workload.done.is_set():
            workload.code = 143
            workload.done.set()

    def remove(self, handle: str) -> None:
        workload = self.workloads.get(handle)
        if workload is not None and not workload.removed:
            workload.removed = True
            if workload.code is None:
                workload.code = 137
            workload.done.set()

    def find(self, labels: Mapping[str, str]) -> list[Workload]:
        return [Workload(w.handle, dict(w.spec.labels), w.fact())
                for w in list(self.workloads.values())
                if not w.removed and all(w.spec.labels.get(k) == v for k, v in labels.items())]

    def jobs_started(self) -> list[FakeWorkload]:
        return [w for w in self.started if LABEL_TASK in w.spec.labels]
