"""Run an untrusted Python program in a subprocess with limits.

Each run gets a throwaway temp dir as cwd (and HOME), an environment with nothing but PATH and
LANG (so no API key leaks in), stdin from /dev/null, ``python -I`` (isolated mode; ``-S`` too
unless site-packages are asked for), a new session (so the whole process group can be killed),
RLIMIT_CPU / RLIMIT_AS / RLIMIT_FSIZE set in the child before exec, and a wall-clock timeout.
Whatever the program leaves running in its process group is killed when it ends or times out.

This limits accidents (infinite loops, memory blow-ups, stray children), it is not a security
boundary: the evaluation container is.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

import attrs

GIB = 1024**3
STDERR_TAIL = 400


@attrs.frozen
class Outcome:
    passed: bool
    reason: str  # "passed", "timed out after 10s", "failed: AssertionError", ...
    seconds: float


def _limits(cpu_seconds: int, memory_bytes: int, file_bytes: int) -> Callable[[], None]:
    cpu = (cpu_seconds, cpu_seconds + 1)
    mem = (memory_bytes, memory_bytes)
    fsize = (file_bytes, file_bytes)
    setrlimit = resource.setrlimit
    rcpu, ras, rfsize = resource.RLIMIT_CPU, resource.RLIMIT_AS, resource.RLIMIT_FSIZE

    def apply() -> None:  # runs in the child between fork and exec: keep it tiny
        setrlimit(rcpu, cpu)
        setrlimit(ras, mem)
        setrlimit(rfsize, fsize)

    return apply


def run_program(
    program: str,
    *,
    timeout: float = 10.0,
    cpu_seconds: int = 10,
    memory_bytes: int = 2 * GIB,
    file_bytes: int = 64 * 1024**2,
    python: str = sys.executable,
    site_packages: bool = False,
) -> Outcome:
    """Run ``program`` (Python source); passed means exit status 0 within the limits.

    Without ``site_packages`` the program runs with ``-S`` too: standard library only (enough
    for HumanEval), no ``.pth`` hooks, and a faster start.
    """
    workdir = tempfile.mkdtemp(prefix="sandbox-")
    start = time.monotonic()
    try:
        script = os.path.join(workdir, "program.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(program)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "HOME": workdir,
            "TMPDIR": workdir,
        }
        with open(os.path.join(workdir, ".stderr"), "w+b") as err:
            proc = subprocess.Popen(
                [python, "-I", "-B", *([] if site_packages else ["-S"]), script],
                cwd=workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
                start_new_session=True,
                preexec_fn=_limits(cpu_seconds, memory_bytes, file_bytes),
                close_fds=True,
            )
            try:
                code = proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid)
                proc.wait()
                return Outcome(False, f"timed out after {timeout:g}s", time.monotonic() - start)
            finally:
                _kill_group(proc.pid)  # whatever it left behind
            err.seek(0)
            tail = err.read()[-4096:].decode("utf-8", "replace")
        seconds = time.monotonic() - start
        if code == 0:
            return Outcome(True, "passed", seconds)
        return Outcome(False, _failure(code, tail), seconds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _failure(code: int, stderr: str) -> str:
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = {"SIGXCPU": " (CPU time limit)", "SIGXFSZ": " (file size limit)"}.get(name, "")
        return f"killed by {name}{hint}"
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else f"exit status {code}"
    return f"failed: {last[:STDERR_TAIL]}"
