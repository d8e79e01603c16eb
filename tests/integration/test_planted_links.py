"""Issue 12 (High) on the real engine: the output folder belongs to an unprivileged user, who
plants links in an invocation folder; root's ``resume`` (the launcher container, over the
socket) refuses them in one line and never writes, truncates or chowns what they point at.
Every other planted path is covered in tests/unit/test_planted_links.py."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.integration.test_job_management import Bench, labelled
from tests.unit.planted import ATTACKER, OUTSIDE, refusals, snapshot

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(os.geteuid() != 0, reason="chowning to another uid needs root")]


class PlantedBench(Bench):
    """A Bench whose output folder is the attacker's, plus a root-only folder (``/outside`` in
    the launcher container) holding the file the attacker wants root to write."""

    def __init__(self, *args) -> None:
        super().__init__(*args)
        os.chown(self.results, ATTACKER, ATTACKER)
        self.outside = self.results.parent / "outside"
        self.outside.mkdir(mode=0o700)
        self.secret = self.outside / "secret"
        self.secret.write_bytes(OUTSIDE)
        self.secret.chmod(0o600)

    def volumes(self):
        return [*super().volumes(), (str(self.outside), "/outside", "rw")]


def plant_as_attacker(at: Path, target: str) -> None:
    """A link at ``at`` (a file, or a folder of files, before), owned by the attacker; its
    target is a path as the launcher container sees it."""
    if at.is_dir() and not at.is_symlink():
        for child in at.iterdir():
            child.unlink()
        at.rmdir()
    else:
        at.unlink()
    at.symlink_to(target)
    os.lchown(at, ATTACKER, ATTACKER)


def test_resume_refuses_a_planted_stdout_log_and_logs_folder(
        tmp_path, launcher_image, network, reference_endpoint, gsm8k_dir, docker_client):
    endpoint = reference_endpoint(1.0)
    b = PlantedBench(tmp_path, launcher_image, network.name, endpoint.url, gsm8k_dir)
    config = b.config([{"name": "gsm8k", "dataset_dir": "/data/empty"}])  # fails: resumable
    first = b.launcher("run", "--config", config)
    assert first.exit_code == 1, first.stderr
    (inv,) = b.invocations()
    invocation_id = inv.name.split("-", 1)[1]
    job = inv / "gsm8k.0"
    assert (job / "logs").stat().st_uid == ATTACKER  # the attacker's, as the folder is

    log = job / "logs" / "stdout.log"
    plant_as_attacker(log, "/outside/secret")
    before = snapshot(b.secret)
    resumed = b.launcher("resume", invocation_id)
    assert resumed.exit_code == 1, resumed.stderr
    line = refusals(resumed.stderr, f"/results/{inv.name}/gsm8k.0/logs/stdout.log")[0]
    assert "it is a symbolic link" in line
    assert snapshot(b.secret) == before  # not truncated, not written, not chowned
    assert os.readlink(log) == "/outside/secret"
    assert not labelled(docker_client, invocation_id)  # nothing started, nothing left

    plant_as_attacker(job / "logs", "/outside")  # the folder on the way, this time
    resumed = b.launcher("resume", invocation_id)
    assert resumed.exit_code == 1, resumed.stderr
    line = refusals(resumed.stderr, f"/results/{inv.name}/gsm8k.0/logs")[0]
    assert f"on the way is a symbolic link owned by uid {ATTACKER}" in line
    assert sorted(os.listdir(b.outside)) == ["secret"] and snapshot(b.secret) == before
