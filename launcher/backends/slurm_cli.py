"""The Slurm command-line tools (sbatch, squeue, scontrol, scancel, sacct, and docker on the
node for cleanup), run on this machine or over ``ssh -o BatchMode=yes user@host``. The only
module that runs them; the parsing below is pure.

Over SSH, env values travel on ssh's stdin (``export NAME=...`` lines of a ``bash -s``
script), never on a command line, a file or a log. ``EVAL_LAUNCHER_SSH_ARGS`` adds ssh
options (e.g. ``-p 2222 -i ~/.ssh/cluster``); ``~/.ssh/config`` is honoured as usual.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from collections.abc import Mapping, Sequence

import attrs

from launcher.errors import EnvironmentProblem
from launcher.slurm_settings import SlurmSettings

SSH_ARGS_ENV = "EVAL_LAUNCHER_SSH_ARGS"
SQUEUE_FORMAT = "%i|%T|%k|%o"


@attrs.frozen
class Result:
    code: int
    stdout: str
    stderr: str


@attrs.frozen
class SlurmJob:
    """One line of ``squeue -o SQUEUE_FORMAT``."""

    job_id: int
    state: str  # PENDING, RUNNING, COMPLETED, TIMEOUT, CANCELLED, FAILED, ...
    comment: str
    command: str  # the batch script's path


def parse_squeue(text: str) -> list[SlurmJob]:
    jobs = []
    for line in text.splitlines():
        parts = line.strip().split("|", 3)
        if len(parts) != 4 or not parts[0].isdigit():
            continue  # array or heterogeneous jobs (123_4, 123+1) are not ours
        jobs.append(SlurmJob(int(parts[0]), parts[1].strip(), parts[2].strip(), parts[3].strip()))
    return jobs


def parse_sbatch(text: str) -> int:
    """The job id ``sbatch --parsable`` prints (``ID`` or ``ID;cluster``)."""
    first = text.strip().splitlines()[-1] if text.strip() else ""
    head = first.split(";")[0].strip()
    if not head.isdigit():
        raise ValueError(text)
    return int(head)


def parse_sacct(text: str) -> dict[int, str]:
    """``sacct -n -P -o JobID,State``: the state of each job (steps left out)."""
    out = {}
    for line in text.splitlines():
        job, _, state = line.partition("|")
        if job.strip().isdigit():
            out[int(job)] = state.split()[0] if state.split() else ""
    return out


class Runner:
    """Runs a Slurm tool where the cluster is: here, or over ssh."""

    def __init__(self, settings: SlurmSettings, environ: Mapping[str, str] | None = None) -> None:
        self.settings = settings
        self.environ = dict(os.environ if environ is None else environ)

    @property
    def where(self) -> str:
        return f"{self.settings.destination} (ssh)" if self.settings.remote else "this machine"

    def ssh_words(self) -> list[str]:
        return ["ssh", "-o", "BatchMode=yes", *shlex.split(self.environ.get(SSH_ARGS_ENV, "")),
                self.settings.destination, "bash -s"]

    def run(self, argv: Sequence[str], env: Mapping[str, str] | None = None,
            timeout: float = 60) -> Result:
        env = dict(env or {})
        try:
            if self.settings.remote:
                script = "".join(f"export {k}={shlex.quote(v)}\n" for k, v in env.items())
                script += " ".join(shlex.quote(a) for a in argv) + "\n"
                proc = subprocess.run(self.ssh_words(), input=script, capture_output=True,
                                      text=True, timeout=timeout, env=self.environ)
                if proc.returncode == 255:
                    said = " ".join(proc.stderr.split())[:300]
                    raise EnvironmentProblem(
                        f"cannot reach the Slurm cluster over ssh at {self.settings.destination}"
                        f" ({said}): check execution.hostname/username, that `ssh "
                        f"{self.settings.destination} true` works without a password, and "
                        f"{SSH_ARGS_ENV} for a port or key")
            else:
                proc = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                                      env={**self.environ, **env})
        except FileNotFoundError:
            tool = "ssh" if self.settings.remote else argv[0]
            raise EnvironmentProblem(
                f"{tool} is not installed on this machine: install the Slurm client tools "
                "(Debian: apt-get install slurm-client) or set execution.hostname to a login "
                "node reachable over ssh") from None
        except subprocess.TimeoutExpired:
            raise EnvironmentProblem(f"{argv[0]} on {self.where} did not answer within "
                                     f"{timeout:g} s: is slurmctld up (`sinfo`)?") from None
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def checked(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> str:
        result = self.run(argv, env)
        if result.code != 0:
            said = " ".join((result.stderr or result.stdout).split())[:300]
            raise EnvironmentProblem(f"`{argv[0]}` on {self.where} failed (exit {result.code}): "
                                     f"{said}")
        return result.stdout

    # ------------------------------------------------------------ the tools

    def sbatch(self, script: str, export: Sequence[str], env: Mapping[str, str]) -> int:
        # PATH and HOME of where sbatch runs (the job resubmits itself with sbatch), the
        # secrets by name; nothing else of this environment
        names = ",".join(["EVAL_LAUNCHER_SLURM=1", "PATH", "HOME", *export])
        out = self.checked(["sbatch", "--parsable", f"--export={names}", script], env)
        try:
            return parse_sbatch(out)
        except ValueError:
            raise EnvironmentProblem(f"sbatch on {self.where} printed no job id: {out!r}") from None

    def squeue(self) -> list[SlurmJob]:
        return parse_squeue(self.checked(["squeue", "--me", "-h", "-t", "all", "-o",
                                          SQUEUE_FORMAT]))

    def sacct(self, job_ids: Sequence[int]) -> dict[int, str]:
        """States of jobs squeue forgot; empty where accounting is off."""
        if not job_ids:
            return {}
        result = self.run(["sacct", "-n", "-P", "-o", "JobID,State", "-j",
                           ",".join(map(str, job_ids))])
        return parse_sacct(result.stdout) if result.code == 0 else {}

    def scancel(self, job_ids: Sequence[int]) -> None:
        if job_ids:
            self.run(["scancel", *map(str, job_ids)])

    def remove_containers(self, labels: Mapping[str, str]) -> None:
        """``docker rm -f`` the containers carrying all of ``labels`` (a cancelled batch
        script may leave its container behind for a moment)."""
        filters = " ".join(f"--filter label={shlex.quote(f'{k}={v}')}"
                           for k, v in sorted(labels.items()))
        self.run(["sh", "-c", f"docker ps -aq {filters} | "
                              "xargs -r docker rm -f >/dev/null 2>&1; true"])

    def docker_image_id(self, image: str) -> str | None:
        result = self.run(["docker", "image", "inspect", "--format", "{{.Id}}", image])
        return result.stdout.strip() or None if result.code == 0 else None
