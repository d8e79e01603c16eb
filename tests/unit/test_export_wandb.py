"""export --dest wandb in W&B's offline mode (the real `wandb` package, no server, no account),
read back from the transaction logs W&B writes (tests/unit/wandb_files.py): run ids derived
from the job or invocation id, metric values, config, tags, one run per job (per_task) or per
invocation (multi_task) however often it is exported, the results untouched. Marked
integration (real W&B processes, ~1 s per run)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from launcher import __version__, cli
from launcher.commands.export import export
from tests.unit.fake_runs import snapshot
from tests.unit.wandb_files import offline_runs

pytest.importorskip("wandb")
pytestmark = pytest.mark.integration


@pytest.fixture
def offline(tmp_path, monkeypatch):
    folder = tmp_path / "wandb-dir"
    folder.mkdir()
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(folder))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb-data"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    return folder


def test_per_task_twice_one_run_per_job(offline, finished, capsys):
    out, run = finished
    before = snapshot(out)
    o = ["export.wandb.project=evals", "export.wandb.tags=[nightly,m-a]",
         "export.wandb.description=first look", "export.wandb.extra_metadata.team=evals"]
    assert export(out, [run.invocation_id], "wandb", o) == 0
    said = capsys.readouterr().out
    assert "2 runs created" in said and "wandb sync" in said and len(said.splitlines()) == 1
    first = offline_runs(offline)
    assert export(out, [run.invocation_id], "wandb", o) == 0
    capsys.readouterr()
    assert snapshot(out) == before  # the results as they were

    found = offline_runs(offline)
    inv = run.invocation_id
    assert sorted(r.run_id for r in found) == [f"el-{inv}-0", f"el-{inv}-1"]  # no duplicate
    # and W&B's own uploader sees the same two runs
    sync = subprocess.run([str(Path(sys.executable).parent / "wandb"), "sync", "--dry-run"],
                          cwd=offline, capture_output=True, text=True, timeout=120)
    assert "Would sync 2 run(s)" in sync.stdout + sync.stderr, sync.stdout + sync.stderr
    assert {r.folder for r in found}.isdisjoint({r.folder for r in first})  # replaced
    by_task = {r.config["task"]: r for r in found}
    gsm = by_task["gsm8k"]
    assert gsm.exited and gsm.project == "evals" and gsm.name == f"{inv}.0"
    assert gsm.tags == ["nightly", "m-a"] and gsm.notes == "first look"
    assert gsm.job_type == "evaluation"
    assert gsm.summary["gsm8k/accuracy"] == 0.5
    assert gsm.summary["gsm8k/accuracy_stderr"] == pytest.approx((0.25 / 3) ** 0.5)
    assert [h["gsm8k/accuracy"] for h in gsm.history] == [0.5]
    assert by_task["humaneval"].summary["humaneval/accuracy"] == pytest.approx(2 / 3)
    assert "gsm8k/accuracy" not in by_task["humaneval"].summary
    config = gsm.config
    assert config["invocation_id"] == inv and config["job_id"] == f"{inv}.0"
    assert config["model_id"] == "m-a"
    assert config["endpoint_url"] == "http://ep:8000/v1/chat/completions"
    assert config["launcher_version"] == __version__
    assert config["extra_metadata"] == {"team": "evals"}
    assert isinstance(config["params"], dict)


def test_multi_task_one_run_per_invocation(offline, finished, capsys):
    out, run = finished
    o = ["export.wandb.log_mode=multi_task", "export.wandb.log_metrics=accuracy"]
    assert export(out, [f"{run.invocation_id}.1"], "wandb", o) == 0  # one job named...
    assert export(out, [run.invocation_id], "wandb", o) == 0
    (only,) = offline_runs(offline)  # ...still one run of the whole invocation
    assert only.run_id == f"el-{run.invocation_id}" and only.name == run.invocation_id
    assert only.summary["gsm8k/accuracy"] == 0.5
    assert only.summary["humaneval/accuracy"] == pytest.approx(2 / 3)
    assert sorted(only.config["tasks"]) == ["gsm8k", "humaneval"]
    assert only.config["tasks"]["gsm8k"]["job_id"] == f"{run.invocation_id}.0"


def test_metric_filter_and_no_artifacts(offline, finished, capsys):
    out, run = finished
    assert export(out, [f"{run.invocation_id}.0"], "wandb",
                  ["export.wandb.log_metrics=exact", "export.wandb.log_artifacts=false"]) == 0
    (only,) = offline_runs(offline)
    assert not any(k.startswith("gsm8k/") for k in only.summary)


def test_a_synced_offline_run_is_kept(offline, finished, capsys):
    """A folder `wandb sync` already uploaded stays; the new one resumes the same run id."""
    out, run = finished
    ident = f"{run.invocation_id}.0"
    assert export(out, [ident], "wandb", []) == 0
    (first,) = offline_runs(offline)
    (log,) = first.folder.glob("run-*.wandb")
    Path(f"{log}.synced").write_text("")
    assert export(out, [ident], "wandb", []) == 0
    found = offline_runs(offline)
    assert len(found) == 2 and {r.run_id for r in found} == {f"el-{run.invocation_id}-0"}


def test_online_without_credentials_is_one_line_exit_3(finished, capsys, monkeypatch,
                                                        tmp_path):
    out, run = finished
    before = snapshot(out)
    for name in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "cfg"))
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("WANDB_INIT_TIMEOUT", "10")
    monkeypatch.setenv("HOME", str(tmp_path))  # no ~/.netrc login
    monkeypatch.setattr("sys.argv", ["launcher", "export", run.invocation_id, "--output-dir",
                                     out, "--dest", "wandb"])
    with pytest.raises(SystemExit) as exc:
        cli.main()
    err = capsys.readouterr().err
    assert exc.value.code == 3, err
    lines = [line for line in err.strip().splitlines() if line.startswith("error: ")]
    assert len(lines) == 1 and "export.wandb.mode=offline" in lines[0], err
    assert snapshot(out) == before
