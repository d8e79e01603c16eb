"""``launcher info --config/--artifacts/--logs/--copy-artifacts/--copy-logs`` (the
reference's ``nel info`` options) on a finished invocation: what they print, what they copy,
and that a link or FIFO planted in a job's folder is left out, never followed."""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from tests.unit.cli_run import launcher


def info(monkeypatch, capsys, out: str, *args: str) -> tuple[int, str, str]:
    return launcher(monkeypatch, capsys, "info", *args, "--output-dir", out)


def test_config_is_the_recorded_one(finished, monkeypatch, capsys) -> None:
    out, run = finished
    code, text, _ = info(monkeypatch, capsys, out, run.invocation_id, "--config")
    assert code == 0
    shown = yaml.safe_load(text)
    assert shown == run.record.config
    assert [t["name"] for t in shown["evaluation"]["tasks"]] == ["gsm8k", "humaneval"]


def test_artifacts_lists_each_jobs_files(finished, monkeypatch, capsys) -> None:
    out, run = finished
    code, text, _ = info(monkeypatch, capsys, out, run.invocation_id, "--artifacts")
    assert code == 0
    jobs = run.invocation().jobs
    artifacts = Path(jobs[0].job_dir) / "artifacts"
    assert f"{jobs[0].job_id}  gsm8k  {artifacts}" in text
    size = (artifacts / "samples.jsonl").stat().st_size
    assert f"    samples.jsonl  {size}" in text and "    results.yml  " in text


def test_copy_artifacts_and_logs_of_one_job_leave_links_and_fifos_out(
        finished, monkeypatch, capsys, tmp_path: Path) -> None:
    out, run = finished
    job = run.invocation().jobs[1]
    artifacts = Path(job.job_dir) / "artifacts"
    secret = tmp_path / "outside.txt"
    secret.write_text("not yours")
    (artifacts / "planted").symlink_to(secret)
    os.mkfifo(artifacts / "pipe")
    (artifacts / "sub").mkdir()
    (artifacts / "sub" / "extra.json").write_text("{}")
    dest = tmp_path / "collected"
    code, text, _ = info(monkeypatch, capsys, out, job.job_id, "--copy-artifacts", str(dest),
                         "--copy-logs", str(dest))
    assert code == 0
    copied = dest / job.job_id / "artifacts"
    assert sorted(p.name for p in copied.iterdir()) == [
        "results.yml", "run_config.yml", "samples.jsonl", "sub"]
    assert (copied / "samples.jsonl").read_bytes() == (artifacts / "samples.jsonl").read_bytes()
    assert (copied / "sub" / "extra.json").read_text() == "{}"
    assert f"{job.job_id}  artifacts: 4 files -> {copied}; left out (not regular files): " \
           "pipe, planted" in text
    logs = sorted(p.name for p in (Path(job.job_dir) / "logs").iterdir())
    assert f"{job.job_id}  logs: {len(logs)} files -> {dest / job.job_id / 'logs'}" in text
    assert not logs or sorted(p.name for p in (dest / job.job_id / "logs").iterdir()) == logs
    assert not (dest / run.invocation().jobs[0].job_id).exists()  # only the job asked for
    # again: replaced whole, nothing else touched
    (artifacts / "results.yml").write_text("changed: true\n")
    info(monkeypatch, capsys, out, job.job_id, "--copy-artifacts", str(dest))
    assert (copied / "results.yml").read_text() == "changed: true\n"
    assert secret.read_text() == "not yours"


def test_a_destination_that_cannot_be_created_is_one_line(finished, monkeypatch, capsys,
                                                          tmp_path: Path) -> None:
    out, run = finished
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = info(monkeypatch, capsys, out, run.invocation_id, "--copy-logs",
                        str(blocker / "sub"))
    assert code == 3 and err.startswith("error: cannot create ") and len(err.splitlines()) == 1


def test_a_job_folder_replaced_by_a_link_is_not_followed(finished, monkeypatch, capsys,
                                                         tmp_path: Path) -> None:
    out, run = finished
    job = run.invocation().jobs[0]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "private.key").write_text("secret")
    artifacts = Path(job.job_dir) / "artifacts"
    for p in artifacts.iterdir():
        p.unlink()
    artifacts.rmdir()
    artifacts.symlink_to(elsewhere, target_is_directory=True)
    code, text, _ = info(monkeypatch, capsys, out, job.job_id, "--artifacts",
                         "--copy-artifacts", str(tmp_path / "dest"))
    assert code == 0
    assert "(not a folder: not followed)" in text and "private.key" not in text
    assert f"{job.job_id}  artifacts: 0 files" in text
    assert not (tmp_path / "dest" / job.job_id / "artifacts" / "private.key").exists()
