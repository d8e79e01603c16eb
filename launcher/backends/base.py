"""The backend seam: what the launcher needs from wherever its containers run.

In the spirit of pre-commit's ``lang_base``: a small set of primitives each backend provides
(start a ``ContainerSpec``, watch it to its end, stop it, read its logs and state, find its
workloads by label), and everything else (markers, timeouts, job states, kill, resume) built
on them once, backend-neutrally, in ``jobrun``, ``scheduler`` and ``commands``.

A new executor (e.g. Slurm: ``start`` renders and submits an sbatch script from the spec,
``wait``/``state`` poll the queue, ``find`` lists jobs by comment/label) implements these
methods; a deployment (a long-running model server with a health check) is a spec started
with ``start`` and watched with ``state`` until healthy. Neither touches the CLI.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Iterable, Iterator, Mapping

import attrs

from launcher.hostpaths import PathTranslator
from launcher.labels import LABEL_INVOCATION, LABEL_JOB, LABEL_ROLE, ROLE_SUPERVISOR
from launcher.spec import ContainerSpec
from launcher.status import ContainerFact


class WorkloadGone(Exception):
    """The workload vanished while being watched (e.g. removed from outside)."""


@attrs.frozen
class Workload:
    """A workload the backend runs, as found by label."""

    handle: str
    labels: dict[str, str]
    fact: ContainerFact


class Backend(abc.ABC):
    name: str = "abstract"
    rootless: bool = False  # workloads cannot run as a chosen uid:gid

    # ------------------------------------------------------------ the host it runs on

    @abc.abstractmethod
    def path_translator(self, output_dir: str, override: str | None = None) -> PathTranslator:
        """How paths the launcher sees map to sources the backend can mount."""

    @abc.abstractmethod
    def image_id(self, image: str) -> str:
        """The id of a present image; EnvironmentProblem (saying how to get it) otherwise."""

    def check_networks(self, specs: Iterable[ContainerSpec]) -> None:
        """EnvironmentProblem naming the first network the specs join that does not exist.
        Backends without named networks accept every spec."""
        return None

    def check_runtimes(self, specs: Iterable[ContainerSpec]) -> None:
        """EnvironmentProblem naming the first ``--runtime`` the backend does not have.
        Backends without container runtimes to choose accept every spec."""
        return None

    # ------------------------------------------------------------ one workload

    @abc.abstractmethod
    def start(self, spec: ContainerSpec, env: Mapping[str, str]) -> str:
        """Create and start ``spec`` with these env values (memory only); its handle.
        Nothing is left behind when this raises."""

    @abc.abstractmethod
    def logs(self, handle: str, *, follow: bool, tail: int | None = None) -> Iterator[bytes]:
        """Its output (following it to its end when ``follow``); WorkloadGone if it vanishes."""

    @abc.abstractmethod
    def wait(self, handle: str, timeout: float | None = None) -> int:
        """Block until it exits; its exit code. WorkloadGone if it vanishes."""

    @abc.abstractmethod
    def state(self, handle: str) -> ContainerFact | None:
        """Its current state, or None when it is gone."""

    @abc.abstractmethod
    def stop(self, handle: str, timeout: float = 10) -> None:
        """Stop it gracefully (SIGTERM, then SIGKILL after ``timeout``); no error if gone."""

    @abc.abstractmethod
    def remove(self, handle: str) -> None:
        """Remove it at once, running or not; no error if gone."""

    @abc.abstractmethod
    def find(self, labels: Mapping[str, str]) -> list[Workload]:
        """Every workload (running or not) carrying all of these labels."""

    def create_network(self, name: str, labels: Mapping[str, str]) -> None:
        """A private network (kept if it exists) where an invocation's containers reach its
        model server by name. Backends without named networks do nothing."""
        return None

    def remove_networks(self, labels: Mapping[str, str]) -> int:
        """Remove the networks carrying all of these labels; how many."""
        return 0

    # ------------------------------------------------------------ derived, backend-neutral

    def run_to_end(self, spec: ContainerSpec, env: Mapping[str, str],
                   timeout: float) -> tuple[int, str]:
        """Start, wait (bounded), collect output, remove: (exit code, output)."""
        handle = self.start(spec, env)
        try:
            code = self.wait(handle, timeout=timeout)
            try:
                output = b"".join(self.logs(handle, follow=False))
            except WorkloadGone:  # its exit code is known; its output went with it
                output = b""
            return code, output.decode("utf-8", "replace")
        finally:
            self.remove(handle)

    def stop_labelled(self, invocation_id: str, job_id: str | None = None) -> int:
        """Remove the workloads of this invocation (or job): ours, and only ours. The
        supervisor goes first, so it starts nothing new."""
        found = self.find({LABEL_JOB: job_id} if job_id else {LABEL_INVOCATION: invocation_id})
        found.sort(key=lambda w: w.labels.get(LABEL_ROLE) != ROLE_SUPERVISOR)
        for workload in found:
            self.remove(workload.handle)
        if job_id is None:  # the invocation's network goes with its last container
            self.remove_networks({LABEL_INVOCATION: invocation_id})
        return len(found)

    def job_states(self, invocation_id: str) -> dict[str, ContainerFact]:
        return {w.labels[LABEL_JOB]: w.fact for w in self.find({LABEL_INVOCATION: invocation_id})
                if w.labels.get(LABEL_JOB)}

    def supervisor_running(self, invocation_id: str) -> bool:
        return any(w.labels.get(LABEL_ROLE) == ROLE_SUPERVISOR and w.fact.status == "running"
                   for w in self.find({LABEL_INVOCATION: invocation_id}))

    def running(self, handle: str | None) -> bool:
        fact = self.state(handle) if handle else None
        return fact is not None and fact.status == "running"

    def gone_or_killed(self, handle: str, polls: int = 10, every: float = 0.1) -> bool:
        """After a SIGKILL from outside: True if the workload vanishes shortly (``rm -f``),
        False if it stays (``kill``)."""
        for _ in range(polls):
            time.sleep(every)
            if self.state(handle) is None:
                return True
        return False
