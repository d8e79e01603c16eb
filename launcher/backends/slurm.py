"""A Slurm cluster as a backend: each workload is a batch job (``run.sub``, rendered by
``slurm_script`` from the same ``ContainerSpec`` the local backend starts), submitted with
``sbatch`` here or over ssh (``slurm_cli.Runner``).

A handle is the Slurm id of the first job of a chain: a job that reaches its walltime
resubmits itself, and the next one names its predecessor in its comment
(``eval-launcher.resubmit-of``), so any launcher can follow a chain from ``squeue`` alone.
Labels live in the job's comment; state comes from ``squeue`` (``sacct`` for jobs it forgot),
the exit code from the ``logs/slurm-<id>.rc`` the script writes when its container ends.
The output folder is on a filesystem this machine and the nodes share, at the same path.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Mapping

from launcher import slurm_script, store
from launcher.backends.base import Backend, Workload, WorkloadGone
from launcher.backends.slurm_cli import Runner, SlurmJob
from launcher.errors import EnvironmentProblem
from launcher.hostpaths import PathTranslator, output_overrides
from launcher.labels import LABEL_INVOCATION, LABEL_JOB, LABEL_ROLE
from launcher.plan import RESULTS_MOUNT
from launcher.slurm_settings import SlurmSettings
from launcher.spec import ContainerSpec
from launcher.status import ContainerFact

ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED",
          "RESIZING", "SIGNALING", "STAGE_OUT")
EXIT_BY_STATE = {"COMPLETED": 0, "TIMEOUT": slurm_script.EXIT_TIMEOUT, "CANCELLED": 137,
                 "OUT_OF_MEMORY": 137, "PREEMPTED": 137, "DEADLINE": slurm_script.EXIT_TIMEOUT}
POLL = 0.25  # seconds between squeue calls (one call serves every thread)
SCRATCH = ".eval-launcher-slurm"  # in the output folder: run.sub of probes


class SlurmBackend(Backend):
    name = "slurm"

    def __init__(self, settings: SlurmSettings, output_dir: str,
                 runner: Runner | None = None) -> None:
        self.settings = settings
        self.output_dir = os.path.abspath(output_dir)
        self.runner = runner or Runner(settings)
        self._lock = threading.Lock()
        self._queue: tuple[float, list[SlurmJob]] = (0.0, [])
        self._dirs: dict[str, str] = {}  # handle -> job folder (of workloads started here)
        self._scratch: dict[str, str] = {}  # handle -> a probe's folder, removed with it
        self._labels: dict[str, dict[str, str]] = {}
        self._server: slurm_script.InJobServer | None = None
        self._server_env: dict[str, str] = {}
        self._shared = not settings.remote  # over ssh: checked at the first submission

    def embed_server(self, server: slurm_script.InJobServer | None,
                     env: Mapping[str, str]) -> None:
        """Run this deployment inside every job started from now on (its env values, by the
        server's container-side names, in memory only)."""
        self._server, self._server_env = server, dict(env)

    @property
    def where(self) -> str:
        return self.runner.where

    # ------------------------------------------------------------ the host

    def path_translator(self, output_dir: str, override: str | None = None) -> PathTranslator:
        """The identity: the output folder is at the same path on the nodes."""
        return PathTranslator(container_id=None, overrides=output_overrides(output_dir, override))

    def image_id(self, image: str) -> str:
        if self.settings.runtime != "docker":
            return image  # pyxis/enroot pulls it on the node
        found = self.runner.docker_image_id(image)
        if found is None:
            raise EnvironmentProblem(
                f"image {image} is not on the Docker engine of {self.runner.where} (the nodes "
                f"run `docker run` with container_runtime: docker): load it there (`docker "
                f"load`, or bash scripts/build-images.sh), or use container_runtime: pyxis")
        return found

    # ------------------------------------------------------------ the queue

    def _jobs(self, fresh: bool = False) -> list[SlurmJob]:
        with self._lock:
            stamp, jobs = self._queue
            if fresh or time.monotonic() - stamp > POLL:
                jobs = self.runner.squeue()
                self._queue = (time.monotonic(), jobs)
            return jobs

    @staticmethod
    def _roots(jobs: list[SlurmJob]) -> dict[int, int]:
        """Each job's chain root: follow ``resubmit-of`` while the predecessor is known."""
        by_id = {j.job_id: j for j in jobs}
        roots = {}
        for job in jobs:
            current = job
            for _ in range(len(jobs)):
                prev = slurm_script.parse_comment(current.comment).get(slurm_script.RESUBMIT_OF)
                if not prev or not prev.isdigit() or int(prev) not in by_id:
                    break
                current = by_id[int(prev)]
            roots[job.job_id] = current.job_id
        return roots

    def _members(self, handle: str, fresh: bool = False) -> list[SlurmJob]:
        jobs = self._jobs(fresh)
        roots = self._roots(jobs)
        return sorted((j for j in jobs if str(roots[j.job_id]) == handle),
                      key=lambda j: j.job_id)

    def _job_dir(self, handle: str, members: list[SlurmJob]) -> str | None:
        if handle in self._dirs:
            return self._dirs[handle]
        for job in members:
            if job.command.endswith(f"/{slurm_script.RUN_SUB}"):
                return os.path.dirname(job.command)
        return None

    def _rc(self, job_dir: str | None, job_id: int) -> int | None:
        if job_dir is None:
            return None
        path = os.path.join(job_dir, "logs", f"slurm-{job_id}{slurm_script.RC_SUFFIX}")
        try:
            with open(path, encoding="utf-8") as fh:
                return int(fh.read().strip())
        except (OSError, ValueError):
            return None

    def _fact(self, handle: str, members: list[SlurmJob]) -> ContainerFact:
        states = [j.state for j in members]
        if any(s in ACTIVE and s != "PENDING" for s in states):
            return ContainerFact("running")
        if "PENDING" in states:
            return ContainerFact("created")
        job_dir = self._job_dir(handle, members)
        for job in reversed(members):  # the newest job whose container ended by itself
            rc = self._rc(job_dir, job.job_id)
            if rc is not None:
                return ContainerFact("exited", rc)
        last = next((j for j in reversed(members) if j.state != "CANCELLED"), members[-1])
        return ContainerFact("exited", EXIT_BY_STATE.get(last.state, 1),
                             oom_killed=last.state == "OUT_OF_MEMORY")

    # ------------------------------------------------------------ one workload

    def _folder(self, spec: ContainerSpec) -> tuple[str, bool]:
        """The job folder (the parent of what is mounted at /results), or a scratch folder."""
        for mount in spec.mounts:
            if mount.target == RESULTS_MOUNT and mount.source.kind == "bind":
                return os.path.dirname(mount.source.source.rstrip("/")), False
        return os.path.join(self.output_dir, SCRATCH, uuid.uuid4().hex[:12]), True

    def start(self, spec: ContainerSpec, env: Mapping[str, str]) -> str:
        job_dir, scratch = self._folder(spec)
        owner = store.owner_of(self.output_dir)
        store.make_dirs(os.path.join(job_dir, "logs"), owner)
        title = (f"job {spec.labels.get(LABEL_JOB)}" if spec.labels.get(LABEL_JOB)
                 else f"{spec.labels.get(LABEL_ROLE, 'workload')} of invocation "
                      f"{spec.labels.get(LABEL_INVOCATION)}")
        server = self._server if LABEL_JOB in spec.labels else None
        text = slurm_script.render_run_sub(spec, self.settings, job_dir, title, server=server)
        script = os.path.join(job_dir, slurm_script.RUN_SUB)
        store.write_atomic(script, text, owner, 0o755)
        try:
            self._check_shared(script)
        except EnvironmentProblem:
            if scratch:
                shutil.rmtree(job_dir, ignore_errors=True)
            raise
        exports: dict[str, str] = {}
        pairs = [(spec.env, env), (server.server.env if server else (), self._server_env)]
        for variables, values in pairs:  # by the HOST name the script reads, in memory only
            for var in variables:
                if var.host_name and var.name in values:
                    exports[var.host_name] = values[var.name]
        job_id = self.runner.sbatch(script, sorted(exports), exports)
        handle = str(job_id)
        with self._lock:
            self._dirs[handle] = job_dir
            self._labels[handle] = dict(spec.labels)
            if scratch:
                self._scratch[handle] = job_dir
        return handle

    def _check_shared(self, script: str) -> None:
        """Over ssh, once: the cluster must see the script this machine just wrote, at the
        same path (the launcher does not copy the run folder)."""
        if self._shared:
            return
        if self.runner.run(["test", "-f", script]).code != 0:
            raise EnvironmentProblem(
                f"{self.settings.destination} does not see {script}, which this machine just "
                f"wrote: execution.output_dir must be a folder the cluster shares with this "
                f"machine, at the same path (the launcher does not copy the run folder); set "
                f"it to such a path, or run the launcher on the login node")
        self._shared = True

    def _active(self, members: list[SlurmJob]) -> bool:
        return any(j.state in ACTIVE for j in members)

    def logs(self, handle: str, *, follow: bool, tail: int | None = None) -> Iterator[bytes]:
        offsets: dict[int, int] = {}

        def new_bytes(members: list[SlurmJob]) -> Iterator[bytes]:
            job_dir = self._job_dir(handle, members)
            for job in members:
                if job_dir is None:
                    return
                path = os.path.join(job_dir, "logs", f"slurm-{job.job_id}.log")
                try:
                    with open(path, "rb") as fh:
                        fh.seek(offsets.get(job.job_id, 0))
                        chunk = fh.read()
                except OSError:
                    continue
                if chunk:
                    offsets[job.job_id] = offsets.get(job.job_id, 0) + len(chunk)
                    yield chunk

        while True:
            members = self._members(handle, fresh=True)
            if not members:
                raise WorkloadGone(handle)
            active = self._active(members)
            yield from new_bytes(members)
            if not follow or not active:
                return
            time.sleep(POLL)

    def wait(self, handle: str, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            members = self._members(handle)
            if not members:
                raise WorkloadGone(handle)
            if not self._active(members):
                code = self._fact(handle, members).exit_code
                return 1 if code is None else code
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"Slurm job {handle} still running after {timeout:g} s")
            time.sleep(POLL)

    def state(self, handle: str) -> ContainerFact | None:
        members = self._members(handle, fresh=True)
        if members:
            return self._fact(handle, members)
        if not handle.isdigit():
            return None
        state = self.runner.sacct([int(handle)]).get(int(handle))  # squeue forgot it
        if not state:
            return None
        if state in ACTIVE:
            return ContainerFact("running" if state != "PENDING" else "created")
        rc = self._rc(self._dirs.get(handle), int(handle))
        return ContainerFact("exited", EXIT_BY_STATE.get(state, 1) if rc is None else rc)

    def stop(self, handle: str, timeout: float = 10) -> None:
        """scancel: Slurm sends SIGTERM, then SIGKILL after the cluster's KillWait."""
        members = self._members(handle, fresh=True)
        self.runner.scancel([j.job_id for j in members if j.state in ACTIVE])

    def remove(self, handle: str) -> None:
        members = self._members(handle, fresh=True)
        self.runner.scancel([j.job_id for j in members if j.state in ACTIVE])
        labels = self._labels.get(handle) or (
            slurm_script.parse_comment(members[0].comment) if members else {})
        if self.settings.runtime == "docker":
            key = LABEL_JOB if labels.get(LABEL_JOB) else LABEL_ROLE
            if labels.get(key) and labels.get(LABEL_INVOCATION):
                # the container of a cancelled script may outlive it for a moment; only this
                # invocation's (a role alone, e.g. every probe on the engine, is not ours)
                self.runner.remove_containers({key: labels[key],
                                               LABEL_INVOCATION: labels[LABEL_INVOCATION]})
        with self._lock:
            self._dirs.pop(handle, None)
            self._labels.pop(handle, None)
            scratch = self._scratch.pop(handle, None)
            self._queue = (0.0, [])
        if scratch:
            with contextlib.suppress(OSError):
                shutil.rmtree(scratch)

    def find(self, labels: Mapping[str, str]) -> list[Workload]:
        jobs = self._jobs(fresh=True)
        roots = self._roots(jobs)
        chains: dict[int, list[SlurmJob]] = {}
        for job in sorted(jobs, key=lambda j: j.job_id):
            chains.setdefault(roots[job.job_id], []).append(job)
        found = []
        for root, members in sorted(chains.items()):  # newest chain last (job_states keeps it)
            tags = slurm_script.parse_comment(members[0].comment)
            tags.pop(slurm_script.RESUBMIT_OF, None)
            if all(tags.get(k) == v for k, v in labels.items()):
                found.append(Workload(str(root), tags, self._fact(str(root), members)))
        return found

    def gone_or_killed(self, handle: str, polls: int = 10, every: float = 0.1) -> bool:
        """A job cancelled from outside (scancel) is reported killed, not removed."""
        return False
