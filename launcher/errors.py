"""Every error the launcher reports to a person, in one place.

A LauncherError carries a one-line message (what is wrong and how to fix it) and an exit
code; the CLI prints ``error: <message>`` on stderr and exits with that code, no traceback.
"""

from __future__ import annotations

# `launcher gate` verdicts (0 is GO): distinct from the error codes below.
EXIT_NO_GO = 1  # a critical threshold is violated
EXIT_INCONCLUSIVE = 4  # a critical threshold could not be checked (task or baseline missing)
EXIT_USAGE = 2  # bad config, bad flags, unknown task: the user's input must change
EXIT_ENVIRONMENT = 3  # Docker missing, socket not mounted, path not under a mount


class LauncherError(Exception):
    exit_code = EXIT_USAGE

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ConfigError(LauncherError):
    """The config (file, overrides or flags) is wrong. Exit code 2."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, source: str | None = None, key: str | None = None):
        where = ", ".join(p for p in (source, f"key '{key}'" if key else None) if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.detail = message  # without the file and key, to report it at another place
        self.source = source
        self.key = key


class EnvironmentProblem(LauncherError):
    """The machine is not set up as needed (Docker, mounts, permissions). Exit code 3."""

    exit_code = EXIT_ENVIRONMENT


class UnsafePath(EnvironmentProblem):
    """A link (or a FIFO, a device, a hard-linked file) where the launcher writes or reads a
    file or walks a folder, planted by whoever controls that folder: refused, never followed.
    Exit 3."""

    def __init__(self, path: str, why: str, verb: str = "write") -> None:
        line = (f"refusing to {verb} {path}: {why}; someone who can write that folder put it "
                "there (the launcher never follows it): remove it, or choose another output "
                "folder")
        super().__init__("".join(c if c.isprintable() else ascii(c)[1:-1] for c in line))
        self.path, self.why = path, why


DISK_ERRNOS = frozenset({28, 122, 5, 30})  # ENOSPC, EDQUOT, EIO, EROFS


def from_os_error(exc: OSError) -> EnvironmentProblem | None:
    """A full, failing or read-only disk as one line naming the file; None for other errors."""
    if exc.errno not in DISK_ERRNOS:
        return None
    where = f" {exc.filename}" if exc.filename else ""
    return EnvironmentProblem(
        f"cannot write{where}: {exc.strerror or exc}; free space (or fix the disk) there, then "
        "`launcher resume <invocation id>` reruns only what did not finish")
