"""A deployment's model server around the jobs, in-process against the fake engine: one
server for all the jobs (parallel too), started before them and removed after them with its
network; a server that exits early or is never ready fails the run before any job starts."""

from __future__ import annotations

import json
import os
import signal
import threading
import time

import pytest
import yaml

from launcher import runs, server
from launcher.commands import manage
from launcher.labels import LABEL_ROLE
from launcher.record import JobState
from tests.unit.fake_backend import FakeBackend, Script
from tests.unit.test_orchestration import launch, only_run, states


def write_config(tmp_path, **execution) -> str:
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump({
        "defaults": [{"execution": "local"}, {"deployment": "generic"}, "_self_"],
        "execution": {"output_dir": str(tmp_path / "out"), **execution},
        "deployment": {"image": "eval-launcher:latest", "served_model_name": "m",
                       "command": "python -m launcher.testing.reference_endpoint"},
        "evaluation": {"tasks": [{"name": "gsm8k"}, {"name": "humaneval"}]},
    }))
    return str(path)


def roles(backend: FakeBackend) -> list[str]:
    return [w.spec.labels.get(LABEL_ROLE, "job") for w in backend.started]


def test_one_server_for_parallel_jobs(tmp_path, fake: FakeBackend, capsys):
    fake.scripts.update(server=Script(hang=True, output=b"serving\n"), waiter=Script())
    assert launch(write_config(tmp_path, mode="parallel", max_parallel=2)) == 0
    assert roles(fake) == ["server", "waiter", "job", "job"]
    srv = fake.started[0]
    network = srv.spec.network
    assert network and srv.spec.aliases == ("eval-launcher-server",)
    assert all(w.spec.network == network for w in fake.started)
    assert fake.networks_created == [network] and not fake.networks
    assert all(w.removed for w in fake.started)  # nothing left: server, waiter, jobs
    run = only_run(tmp_path)
    assert [s.state for s in states(tmp_path, fake)] == [JobState.SUCCESS] * 2
    assert server.read_state(run.dir)[0] == server.ServerState.STOPPED
    with open(os.path.join(run.dir, "server.log"), encoding="utf-8") as fh:
        assert "serving" in fh.read()
    capsys.readouterr()
    assert manage.status(str(tmp_path / "out"), run.invocation_id, as_json=False) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.startswith("server generic eval-launcher:latest "
                           "(http://eval-launcher-server:8000/health): stopped "), line
    assert line.endswith(f"no container; log {run.dir}/server.log"), line
    assert manage.info(str(tmp_path / "out"), run.invocation_id) == 0
    assert f"server       eval-launcher:latest  {run.dir}/server.sh start|stop" in (
        capsys.readouterr().out)
    # <id>.server names the server: its state as JSON, its log
    assert manage.status(str(tmp_path / "out"), f"{run.invocation_id}.server", True) == 0
    found = json.loads(capsys.readouterr().out)
    assert found["id"] == f"{run.invocation_id}.server" and found["state"] == "stopped"
    assert found["container"] is None and found["log"] == f"{run.dir}/server.log"
    assert manage.logs(str(tmp_path / "out"), f"{run.invocation_id[:6]}.server", True) == 0
    assert capsys.readouterr().out == "serving\n"  # followed: it stopped, so it returns


@pytest.mark.parametrize(("waiter", "text"), [
    (Script(), "exited with code 1 before it was ready"),  # the server dies while loading
    (Script(exit_code=3, output=b"model server not ready after 5s: ...\n"), "not ready after"),
])
def test_server_failure_starts_no_job(tmp_path, fake: FakeBackend, waiter: Script, text: str):
    dies = Script(exit_code=1, output=b"loading\nerror: CUDA out of memory\n")
    fake.scripts.update(server=dies if "exited" in text else Script(hang=True), waiter=waiter)
    with pytest.raises(server.ServerFailed) as err:
        launch(write_config(tmp_path, endpoint_readiness_timeout=5))
    assert text in err.value.message
    if "exited" in text:
        assert "CUDA out of memory" in err.value.message  # the last lines of its log
    assert "job" not in roles(fake)
    assert all(w.removed for w in fake.started) and not fake.networks
    run = only_run(tmp_path)
    assert [s.state for s in states(tmp_path, fake)] == [JobState.FAILED] * 2
    assert server.read_state(run.dir)[0] == server.ServerState.FAILED
    assert runs.load(run.dir) is not None and runs.load(run.dir).record.ended


def _interrupt_when(predicate) -> threading.Thread:
    """SIGINT to this process (Ctrl-C) once ``predicate()`` holds."""
    def go() -> None:
        deadline = time.monotonic() + 10
        while not predicate() and time.monotonic() < deadline:
            time.sleep(0.02)
        os.kill(os.getpid(), signal.SIGINT)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread


def test_ctrl_c_while_tasks_run_stops_the_server(tmp_path, fake: FakeBackend):
    fake.scripts.update(server=Script(hang=True), waiter=Script(), gsm8k=Script(hang=True),
                        humaneval=Script(hang=True))
    _interrupt_when(lambda: "job" in roles(fake))
    assert launch(write_config(tmp_path)) == 130
    assert "job" in roles(fake) and all(w.removed for w in fake.started) and not fake.networks
    assert server.read_state(only_run(tmp_path).dir)[0] == server.ServerState.STOPPED


def test_ctrl_c_while_the_server_loads_stops_it(tmp_path, fake: FakeBackend):
    fake.scripts.update(server=Script(hang=True), waiter=Script(hang=True))
    _interrupt_when(lambda: "waiter" in roles(fake))
    with pytest.raises(KeyboardInterrupt):
        launch(write_config(tmp_path))
    assert "job" not in roles(fake)
    assert all(w.removed for w in fake.started) and not fake.networks


def test_detached_run_and_resume_start_the_server_in_the_supervisor(tmp_path, fake: FakeBackend,
                                                                    monkeypatch):
    from launcher import labels

    monkeypatch.setenv("HF_TOKEN", "hf-secret")
    path = write_config(tmp_path)
    from pathlib import Path

    data = yaml.safe_load(Path(path).read_text())
    data["deployment"]["env_vars"] = {"HF_TOKEN": "host:HF_TOKEN"}
    Path(path).write_text(yaml.safe_dump(data))
    fake.scripts.update(server=Script(hang=True), waiter=Script(), gsm8k=Script(exit_code=1))
    assert launch(path, detach=True) == 0
    (supervisor,) = [w for w in fake.started if w.spec.labels.get(LABEL_ROLE) == "supervisor"]
    assert supervisor.env["HF_TOKEN"] == "hf-secret"  # the server's variable, in memory
    assert "server" not in roles(fake)  # the supervisor starts it
    monkeypatch.setenv(labels.LABELS_ENV, "")
    run = only_run(tmp_path)
    assert manage.supervise(run.dir) == 1  # gsm8k failed
    (srv,) = [w for w in fake.started if w.spec.labels.get(LABEL_ROLE) == "server"]
    assert srv.env == {"HF_TOKEN": "hf-secret"} and srv.removed
    fake.scripts["gsm8k"] = Script()
    assert manage.resume(str(tmp_path / "out"), run.invocation_id, detach=False) == 0
    assert roles(fake).count("server") == 2
    assert all(w.removed for w in fake.started if w.spec.labels.get(LABEL_ROLE) != "supervisor")
    assert [s.state for s in states(tmp_path, fake)] == [JobState.SUCCESS] * 2


def test_a_server_dying_mid_run_stops_the_running_tasks(tmp_path, fake: FakeBackend, capsys):
    fake.scripts.update(server=Script(hang=True, output=b"CUDA error: out of memory\n"),
                        waiter=Script(), gsm8k=Script(hang=True), humaneval=Script(hang=True))

    def crash() -> None:  # the server exits by itself once the tasks run
        deadline = time.monotonic() + 10
        while roles(fake).count("job") < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        fake.stop(fake.started[0].handle)

    threading.Thread(target=crash, daemon=True).start()
    began = time.monotonic()
    assert launch(write_config(tmp_path, mode="parallel")) == 1
    assert time.monotonic() - began < 5  # not after the tasks' retries
    run = only_run(tmp_path)
    assert [s.state for s in states(tmp_path, fake)] == [JobState.FAILED] * 2
    state, why = server.read_state(run.dir)
    assert state == server.ServerState.FAILED and "exited with code 143 while the tasks" in why
    assert "[server]   | CUDA error: out of memory" in capsys.readouterr().err
    assert all(w.removed for w in fake.started) and not fake.networks


def test_after_the_server_died_no_further_task_starts(tmp_path, fake: FakeBackend):
    fake.scripts.update(server=Script(hang=True), waiter=Script(), gsm8k=Script(hang=True),
                        humaneval=Script(hang=True))

    def crash() -> None:
        deadline = time.monotonic() + 10
        while "job" not in roles(fake) and time.monotonic() < deadline:
            time.sleep(0.02)
        fake.stop(fake.started[0].handle)

    threading.Thread(target=crash, daemon=True).start()
    assert launch(write_config(tmp_path)) == 1  # sequential: humaneval waits for gsm8k
    assert roles(fake).count("job") == 1
    run = only_run(tmp_path)
    assert [s.state for s in states(tmp_path, fake)] == [JobState.FAILED] * 2
    log = os.path.join(run.dir, "humaneval.1", "logs", "stdout.log")
    with open(log, encoding="utf-8") as fh:
        assert "not started: the model server exited with code 143 while the tasks ran" in (
            fh.read())


def test_server_ids_of_an_invocation_without_a_deployment(tmp_path, fake: FakeBackend):
    from launcher.errors import EnvironmentProblem
    from tests.unit.test_orchestration import write_config as plain_config

    assert launch(plain_config(tmp_path)) == 0
    run = only_run(tmp_path)
    with pytest.raises(EnvironmentProblem, match="has no model server"):
        manage.status(str(tmp_path / "out"), f"{run.invocation_id}.server", True)
