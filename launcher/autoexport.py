"""Auto-export (the reference's ``execution.auto_export.destinations``): after each job that
succeeded, in an attached run, a detached run's supervisor or a resume, the job is exported
to each destination with that destination's options from the config's ``export.<dest>``
block, as ``launcher export <job id> --dest <dest>`` would.

An export never changes a job: the exporters only read the job's files, and a failed export
(a dead server, a missing client, bad credentials) is one line on stderr plus a line in the
invocation's ``auto_export.log``; the job's state, exit code and results stay as they were,
and the run's exit code does not change. ``launcher export`` repeats it later (idempotent)."""

from __future__ import annotations

import contextlib
import importlib.util
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from launcher import exportopts, safe_fs, store
from launcher.errors import LauncherError
from launcher.record import RECORD, now_z

CLIENTS = {"mlflow": "mlflow", "wandb": "wandb"}  # the module each destination imports
LOG = "auto_export.log"  # in the invocation folder: one line per export attempt
_lock = threading.Lock()  # parallel jobs end in threads; exports run one at a time


def destinations(config: Mapping[str, Any]) -> list[tuple[str, dict[str, str]]]:
    """(destination, options) of a raw (recorded) config, in the order written."""
    execution = config.get("execution") or {}
    auto = execution.get("auto_export") if isinstance(execution, Mapping) else None
    dests = (auto or {}).get("destinations") if isinstance(auto, Mapping) else None
    section = config.get("export") or {}
    found = []
    for dest in dests or []:
        block = section.get(dest) if isinstance(section, Mapping) else None
        found.append((str(dest), exportopts.from_section(str(dest), block, RECORD)))
    return found


def describe(config: Mapping[str, Any]) -> list[str]:
    """The auto-export plan for --dry-run: one line per destination with its options."""
    lines = []
    for dest, opts in destinations(config):
        shown = ", ".join(f"{k}={v}" for k, v in opts.items()) or "defaults"
        line = f"after each job that succeeds: export --dest {dest} ({shown})"
        client = CLIENTS.get(dest)
        if client and importlib.util.find_spec(client) is None:
            line += (f"; the {client} client is not installed here, so this export will fail: "
                     f"pip install 'eval-launcher[{dest}]'")
        lines.append(line)
    return lines


def export_job(output_dir: str, inv_dir: str, config: Mapping[str, Any], job_id: str,
               owner: store.Owner, say: Callable[[str], None]) -> list[str]:
    """Export one finished job to every destination; the failures' one-line messages."""
    from launcher.commands.export import export_with

    failures = []
    for dest, opts in destinations(config):
        with _lock:
            try:
                with contextlib.redirect_stdout(sys.stderr):
                    export_with(output_dir, [job_id], dest, opts)
                outcome = "ok"
            except LauncherError as e:
                outcome = f"failed: {e}"
            except (Exception, SystemExit) as e:  # a client's own error: still one line
                outcome = f"failed: {type(e).__name__}: {e}"
            outcome = " ".join(outcome.split())[:600]
            _note(inv_dir, f"{now_z()} {job_id} {dest} {outcome}", owner)
        if outcome != "ok":
            line = (f"auto-export of job {job_id} to {dest} {outcome} (the job and its results "
                    f"are unchanged; retry with `launcher export {job_id} --dest {dest}`)")
            failures.append(line)
            say(line)
    return failures


def _note(inv_dir: str, line: str, owner: store.Owner) -> None:
    """One line appended to auto_export.log, never through a link planted there."""
    try:
        with safe_fs.open_append(os.path.join(inv_dir, LOG), owner) as fh:
            fh.write(line.encode("utf-8") + b"\n")
    except (OSError, LauncherError):
        pass  # the note is a courtesy: the line on stderr already said it


def after_each(output_dir: str, inv_dir: str, config: Mapping[str, Any], owner: store.Owner,
               say: Callable[[str], None]) -> Callable[[str, int], None] | None:
    """The scheduler's hook: export a job when it ends with exit code 0 (None when the config
    has no auto-export)."""
    if not destinations(config):
        return None

    def hook(job_id: str, code: int) -> None:
        if code == 0:
            export_job(output_dir, inv_dir, config, job_id, owner, say)

    return hook


def shell_lines(job_id: str, output_dir: str, dests: Sequence[str]) -> str:
    """For run.sh: after a successful run, ``launcher export`` to each destination when the
    launcher CLI is on PATH (the options come from the recorded config); otherwise a note."""
    from shlex import quote

    if not dests:
        return ""
    calls = "".join(
        f"    launcher export {quote(job_id)} --output-dir {quote(output_dir)} --dest "
        f"{quote(d)} || echo 'auto-export to {d} failed; the results are unchanged' >&2\n"
        for d in dests)
    return (f'if [ "$rc" -eq 0 ]; then\n'
            f"  if command -v launcher >/dev/null 2>&1; then\n{calls}"
            f"  else\n"
            f"    echo 'auto-export skipped: the launcher CLI is not on PATH; export later with "
            f"`launcher export {job_id} --dest {dests[0]}`' >&2\n"
            f"  fi\nfi\n")
