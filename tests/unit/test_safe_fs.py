"""launcher.safe_fs, the one place files are written in folders another user may control
(issue 12): what it follows, what it refuses, what it gives away. The writers that use it are
tested in test_planted_links.py."""

from __future__ import annotations

import os
import stat
import threading

import pytest

from launcher import safe_fs
from launcher.errors import UnsafePath
from tests.unit.planted import ATTACKER, plant, snapshot

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="links of another uid need root")


def test_links_of_root_or_ours_on_the_way_are_followed(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "alias").symlink_to(real)  # ours, e.g. a home folder moved to another disk
    safe_fs.make_dirs(str(tmp_path / "alias" / "made"))
    safe_fs.write_atomic(str(tmp_path / "alias" / "made" / "x"), "hello\n", 0o640)
    assert (real / "made" / "x").read_text() == "hello\n"
    assert stat.S_IMODE((real / "made" / "x").stat().st_mode) == 0o640


def test_a_hard_link_or_a_fifo_is_refused_without_hanging(tmp_path, outside):
    hard = tmp_path / "stdout.log"
    os.link(outside, hard)
    before = snapshot(outside)
    with pytest.raises(UnsafePath, match="it has 2 hard links"):
        safe_fs.open_truncate(str(hard))
    assert snapshot(outside) == before

    fifo = tmp_path / "stage.exit"
    os.mkfifo(fifo)
    errors: list[BaseException] = []

    def write() -> None:
        try:
            safe_fs.open_truncate(str(fifo))
        except BaseException as e:  # looked at below
            errors.append(e)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    writer.join(5)
    assert not writer.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], UnsafePath)
    assert "it is a FIFO" in str(errors[0])


@as_root
def test_what_is_created_is_given_to_the_owner_and_nothing_else_is(tmp_path, outside):
    owner = safe_fs.Owner(ATTACKER, ATTACKER)
    safe_fs.make_dirs(str(tmp_path / "a" / "b"), owner)
    safe_fs.write_atomic(str(tmp_path / "a" / "b" / "f"), "x", 0o644, owner)
    for path in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "f"):
        assert (path.stat().st_uid, path.stat().st_gid) == (ATTACKER, ATTACKER)
    assert (tmp_path.stat().st_uid, outside.stat().st_uid) == (0, 0)
    assert [p.name for p in (tmp_path / "a" / "b").iterdir()] == ["f"]  # no temp file left


def test_unlink_and_replace_move_no_link_target(tmp_path, outside):
    at = tmp_path / "stage.running"
    plant(at, outside)
    before = snapshot(outside)
    with pytest.raises(UnsafePath, match="it is a symbolic link"):
        safe_fs.unlink(str(at))
    with pytest.raises(UnsafePath):
        safe_fs.replace(str(tmp_path / "missing"), str(at))
    assert os.readlink(at) == str(outside) and snapshot(outside) == before
    safe_fs.unlink(str(tmp_path / "missing"))  # missing is fine
    assert safe_fs.check_file(str(tmp_path / "missing")) is False


@as_root
def test_a_foreign_link_on_the_way_is_refused_in_one_line(tmp_path, outside):
    evil = tmp_path / "inv\nx"  # a newline in a name cannot split the error line
    plant(evil, outside.parent)
    with pytest.raises(UnsafePath) as refused:
        safe_fs.write_atomic(str(evil / "logs" / "stage.exit"), "x")
    assert "\n" not in refused.value.message
    assert "inv\\nx on the way is a symbolic link owned by uid 4242" in refused.value.message
    assert refused.value.exit_code == 3
    assert sorted(os.listdir(outside.parent)) == ["secret"]


def test_an_existing_file_is_truncated_only_after_the_checks(tmp_path):
    log = tmp_path / "stdout.log"
    log.write_bytes(b"old run\n")
    with safe_fs.open_truncate(str(log)) as fh:
        fh.write(b"new\n")
    with safe_fs.open_append(str(log)) as fh:
        fh.write(b"more\n")
    assert log.read_bytes() == b"new\nmore\n"
    assert stat.S_ISREG(log.lstat().st_mode)


@as_root
def test_the_harness_cache_dir_skips_a_candidate_behind_a_foreign_link(tmp_path, outside,
                                                                       monkeypatch):
    from launcher.harness import datasets

    plant(tmp_path / "evil", outside.parent)
    monkeypatch.setenv("EVAL_LAUNCHER_CACHE", str(tmp_path / "evil" / "cache"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert datasets.cache_dir() == tmp_path / "home" / ".cache" / "eval-launcher"
    assert sorted(os.listdir(outside.parent)) == ["secret"]


def test_a_hard_linked_file_is_replaced_whole_never_written_in_place(tmp_path, outside):
    """A ``cp -al`` snapshot shares files by hard link: renaming over one leaves the others."""
    marker = tmp_path / "stage.exit"
    os.link(outside, marker)
    before = snapshot(outside)
    safe_fs.write_atomic(str(marker), "2026-01-01T00:00:00Z 0 success\n")
    assert marker.read_text() == "2026-01-01T00:00:00Z 0 success\n"
    assert snapshot(outside)[:4] == before[:4]  # one link fewer, nothing else
    os.link(outside, marker.with_name("stage.running"))
    safe_fs.unlink(str(marker.with_name("stage.running")))
    assert snapshot(outside) == before[:4] + (1,)
