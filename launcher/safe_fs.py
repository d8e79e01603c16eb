"""Writing in folders another user may control, without following links.

The output folder may belong to another, unprivileged user while the launcher runs as root. That
user can put a symbolic link (or a FIFO, or a hard link) where the launcher is about to write
(``<job>/logs/stdout.log -> /etc/shadow``, ``<job>/logs -> /etc/cron.d``), hoping root follows
it. Every file the launcher and the harness write goes through this module, which:

* reaches the folder one component at a time with ``openat`` from ``/`` (``O_DIRECTORY |
  O_NOFOLLOW``); a symbolic link on the way is followed only if root or we own it (so
  ``/tmp -> private/tmp`` works, and a link the folder's owner planted is refused);
* opens the file relative to that folder's fd with ``O_NOFOLLOW`` (and ``O_NONBLOCK``, so a FIFO
  cannot hang us), checks that it is a regular file with one link, and only then truncates it;
* writes whole files through a temp file created ``O_CREAT | O_EXCL | O_NOFOLLOW`` in the same
  folder and moved in with ``renameat`` (which replaces rather than follows what is at the
  destination; a link found there is refused all the same);
* gives what it creates to the folder's owner with ``fchown`` / ``fchownat(AT_SYMLINK_NOFOLLOW)``.

What is not as it should be raises :class:`UnsafePath` (one line, exit 3). No link and no link
target is ever followed, deleted or changed. Standard library only: the harness uses it too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Iterator
from typing import BinaryIO, NamedTuple

from launcher.errors import UnsafePath

_DIR_FLAGS = os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC | getattr(os, "O_PATH", os.O_RDONLY)
_FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_MAX_LINKS = 40  # as the kernel's MAXSYMLINKS


class Owner(NamedTuple):
    """Who gets what we create (the output folder's owner)."""

    uid: int
    gid: int

    @property
    def user(self) -> str:
        return f"{self.uid}:{self.gid}"


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a device or special file"


def _give_fd(fd: int, owner: Owner | None) -> None:
    if owner is not None and os.geteuid() == 0:
        os.fchown(fd, owner.uid, owner.gid)


def _split(path: str) -> list[str]:
    return [p for p in path.split("/") if p not in ("", ".")]


def open_dir(path: str, *, create: bool = False, mode: int = 0o777,
             owner: Owner | None = None) -> int:
    """An fd (``O_PATH`` where there is one) of folder ``path``, reached from ``/`` without
    following links other than root's or ours. ``create``: make the missing folders (``mkdir
    -p``, each given to ``owner`` when we are root). The caller closes the fd."""
    path = os.path.abspath(path)
    parts = _split(path)
    fd = os.open("/", _DIR_FLAGS)
    where, hops = "/", 0
    try:
        while parts:
            name = parts.pop(0)
            try:
                st = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                if not create:
                    raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT),
                                            path) from None
                with contextlib.suppress(FileExistsError):  # else made meanwhile: look again
                    os.mkdir(name, mode, dir_fd=fd)
                    if owner is not None and os.geteuid() == 0:
                        os.chown(name, owner.uid, owner.gid, dir_fd=fd, follow_symlinks=False)
                parts.insert(0, name)
                continue
            here = os.path.join(where, name)
            if stat.S_ISLNK(st.st_mode):
                if st.st_uid not in (0, os.geteuid()):
                    raise UnsafePath(path, f"{here} on the way is a symbolic link owned by uid "
                                           f"{st.st_uid} (only root's or the launcher's own "
                                           "links are followed)")
                hops += 1
                if hops > _MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
                target = os.readlink(name, dir_fd=fd)
                parts[:0] = _split(target)
                if target.startswith("/"):
                    os.close(fd)
                    fd, where = -1, "/"
                    fd = os.open("/", _DIR_FLAGS)
                continue
            if not stat.S_ISDIR(st.st_mode):  # a plain mistake, not a trap: ENOTDIR
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), here)
            try:
                child = os.open(name, _DIR_FLAGS, dir_fd=fd)
            except OSError as e:  # swapped for a link since the stat
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise UnsafePath(path, f"{here} on the way is not a folder") from None
                raise
            os.close(fd)
            fd, where = child, here
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                raise UnsafePath(path, f"{here} on the way is not a folder")
        return fd
    except BaseException:
        if fd >= 0:
            os.close(fd)
        raise


def make_dirs(path: str, owner: Owner | None = None, mode: int = 0o777) -> None:
    """``mkdir -p path``, links refused; every folder created is given to ``owner``."""
    os.close(open_dir(path, create=True, mode=mode, owner=owner))


@contextlib.contextmanager
def _parent(path: str) -> Iterator[tuple[int, str]]:
    folder, name = os.path.split(os.path.abspath(path))
    fd = open_dir(folder)
    try:
        yield fd, name
    finally:
        os.close(fd)


def _check_file(dir_fd: int, name: str, path: str, *, replaced: bool = False) -> bool:
    """Whether ``name`` exists in ``dir_fd``; UnsafePath unless it is a regular file with one
    link (``replaced``: a file about to be renamed over or removed may have more, e.g. in a
    ``cp -al`` snapshot: the other names keep their content)."""
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    if not stat.S_ISREG(st.st_mode):
        raise UnsafePath(path, f"it is {_kind(st.st_mode)}, not a regular file")
    if st.st_nlink > 1 and not replaced:
        raise UnsafePath(path, f"it has {st.st_nlink} hard links")
    return True


def _open_at(dir_fd: int, name: str, flags: int, mode: int, owner: Owner | None,
             path: str) -> int:
    truncate = flags & os.O_TRUNC
    try:
        fd = os.open(name, (flags & ~os.O_TRUNC) | _FILE_FLAGS, mode, dir_fd=dir_fd)
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENXIO, errno.EISDIR, errno.ENOTDIR):
            _check_file(dir_fd, name, path)  # raises UnsafePath saying what is there
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafePath(path, f"it is {_kind(st.st_mode)}, not a regular file")
        if st.st_nlink > 1:
            raise UnsafePath(path, f"it has {st.st_nlink} hard links")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        if truncate:
            os.ftruncate(fd, 0)
        _give_fd(fd, owner)
        return fd
    except BaseException:
        os.close(fd)
        raise


def open_file(path: str, flags: int, mode: int = 0o644, owner: Owner | None = None) -> int:
    """``os.open(path, flags, mode)`` that follows no link on the way or at the end, refuses
    anything but a regular file with one link (before ``O_TRUNC`` applies), and gives the file
    to ``owner`` when we are root. The caller closes the fd."""
    with _parent(path) as (dir_fd, name):
        return _open_at(dir_fd, name, flags, mode, owner, path)


def open_read(path: str) -> BinaryIO:
    """``open(path, "rb")`` without following links: a FIFO cannot hang the reader, and a link
    planted in the output folder cannot make root print another file."""
    try:
        fd = open_file(path, os.O_RDONLY)
    except UnsafePath as e:
        raise UnsafePath(e.path, e.why, "read") from None
    return os.fdopen(fd, "rb")


def open_append(path: str, owner: Owner | None = None) -> BinaryIO:
    """``open(path, "ab")`` without following links (see :func:`open_file`)."""
    fd = open_file(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, owner=owner)
    return os.fdopen(fd, "ab")


def open_truncate(path: str, owner: Owner | None = None) -> BinaryIO:
    """``open(path, "wb")`` without following links (see :func:`open_file`)."""
    fd = open_file(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, owner=owner)
    return os.fdopen(fd, "wb")


@contextlib.contextmanager
def atomic_writer(path: str, mode: int = 0o644, owner: Owner | None = None, *,
                  sync: bool = True) -> Iterator[BinaryIO]:
    """Write ``path`` whole or not at all: a temp file (``O_EXCL | O_NOFOLLOW``) in the same
    folder, fsynced (unless not ``sync``), given ``mode`` and ``owner``, then moved over
    ``path`` by ``renameat``. Readers never see half a file; a link or special file at
    ``path`` is refused."""
    with _parent(path) as (dir_fd, name):
        _check_file(dir_fd, name, path, replaced=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        while True:
            tmp = f".{name}.{secrets.token_hex(4)}"
            try:
                fd = os.open(tmp, flags, 0o600, dir_fd=dir_fd)
                break
            except FileExistsError:
                continue
        try:
            with os.fdopen(fd, "wb") as fh:
                yield fh
                fh.flush()
                os.fchmod(fh.fileno(), mode)
                _give_fd(fh.fileno(), owner)
                if sync:
                    os.fsync(fh.fileno())
            _check_file(dir_fd, name, path, replaced=True)
            os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise


def write_atomic(path: str, data: str | bytes, mode: int = 0o644,
                 owner: Owner | None = None, *, sync: bool = True) -> None:
    """:func:`atomic_writer` for ``data`` (text is written as UTF-8)."""
    with atomic_writer(path, mode, owner, sync=sync) as fh:
        fh.write(data.encode("utf-8") if isinstance(data, str) else data)


def unlink(path: str, missing_ok: bool = True) -> None:
    """Remove the file ``path``; a link or special file there is refused, not removed."""
    try:
        with _parent(path) as (dir_fd, name):
            if _check_file(dir_fd, name, path, replaced=True):
                os.unlink(name, dir_fd=dir_fd)
            elif not missing_ok:
                raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    except FileNotFoundError:
        if not missing_ok:
            raise


def check_file(path: str) -> bool:
    """Whether ``path`` exists, reached without links; UnsafePath unless it is a regular file
    with one link. For files another library opens by name (SQLite): a check, not a guarantee
    (the name could be swapped between this call and that open)."""
    try:
        with _parent(path) as (dir_fd, name):
            return _check_file(dir_fd, name, path)
    except FileNotFoundError:
        return False


def replace(src: str, dst: str) -> None:
    """Rename ``src`` to ``dst`` in the same folder (moves a link, never what it points at)."""
    folder, src_name = os.path.split(os.path.abspath(src))
    dst_folder, dst_name = os.path.split(os.path.abspath(dst))
    if folder != dst_folder:
        raise ValueError(f"{src} and {dst} are not in one folder")
    with _parent(src) as (dir_fd, _):
        _check_file(dir_fd, dst_name, dst, replaced=True)
        os.replace(src_name, dst_name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
