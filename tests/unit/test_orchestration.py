"""The orchestration layer in-process, against a FAKE engine behind the backend seam:
run → jobs → states → finish, failures, timeout, kill, resume decisions, detach/supervise,
labels. No real engine here."""

from __future__ import annotations

import json
import os
import threading
import time

import pytest
import yaml

from launcher import labels, record, runs
from launcher.commands import manage
from launcher.commands import run as run_cmd
from launcher.errors import ConfigError, EnvironmentProblem
from launcher.labels import LABEL_INVOCATION, LABEL_ROLE
from launcher.prepare import ConfigOptions
from launcher.record import JobState, Marker
from launcher.status import JobStatus
from tests.unit.fake_backend import Script


def write_config(tmp_path, tasks=None, **execution) -> str:
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump({
        "execution": {"output_dir": str(tmp_path / "out"), **execution},
        "target": {"api_endpoint": {"url": "http://ep:8000/v1/chat/completions",
                                    "model_id": "m"}},
        "evaluation": {"tasks": tasks or [{"name": "gsm8k"}, {"name": "humaneval"}]},
    }))
    return str(path)


def launch(path: str, detach: bool = False) -> int:
    return run_cmd.run(ConfigOptions(config=path), (), dry_run=False, host_output_dir=None,
                       detach=detach)


def only_run(tmp_path) -> runs.Run:
    (found,) = runs.all_runs(str(tmp_path / "out"))
    return found


def states(tmp_path, backend) -> list[JobStatus]:
    return manage.statuses(only_run(tmp_path), backend)


def test_run_records_runs_and_finishes(tmp_path, fake):
    assert launch(write_config(tmp_path)) == 0
    run = only_run(tmp_path)
    assert [s.state for s in states(tmp_path, fake)] == [JobState.SUCCESS, JobState.SUCCESS]
    assert run.record.ended is not None
    # the backend got exactly the recorded specs, and the probe ran first, labelled as ours
    probe, *jobs = fake.started
    assert probe.spec.labels[LABEL_ROLE] == "probe"
    assert probe.spec.labels[LABEL_INVOCATION] == run.invocation_id
    assert [w.spec for w in jobs] == [j.container for j in run.record.jobs]
    assert all(w.removed for w in fake.started)  # nothing left behind
    for name in ("run_all.sh", "run_all.sequential.sh"):
        assert (tmp_path / "out" / os.path.basename(run.dir) / name).is_file()
    assert ((tmp_path / "out" / os.path.basename(run.dir) / "run_all.sh").read_text()
            == (tmp_path / "out" / os.path.basename(run.dir) / "run_all.sequential.sh")
            .read_text())
    folder = record.job_folder(run.invocation().jobs[0])
    assert folder.read_exit().state == JobState.SUCCESS
    assert folder.has(Marker.PRE_START) and folder.has(Marker.RUNNING)
    with open(folder.stdout_log) as fh:
        assert "hello from the fake engine" in fh.read()


def test_failures_do_not_stop_others_and_are_explained(tmp_path, fake):
    fake.scripts["gsm8k"] = Script(exit_code=3)
    fake.scripts["humaneval"] = Script(oom=True)
    path = write_config(tmp_path, [{"name": "gsm8k"}, {"name": "humaneval"},
                                   {"name": "gsm8k"}], mode="parallel", max_parallel=2)
    assert launch(path) == 1
    got = states(tmp_path, fake)
    assert [(s.state, s.exit_code) for s in got] == [
        (JobState.FAILED, 3), (JobState.FAILED, 137), (JobState.FAILED, 3)]
    assert "OOM" in got[1].note


def test_timeout_stops_the_job_and_marks_it_failed(tmp_path, fake):
    fake.scripts["gsm8k"] = Script(hang=True)
    assert launch(write_config(tmp_path, [{"name": "gsm8k", "timeout": 0.2}])) == 1
    (job,) = states(tmp_path, fake)
    assert (job.state, job.exit_code) == (JobState.FAILED, 124)


def test_dead_endpoint_fails_before_anything_is_written(tmp_path, fake):
    fake.scripts["probe"] = Script(exit_code=3, output=b"endpoint down: fix the url\n")
    with pytest.raises(EnvironmentProblem, match="endpoint down"):
        launch(write_config(tmp_path))
    assert not (tmp_path / "out").exists() or not os.listdir(tmp_path / "out")
    assert len(fake.started) == 1


def test_kill_while_attached_then_resume_reruns_only_what_did_not_succeed(tmp_path, fake):
    fake.scripts["gsm8k"] = Script(hang=True)
    path = write_config(tmp_path, [{"name": "humaneval"}, {"name": "gsm8k"}])
    codes: list[int] = []
    attached = threading.Thread(target=lambda: codes.append(launch(path)), daemon=True)
    attached.start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        found = runs.all_runs(str(tmp_path / "out")) if (tmp_path / "out").is_dir() else []
        if found and record.job_folder(found[0].invocation().jobs[1]).has(Marker.RUNNING):
            break
        time.sleep(0.05)
    run = only_run(tmp_path)
    assert [s.state for s in states(tmp_path, fake)] == [JobState.SUCCESS, JobState.RUNNING]
    with pytest.raises(EnvironmentProblem, match="still running"):
        manage.resume_todo(states(tmp_path, fake), run.invocation_id)
    assert manage.kill(str(tmp_path / "out"), run.invocation_id[:6]) == 0
    attached.join(10)
    assert codes == [1]
    assert [s.state for s in states(tmp_path, fake)] == [JobState.SUCCESS, JobState.KILLED]
    assert not fake.find({LABEL_INVOCATION: run.invocation_id})

    assert manage.resume_todo(states(tmp_path, fake), run.invocation_id) == {
        f"{run.invocation_id}.1"}
    fake.scripts["gsm8k"] = Script()
    before = len(fake.jobs_started())
    assert manage.resume(str(tmp_path / "out"), run.invocation_id, detach=False) == 0
    rerun = fake.jobs_started()[before:]
    assert [w.spec.labels["eval-launcher.task"] for w in rerun] == ["gsm8k"]
    assert [s.state for s in states(tmp_path, fake)] == [JobState.SUCCESS, JobState.SUCCESS]
    assert manage.resume(str(tmp_path / "out"), run.invocation_id, detach=False) == 0
    assert len(fake.jobs_started()) == before + 1  # nothing left to rerun


def test_a_second_resume_while_one_runs_is_refused_and_changes_nothing(tmp_path, fake):
    fake.scripts["gsm8k"] = Script(exit_code=1)
    assert launch(write_config(tmp_path, [{"name": "gsm8k"}, {"name": "humaneval"}])) == 1
    run = only_run(tmp_path)
    gsm8k = record.job_folder(run.invocation().jobs[0])
    exit_before = gsm8k.read(Marker.EXIT)
    fake.scripts["gsm8k"] = Script()
    before = len(fake.jobs_started())
    with record.running_lock(run.dir, run.invocation_id):  # another launcher resumes it now
        with pytest.raises(EnvironmentProblem, match="being run by another launcher"):
            manage.resume(str(tmp_path / "out"), run.invocation_id, detach=False)
        assert len(fake.jobs_started()) == before  # nothing started
        assert gsm8k.read(Marker.EXIT) == exit_before  # nor marked
    assert manage.resume(str(tmp_path / "out"), run.invocation_id, detach=False) == 0
    assert [s.state for s in states(tmp_path, fake)] == [JobState.SUCCESS, JobState.SUCCESS]


def test_kill_of_an_orphaned_run_marks_pending_jobs_killed(tmp_path, fake):
    fake.scripts["gsm8k"] = Script(exit_code=1)
    assert launch(write_config(tmp_path, [{"name": "gsm8k"}, {"name": "humaneval"}])) == 1
    run = only_run(tmp_path)
    folder = record.job_folder(run.invocation().jobs[1])
    folder.clear(Marker.EXIT, Marker.RUNNING)  # as if the launcher died before starting it
    assert states(tmp_path, fake)[1].state == JobState.PENDING
    manage.kill(str(tmp_path / "out"), f"{run.invocation_id}.1")
    assert [s.state for s in states(tmp_path, fake)] == [JobState.FAILED, JobState.KILLED]


def test_detach_hands_jobs_and_labels_to_a_supervisor(tmp_path, fake, monkeypatch, capsys):
    monkeypatch.setenv(labels.LABELS_ENV, "team=evals,test-session=abc")
    assert launch(write_config(tmp_path), detach=True) == 0
    run = only_run(tmp_path)
    assert capsys.readouterr().out.strip().splitlines()[-1] == run.invocation_id
    (supervisor,) = [w for w in fake.started if w.spec.labels.get(LABEL_ROLE) == "supervisor"]
    assert supervisor.spec.labels["test-session"] == "abc"
    assert supervisor.spec.labels[LABEL_INVOCATION] == run.invocation_id
    assert supervisor.env[labels.LABELS_ENV] == "team=evals,test-session=abc"
    assert supervisor.spec.command[:3] == ("supervise", "--env-stdin", run.dir)
    assert supervisor.inspect_env == {}  # the values go over stdin, none in its Env
    assert not fake.jobs_started()  # the supervisor runs them
    # ... which it does, in its own process, with the labels it was given
    monkeypatch.setenv(labels.LABELS_ENV, supervisor.env[labels.LABELS_ENV])
    assert manage.supervise(run.dir) == 0
    assert [w.spec.labels["team"] for w in fake.jobs_started()] == ["evals", "evals"]
    assert [s.state for s in states(tmp_path, fake)] == [JobState.SUCCESS, JobState.SUCCESS]
    assert "gsm8k" in (tmp_path / "out" / os.path.basename(run.dir) / "supervisor.log"
                       ).read_text()


def test_extra_labels_reach_every_container(tmp_path, fake, monkeypatch):
    monkeypatch.setenv(labels.LABELS_ENV, "suite=unit")
    assert launch(write_config(tmp_path)) == 0
    assert {w.spec.labels.get("suite") for w in fake.started} == {"unit"}
    data = json.loads((tmp_path / "out" / os.path.basename(only_run(tmp_path).dir)
                       / "invocation.json").read_text())
    assert data["jobs"][0]["container"]["labels"]["suite"] == "unit"


@pytest.mark.parametrize("value", ["novalue", "a=b,=c", "bad key=x",
                                   "eval-launcher.invocation=x"])
def test_bad_extra_labels_are_a_config_error(value):
    with pytest.raises(ConfigError) as err:
        labels.extra_labels({labels.LABELS_ENV: value})
    assert labels.LABELS_ENV in err.value.message and "\n" not in err.value.message
    assert err.value.exit_code == 2


def test_extra_labels_parse():
    assert labels.extra_labels({labels.LABELS_ENV: " a=1, b.c/d=x=y ,"}) == {"a": "1",
                                                                             "b.c/d": "x=y"}
    assert labels.extra_labels({}) == {}


def test_bad_extra_labels_from_the_cli_are_one_line_exit_2(tmp_path):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "launcher", "run", "--config",
                           write_config(tmp_path), "--dry-run"], capture_output=True, text=True,
                          env={**os.environ, labels.LABELS_ENV: "oops"}, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {labels.LABELS_ENV}: expected comma-separated key=value labels, got 'oops'"]


def test_dry_run_shows_the_extra_labels_in_plan_and_scripts(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(labels.LABELS_ENV, "suite=dry")
    assert run_cmd.run(ConfigOptions(config=write_config(tmp_path)), (), dry_run=True,
                       host_output_dir=None) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    assert document["plan"]["jobs"][0]["labels"]["suite"] == "dry"
    scripts = document["scripts"]
    assert {k.rsplit("/", 1)[1] for k in scripts} == {"run.sh", "run_all.sh",
                                                      "run_all.sequential.sh"}
    assert all("--label suite=dry" in v for k, v in scripts.items() if k.endswith("run.sh"))
    assert not (tmp_path / "out").exists()


def test_a_supervisor_reads_its_env_values_from_one_stdin_line():
    read, write = os.pipe()
    try:
        os.write(write, json.dumps({"env": {"K": "v 1", "L": ""}}).encode() + b"\n")
        assert manage.receive_env(read, timeout=1) == {"K": "v 1", "L": ""}
        os.write(write, b'{"env": {"K": 1}}\n')  # not the launcher's line: one line, no trace
        with pytest.raises(EnvironmentProblem, match="does not hold the env values"):
            manage.receive_env(read, timeout=1)
        with pytest.raises(EnvironmentProblem, match="no env values arrived"):
            manage.receive_env(read, timeout=0.05)
    finally:
        os.close(read)
        os.close(write)


def test_the_supervisor_spec_keeps_values_out_of_its_env():
    from launcher.spec import supervisor_spec

    spec = supervisor_spec("img", "abc", ["supervise"], [], ["API_KEY"], {})
    assert spec.environment({"API_KEY": "sk-1"}) == {}
    assert spec.stdin_payload({"API_KEY": "sk-1"}) == b'{"env": {"API_KEY": "sk-1"}}\n'


def test_a_job_starting_between_facts_and_markers_is_asked_about_again(tmp_path, fake,
                                                                        monkeypatch):
    """Status reads the engine's facts, then the markers: a job whose stage.running appeared
    in between (its workload not in those facts yet) is not reported 'container gone'."""
    from launcher.status import ContainerFact

    assert launch(write_config(tmp_path, [{"name": "gsm8k"}])) == 0
    run = only_run(tmp_path)
    folder = record.job_folder(run.invocation().jobs[0])
    folder.clear(Marker.EXIT)  # as if it had just started: stage.running, no end yet
    answers = iter([{}, {run.invocation().jobs[0].job_id: ContainerFact("running")}])
    monkeypatch.setattr(fake, "job_states", lambda invocation_id: next(answers))
    (job,) = manage.statuses(run, fake)
    assert job.state == JobState.RUNNING and job.note == ""
