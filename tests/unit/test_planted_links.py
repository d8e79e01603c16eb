"""Issue 12 (High): the owner of an output folder plants links where the launcher or the
harness writes, hoping a root launcher follows them. Every such write refuses with one line
naming the path, starts nothing, and leaves what the link points at exactly as it was
(content, owner, mode), and the link itself too. Against the fake engine; the real engine's
``resume`` is in tests/integration/test_planted_links.py."""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path

import pytest
import yaml

from launcher import cli, record, runs, store
from launcher.commands import manage
from launcher.commands import run as run_cmd
from launcher.errors import UnsafePath
from launcher.harness import cache, datasets, progress, results
from launcher.harness.requestlog import FAILED_LOG, LOGS_DIR, JsonlLog
from launcher.prepare import ConfigOptions, prepare
from tests.unit.fake_backend import FakeBackend, Script
from tests.unit.planted import OUTSIDE, plant, refusals, snapshot

as_root = pytest.mark.skipif(os.geteuid() != 0, reason="links of another uid need root")


def config(tmp_path: Path) -> str:
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump({
        "execution": {"output_dir": str(tmp_path / "out")},
        "target": {"api_endpoint": {"url": "http://ep:8000/v1/chat/completions",
                                    "model_id": "m"}},
        "evaluation": {"tasks": [{"name": "gsm8k"}]},
    }))
    return str(path)


@pytest.fixture
def failed(tmp_path, fake: FakeBackend) -> runs.Run:
    """An invocation whose one job failed: ``resume`` reruns it (the fake job now succeeds)."""
    fake.scripts["gsm8k"] = Script(exit_code=1)
    assert run_cmd.run(ConfigOptions(config=config(tmp_path)), (), dry_run=False,
                       host_output_dir=None) == 1
    fake.scripts["gsm8k"] = Script()
    (found,) = runs.all_runs(str(tmp_path / "out"))
    return found


def resume_cli(monkeypatch, capsys, run: runs.Run) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["launcher", "resume", run.invocation_id, "--output-dir",
                                      os.path.dirname(run.dir)])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    code = exited.value.code
    assert isinstance(code, int)
    return code, capsys.readouterr().err


JOB_FILES = ["logs/stdout.log", "logs/stage.pre-start", "logs/stage.running", "logs/stage.exit",
             "logs/stage.killed"]


@pytest.mark.parametrize("rel", JOB_FILES)
def test_resume_refuses_a_link_at_each_job_file(rel, failed, fake, outside, monkeypatch,
                                                capsys):
    at = Path(failed.invocation().jobs[0].job_dir) / rel
    plant(at, outside)
    before, started = snapshot(outside), len(fake.jobs_started())
    code, err = resume_cli(monkeypatch, capsys, failed)
    assert code == 1
    refusals(err, at)
    assert snapshot(outside) == before
    assert os.readlink(at) == str(outside)  # the link is left as it was, too
    assert len(fake.jobs_started()) == started  # refused before the container starts


def test_resume_refuses_a_link_at_the_lock(failed, fake, outside, monkeypatch, capsys):
    at = Path(failed.dir) / record.LOCK
    plant(at, outside)
    before = snapshot(outside)
    code, err = resume_cli(monkeypatch, capsys, failed)
    assert code == 3
    assert refusals(err, at)[0].startswith("error: refusing to write")
    assert snapshot(outside) == before


def test_the_record_and_the_supervisor_log_refuse_links(failed, outside, capsys):
    owner = store.owner_of(failed.dir)
    at = Path(failed.dir) / record.RECORD
    plant(at, outside)
    with pytest.raises(UnsafePath) as refused:
        record.write(failed.dir, failed.record, owner)
    refusals(refused.value.message, at)

    log = Path(failed.dir) / manage.SUPERVISOR_LOG
    plant(log, outside)
    assert manage.supervise(failed.dir) == 3
    refusals(capsys.readouterr().err, log)
    assert snapshot(outside)[0] == OUTSIDE


def prepared_folder(tmp_path: Path, fake: FakeBackend):
    """What ``run`` has before it writes the invocation folder (its name known in advance)."""
    prepared = prepare(ConfigOptions(config=config(tmp_path)), ())
    inv = prepared.invocation
    host, jobs = record.resolve_jobs(inv, fake.path_translator(inv.output_dir), None, {})
    rec = record.build(inv, host, jobs, prepared.loaded.raw, {}, None, record.Execution())
    return prepared, rec


@pytest.mark.parametrize("rel", ["invocation.json", "run_all.sh", "run_all.sequential.sh",
                                 "gsm8k.0/run.sh", "gsm8k.0/artifacts/run_config.yml"])
def test_writing_the_invocation_folder_refuses_a_link_at_each_file(rel, tmp_path, fake,
                                                                   outside):
    prepared, rec = prepared_folder(tmp_path, fake)
    at = Path(prepared.invocation.dir) / rel
    plant(at, outside)
    before = snapshot(outside)
    with pytest.raises(UnsafePath) as refused:
        run_cmd.write_invocation(prepared, rec, store.owner_of(str(tmp_path)))
    refusals(refused.value.message, at)
    assert snapshot(outside) == before


def harness_writes() -> list[tuple[str, object]]:
    def jsonl(out: str) -> None:
        JsonlLog(os.path.join(out, LOGS_DIR, FAILED_LOG), None).write({"error": "x"})

    return [
        ("results.yml", lambda out: results.write_results(out, {"score": 1})),
        ("samples.jsonl", lambda out: results.write_samples(out, [{"id": 1}])),
        ("cache/responses.sqlite", lambda out: cache.open_cache(cache.cache_path(out))),
        ("cache/responses.sqlite-wal", lambda out: cache.open_cache(cache.cache_path(out))),
        (f"{LOGS_DIR}/{FAILED_LOG}", jsonl),
        ("gsm8k/test.jsonl", lambda out: datasets.fetch_gsm8k(Path(out) / "gsm8k" / "test.jsonl")),
    ]


@pytest.mark.parametrize(("rel", "write"), harness_writes(), ids=[r for r, _ in harness_writes()])
def test_the_harness_refuses_a_link_at_each_file_it_writes(rel, write, tmp_path, outside,
                                                           monkeypatch):
    monkeypatch.setenv("EVAL_LAUNCHER_GSM8K_URL", "file:///nonexistent")  # refused before this
    out = tmp_path / "results"
    at = out / rel
    plant(at, outside)
    before = snapshot(outside)
    with pytest.raises(UnsafePath) as refused:
        write(str(out))
    refusals(refused.value.message, at)
    assert snapshot(outside) == before


def test_progress_is_best_effort_and_never_follows_a_link(tmp_path, outside):
    plant(tmp_path / progress.PROGRESS_FILE, outside)
    before = snapshot(outside)
    progress.ProgressFile(str(tmp_path), 10).update(3)  # skipped, no error
    assert snapshot(outside) == before


@as_root
@pytest.mark.parametrize("rel", ["gsm8k.0", "gsm8k.0/logs"])
def test_a_folder_on_the_way_linked_elsewhere_by_another_user_is_refused(
        rel, failed, fake, outside, monkeypatch, capsys):
    at = Path(failed.dir) / rel
    plant(at, outside.parent)
    listing, before = sorted(os.listdir(outside.parent)), snapshot(outside)
    code, err = resume_cli(monkeypatch, capsys, failed)
    assert code == 1
    assert "on the way is a symbolic link owned by uid 4242" in refusals(err, at)[0]
    assert sorted(os.listdir(outside.parent)) == listing and snapshot(outside) == before


def test_reads_do_not_follow_links_either_and_a_fifo_does_not_hang_status(
        failed, outside, monkeypatch, capsys):
    job = Path(failed.invocation().jobs[0].job_dir)
    plant(job / "logs" / "stdout.log", outside)
    monkeypatch.setattr(sys, "argv", ["launcher", "logs", failed.invocation_id, "--output-dir",
                                      os.path.dirname(failed.dir)])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    out, err = capsys.readouterr()
    assert exited.value.code == 3
    assert refusals(err, job / "logs" / "stdout.log")[0].startswith("error: refusing to read")
    assert OUTSIDE.decode().strip() not in out + err  # root is not shown the other file

    (job / "logs" / "stage.exit").unlink()
    os.mkfifo(job / "logs" / "stage.exit")  # opening it for reading would block forever
    plant(job / "artifacts" / "results.yml", outside)
    codes: list[int] = []
    status = threading.Thread(target=lambda: codes.append(
        manage.status(os.path.dirname(failed.dir), failed.invocation_id, as_json=True)),
        daemon=True)
    status.start()
    status.join(10)
    assert codes == [0]
    assert OUTSIDE.decode().strip() not in capsys.readouterr().out

    plant(Path(failed.dir) / record.RECORD, outside)
    assert record.load(failed.dir) is None  # not this file's shape: as if missing
