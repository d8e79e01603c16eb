"""``launcher info`` beyond the summary, as the reference's ``nel info`` has it: the recorded
config (``--config``), each job's artifacts and logs with their files (``--artifacts``,
``--logs``), and copies of them into a folder of your own (``--copy-artifacts DIR``,
``--copy-logs DIR``: ``DIR/<job id>/artifacts|logs``).

Copies read the output folder without following links (``safe_fs``): a link or FIFO planted
in a job's folder is left out and named, never followed, so a shared output folder cannot
make the copy pull in another file. Files already in ``DIR`` are replaced whole.
"""

from __future__ import annotations

import os
import shutil
import stat
import sys
from collections.abc import Iterator, Sequence

import yaml

from launcher import safe_fs
from launcher.errors import EnvironmentProblem, LauncherError
from launcher.plan import Job
from launcher.record import job_folder
from launcher.runs import Run


def jobs_of(run: Run, index: int | None) -> list[Job]:
    return [j for j in run.invocation().jobs if index is None or j.index == index]


def show_config(run: Run) -> None:
    """The config the invocation ran with, as recorded (secret values never are)."""
    sys.stdout.write(yaml.safe_dump(run.record.config or {}, sort_keys=False))


def _folder(job: Job, kind: str) -> str:
    folder = job_folder(job)
    return folder.artifacts if kind == "artifacts" else folder.logs


def _files(root: str) -> Iterator[tuple[str, str, int]]:
    """(relative path, kind, size) under ``root``, links not followed: kind is ``file``,
    ``dir`` or what else it is (``link``, ``special file``)."""
    for top, dirs, files in os.walk(root, followlinks=False):
        dirs.sort()
        for name in sorted(dirs + files):
            path = os.path.join(top, name)
            try:
                found = os.lstat(path)
            except OSError:  # gone since it was listed
                continue
            mode = found.st_mode
            kind = ("file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode)
                    else "link" if stat.S_ISLNK(mode) else "special file")
            yield os.path.relpath(path, root), kind, found.st_size


def show_files(run: Run, index: int | None, kind: str) -> None:
    """Each job's ``kind`` folder and the files in it (sizes in bytes)."""
    for job in jobs_of(run, index):
        root = _folder(job, kind)
        print(f"{job.job_id}  {job.task}  {root}")
        if os.path.islink(root) or not os.path.isdir(root):
            print("    (not there)" if not os.path.lexists(root) else "    (not a folder: "
                  "not followed)")
            continue
        for rel, what, size in _files(root):
            if what == "file":
                print(f"    {rel}  {size}")
            elif what != "dir":
                print(f"    {rel}  ({what}, not copied)")


def copy(run: Run, index: int | None, kinds: Sequence[str], dest: str) -> int:
    """Copy each job's ``kinds`` folders to ``dest/<job id>/<kind>``; one line per job."""
    dest = os.path.abspath(os.path.expanduser(dest))
    try:
        os.makedirs(dest, exist_ok=True)
    except OSError as exc:
        raise EnvironmentProblem(f"cannot create {dest} ({exc.strerror}): choose a folder you "
                                 "can write") from None
    for job in jobs_of(run, index):
        for kind in kinds:
            target = os.path.join(dest, job.job_id, kind)
            copied, skipped = _copy_tree(_folder(job, kind), target)
            note = f"; left out (not regular files): {', '.join(skipped)}" if skipped else ""
            print(f"{job.job_id}  {kind}: {copied} files -> {target}{note}")
    return 0


def _copy_tree(root: str, target: str) -> tuple[int, list[str]]:
    if not os.path.isdir(root) or os.path.islink(root):
        return 0, []
    copied, skipped = 0, []
    for rel, what, _ in _files(root):
        if what == "dir":
            continue
        if what != "file":
            skipped.append(rel)
            continue
        out = os.path.join(target, rel)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        try:
            with safe_fs.open_read(os.path.join(root, rel)) as src, \
                    safe_fs.atomic_writer(out, sync=False) as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except LauncherError:  # replaced by a link or special file since it was listed
            skipped.append(rel)
            continue
        copied += 1
    return copied, skipped
