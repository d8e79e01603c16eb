"""Auto-export (execution.auto_export.destinations + export.<dest>.*): config validation at
the key written, the --dry-run plan, run.sh's export step, and, on the fake engine, an export
after each job that succeeded; a failed export is one line and a note, never a changed job."""

from __future__ import annotations

import json
import socket
import subprocess
from pathlib import Path

import pytest
import yaml

from launcher import autoexport, runs
from launcher.commands import run as run_cmd
from launcher.config import load_config
from launcher.errors import ConfigError
from launcher.prepare import ConfigOptions
from launcher.record import job_folder
from launcher.status import job_status
from tests.unit.fake_backend import Script
from tests.unit.fake_runs import results_yml


def write(tmp_path: Path, execution: dict | None = None, export: dict | None = None,
          tasks: tuple[str, ...] = ("gsm8k", "humaneval")) -> str:
    data: dict = {"execution": {"output_dir": str(tmp_path / "out"), **(execution or {})},
                  "target": {"api_endpoint": {"url": "http://ep:8000/v1/chat/completions",
                                              "model_id": "m"}},
                  "evaluation": {"tasks": [{"name": t} for t in tasks]}}
    if export is not None:
        data["export"] = export
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.parametrize("execution, export, key, needle", [
    ({"auto_export": {"destinations": ["local", "s3"]}}, None,
     "execution.auto_export.destinations[1]", "unknown destination 's3'"),
    ({"auto_export": {"destinations": ["gsheets"]}}, None,
     "execution.auto_export.destinations[0]", "gsheets is not built yet"),
    ({"auto_export": {"destinations": "mlflow"}}, None,
     "execution.auto_export.destinations", "expected a list"),
    ({"auto_export": {"destinations": ["mlflow"], "configs": {}}}, None,
     "execution.auto_export", "move them to the top-level export block"),
    (None, {"wandb": {"projcet": "x"}}, "export.wandb.projcet", "did you mean 'project'?"),
    (None, {"mlflow": {"tags": ["a"]}}, "export.mlflow.tags", "expected a mapping"),
    (None, {"wandb": {"tags": [{"a": 1}]}}, "export.wandb.tags", "expected a list of names"),
    (None, {"s3": {}}, "export.s3", "unknown destination 's3'"),
    (None, {"mlflow": {"tracking_uri": "https://me:tok3n@mlflow.example"}},
     "export.mlflow.tracking_uri", "MLFLOW_TRACKING_PASSWORD"),
])
def test_bad_keys_are_one_line_at_the_key(tmp_path, execution, export, key, needle):
    with pytest.raises(ConfigError) as exc:
        load_config(write(tmp_path, execution, export))
    text = str(exc.value)
    assert f"key '{key}'" in text and needle in text, text
    assert len(text.splitlines()) == 1


def test_options_from_the_config(tmp_path):
    _, raw = load_config(write(tmp_path, {"auto_export": {"destinations": ["wandb", "mlflow"]}},
                               {"wandb": {"project": "p", "tags": ["a", "b"], "log_artifacts":
                                          False, "extra_metadata": {"team": "evals"}},
                                "mlflow": {"tracking_uri": "http://h:5000",
                                           "tags": {"team": "evals"}}}))
    assert autoexport.destinations(raw) == [
        ("wandb", {"project": "p", "tags": "a,b", "log_artifacts": "false",
                   "extra_metadata.team": "evals"}),
        ("mlflow", {"tracking_uri": "http://h:5000", "tags.team": "evals"})]


def test_dry_run_shows_the_plan_and_run_sh_exports(tmp_path, capsys):
    path = write(tmp_path, {"auto_export": {"destinations": ["local"]}}, {"local": {
        "format": "csv"}})
    assert run_cmd.run(ConfigOptions(config=path), (), dry_run=True, host_output_dir=None) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    assert document["plan"]["auto_export"] == [
        "after each job that succeeds: export --dest local (format=csv)"]
    script = next(iter(document["scripts"].values()))
    assert "--dest local" in script and "command -v launcher" in script


def test_run_sh_without_the_launcher_cli_notes_it(tmp_path):
    """With only docker and a shell, run.sh keeps the job's result and says how to export."""
    job = "abc.0"
    text = ("rc=0\n" + autoexport.shell_lines(job, str(tmp_path), ["local"])
            + 'exit "$rc"\n')
    proc = subprocess.run(["bash", "-c", text], env={"PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True)
    assert proc.returncode == 0
    assert "auto-export skipped: the launcher CLI is not on PATH" in proc.stderr
    assert f"launcher export {job} --dest local" in proc.stderr


def start(tmp_path, fake, execution, export, scripts):
    fake.scripts.update(scripts)
    path = write(tmp_path, execution, export, tuple(scripts))
    code = run_cmd.run(ConfigOptions(config=path), (), dry_run=False, host_output_dir=None)
    (run,) = runs.all_runs(str(tmp_path / "out"))
    return code, run


def test_each_succeeded_job_is_exported(tmp_path, fake, capsys):
    scripts = {"gsm8k": Script(files={"results.yml": yaml.safe_dump(
                   results_yml("gsm8k", 0.75, 4))}),
               "humaneval": Script(exit_code=1)}
    code, run = start(tmp_path, fake, {"auto_export": {"destinations": ["local"]}},
                      {"local": {"filename": "scores.json"}}, scripts)
    assert code == 1  # humaneval failed; not exported
    rows = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert [(r["job_id"], r["task"], r["value"]) for r in rows] == [
        (f"{run.invocation_id}.0", "gsm8k", 0.75)]
    log = (Path(run.dir) / autoexport.LOG).read_text().splitlines()
    assert len(log) == 1 and log[0].endswith(f"{run.invocation_id}.0 local ok")


def test_a_failed_export_changes_nothing(tmp_path, fake, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    scripts = {"gsm8k": Script(files={"results.yml": yaml.safe_dump(
        results_yml("gsm8k", 0.5, 4))})}
    code, run = start(tmp_path, fake, {"auto_export": {"destinations": ["mlflow", "local"]}},
                      {"mlflow": {"tracking_uri": dead}}, scripts)
    assert code == 0
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "auto-export" in line]
    assert len(lines) == 1 and "to mlflow failed" in lines[0] and "unchanged" in lines[0], err
    job = run.invocation().jobs[0]
    assert job_status(job.job_id, job.task, job_folder(job), None,
                      launcher_alive=False).state == "success"
    log = (Path(run.dir) / autoexport.LOG).read_text().splitlines()
    assert [line.split()[2:4] for line in log] == [["mlflow", "failed:"], ["local", "ok"]]


def test_parallel_jobs_export_to_wandb_offline_from_their_threads(tmp_path, fake, capsys,
                                                                  monkeypatch):
    pytest.importorskip("wandb")
    from tests.unit.wandb_files import offline_runs

    for name in ("WANDB_MODE", "WANDB_DIR", "WANDB_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    folder = tmp_path / "wandb-dir"
    folder.mkdir()
    scripts = {task: Script(files={"results.yml": yaml.safe_dump(results_yml(task, v, 4))})
               for task, v in (("gsm8k", 0.25), ("humaneval", 0.75))}
    code, run = start(tmp_path, fake, {"mode": "parallel", "max_parallel": 2,
                                       "auto_export": {"destinations": ["wandb"]}},
                      {"wandb": {"mode": "offline", "dir": str(folder)}}, scripts)
    assert code == 0, capsys.readouterr().err
    found = {r.config["task"]: r.summary for r in offline_runs(folder)}
    assert found["gsm8k"]["gsm8k/accuracy"] == 0.25
    assert found["humaneval"]["humaneval/accuracy"] == 0.75


def test_resume_exports_the_jobs_it_reruns(tmp_path, fake, capsys):
    from launcher.commands import manage

    results = {"results.yml": yaml.safe_dump(results_yml("gsm8k", 0.5, 4))}
    code, run = start(tmp_path, fake, {"auto_export": {"destinations": ["local"]}}, {},
                      {"gsm8k": Script(exit_code=1)})
    assert code == 1 and not (Path(run.dir) / autoexport.LOG).exists()  # nothing succeeded
    fake.scripts["gsm8k"] = Script(files=results)
    assert manage.resume(str(tmp_path / "out"), run.invocation_id, detach=False) == 0
    rows = json.loads((tmp_path / "out" / "export.json").read_text())
    assert [(r["job_id"], r["value"]) for r in rows] == [(f"{run.invocation_id}.0", 0.5)]
    log = (Path(run.dir) / autoexport.LOG).read_text().splitlines()
    assert len(log) == 1 and log[0].endswith("local ok")


def test_the_reference_shape_loads(tmp_path):
    """As the reference's docs write it: destinations under execution, options at the top."""
    path = tmp_path / "nemo.yaml"
    path.write_text("""\
defaults:
  - execution: local
  - deployment: none
  - _self_
execution:
  output_dir: results
  auto_export:
    destinations: ["mlflow", "wandb"]
target:
  api_endpoint: {url: "http://ep:8000/v1/chat/completions", model_id: m}
export:
  mlflow:
    tracking_uri: http://mlflow:5000
    experiment_name: llm-evals
    tags: {framework: vllm}
  wandb:
    entity: myorg
    project: llm-benchmarks
    log_mode: multi_task
    tags: [baseline, llama]
evaluation:
  tasks:
    - name: gsm8k
""")
    config, raw = load_config(str(path))
    assert config.execution.auto_export.destinations == ["mlflow", "wandb"]
    assert [d for d, _ in autoexport.destinations(raw)] == ["mlflow", "wandb"]


def test_the_auto_export_log_is_appended_and_a_planted_link_is_not_followed(tmp_path):
    from launcher import store

    inv = tmp_path / "inv"
    inv.mkdir()
    owner = store.owner_of(str(inv))
    autoexport._note(str(inv), "one", owner)
    autoexport._note(str(inv), "two", owner)
    assert (inv / autoexport.LOG).read_text() == "one\ntwo\n"
    (inv / autoexport.LOG).unlink()
    secret = tmp_path / "secret"
    secret.write_text("root-only\n")
    (inv / autoexport.LOG).symlink_to(secret)
    autoexport._note(str(inv), "three", owner)  # refused quietly: the stderr line said it
    assert secret.read_text() == "root-only\n" and (inv / autoexport.LOG).is_symlink()
