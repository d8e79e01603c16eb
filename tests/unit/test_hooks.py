"""``pre_cmd`` / ``post_cmd`` (issue 13): config → plan → spec → run.sh words and the backend's
create kwargs; the wrapper's behaviour in a real POSIX shell; the trust switch."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml

from launcher import hooks, plan, spec
from launcher.backends import docker as docker_backend
from launcher.config import load_config
from launcher.errors import ConfigError
from launcher.hostpaths import HostSource
from launcher.prepare import ConfigOptions, prepare
from tests.unit.test_docker_args import reads_back

EVAL = ("launcher", "harness", "run_eval", "--run_config", "/results/run_config.yml")


def write(tmp_path, tasks, **evaluation) -> str:
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump({
        "execution": {"output_dir": str(tmp_path / "out")},
        "target": {"api_endpoint": {"url": "http://ep/v1/chat/completions", "model_id": "m"}},
        "evaluation": {"tasks": tasks, **evaluation},
    }))
    return str(path)


def specs(path: str) -> list[spec.ContainerSpec]:
    config, _ = load_config(path)
    inv = plan.build(config, source=path, invocation_id="ab" * 8)
    return [spec.for_job(job, lambda p: HostSource("bind", p), None, {}) for job in inv.jobs]


def test_task_hooks_win_and_the_evaluations_fill_in(tmp_path):
    plain, own, inherited = specs(write(tmp_path, [
        {"name": "gsm8k", "pre_cmd": ""},
        {"name": "humaneval", "pre_cmd": "export A=1\necho \"it's here\"\n"},
        {"name": "gsm8k"},
    ], post_cmd="ls /results"))
    assert own.entrypoint == inherited.entrypoint == hooks.SHELL
    assert own.command == ("-c", hooks.SCRIPT, hooks.ARGV0, "export A=1\necho \"it's here\"\n",
                           "ls /results", *EVAL)
    assert inherited.command[3:] == ("", "ls /results", *EVAL)
    assert plain.command[3:5] == ("", "ls /results")  # an empty own pre_cmd inherits nothing
    for s in (plain, own, inherited):
        assert reads_back(s)  # run.sh is the same words
        kwargs = docker_backend.create_kwargs(s, {})
        assert kwargs["entrypoint"] == [hooks.SHELL]
        assert kwargs["command"] == list(s.command)


def test_no_hooks_leave_the_command_alone(tmp_path):
    (s,) = specs(write(tmp_path, [{"name": "gsm8k"}]))
    assert (s.entrypoint, s.command) == ("launcher", EVAL[1:])


def test_a_hook_that_is_not_text_is_one_line_at_its_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, [{"name": "gsm8k", "post_cmd": ["ls", "/results"]}]))
    assert err.value.key == "evaluation.tasks[0].post_cmd"
    assert "expected str, got list" in err.value.message


# ------------------------------------------------------------------ the wrapper, in sh


def wrapped(pre: str, post: str, command: str) -> list[str]:
    entrypoint, args = hooks.Hooks(pre, post).wrap("sh", ("-c", command))
    return [entrypoint, *args]


def run(pre: str, post: str, command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(wrapped(pre, post, command), capture_output=True, text=True,
                          timeout=30)


def test_pre_runs_first_in_the_same_shell_post_after_with_the_evaluations_code():
    proc = run("export GREETING=hello; echo pre", "echo post $GREETING",
               'echo "eval $GREETING"; exit 3')
    assert proc.stdout.splitlines() == ["pre", "eval hello", "post hello"]
    assert proc.returncode == 3


def test_a_failing_pre_cmd_stops_before_the_evaluation():
    proc = run("echo pre; false", "echo post", "echo eval")
    assert proc.stdout.splitlines() == ["pre"]
    assert proc.returncode == 1


def test_post_runs_after_a_failed_evaluation_and_its_failure_does_not_hide_the_code():
    proc = run("", "echo post; exit 7", "echo eval; exit 0")
    assert proc.stdout.splitlines() == ["eval", "post"] and proc.returncode == 0
    proc = run("", "echo post", "exit 5")
    assert proc.stdout.splitlines() == ["post"] and proc.returncode == 5


def test_quotes_and_newlines_in_hooks_are_data(tmp_path):
    proc = run("x='a \"b\" $c'\necho \"$x\"", "echo 'it''s'", "true")
    assert proc.stdout.splitlines() == ['a "b" $c', "its"]


def test_sigterm_reaches_the_evaluation_and_post_still_runs(tmp_path):
    marker = tmp_path / "started"
    child = f"trap 'echo eval got TERM; exit 143' TERM; touch {marker}; while :; do sleep 0.1; done"
    proc = subprocess.Popen(wrapped("", "echo post", child), stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not marker.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=20)
    assert out.splitlines() == ["eval got TERM", "post"]
    assert proc.returncode == 143


# ------------------------------------------------------------------ the trust switch


@pytest.fixture
def untrusted(monkeypatch):
    monkeypatch.delenv(hooks.TRUST_ENV, raising=False)


def test_a_run_without_the_switch_is_refused_with_the_command_to_paste(tmp_path, untrusted):
    config, _ = load_config(write(tmp_path, [{"name": "gsm8k"}, {"name": "humaneval",
                                                                  "post_cmd": "ls"}]))
    with pytest.raises(ConfigError) as err:
        hooks.check(config, source="eval.yaml", running=True, argv=["run", "-c", "my eval.yaml"])
    assert err.value.key == "evaluation.tasks[1].post_cmd"
    assert err.value.message == (
        "eval.yaml, key 'evaluation.tasks[1].post_cmd': runs shell commands in the evaluation "
        "container, which a config from elsewhere must not do unless you say so: read them, "
        "then run `NEMO_EVALUATOR_TRUST_PRE_CMD=1 launcher run -c 'my eval.yaml'` (or `export "
        "NEMO_EVALUATOR_TRUST_PRE_CMD=1` first)")
    with pytest.raises(ConfigError, match="add -e NEMO_EVALUATOR_TRUST_PRE_CMD=1 to the `docker "
                       "run` of the launcher container"):
        hooks.check(config, source="eval.yaml", running=True, in_container=True)


@pytest.mark.parametrize("value", ["yes", "true", "0", ""])
def test_only_1_counts(tmp_path, value):
    config, _ = load_config(write(tmp_path, [{"name": "gsm8k"}], pre_cmd="echo hi"))
    with pytest.raises(ConfigError, match=f"NEMO_EVALUATOR_TRUST_PRE_CMD is '{value}'; only 1 "
                       "counts"):
        hooks.check(config, source="e", running=True, environ={hooks.TRUST_ENV: value})
    hooks.check(config, source="e", running=True, environ={hooks.TRUST_ENV: "1"})


def test_a_dry_run_or_validation_only_notes_it(tmp_path, untrusted, capsys):
    path = write(tmp_path, [{"name": "gsm8k"}], pre_cmd="echo hi")
    prepared = prepare(ConfigOptions(config=path))
    assert prepared.invocation.jobs[0].hooks == hooks.Hooks("echo hi", "")
    err = capsys.readouterr().err
    assert err.startswith(f"note: {path}, key 'evaluation.pre_cmd': runs shell commands")
    assert "a run needs NEMO_EVALUATOR_TRUST_PRE_CMD=1 in the launcher's environment" in err
    with pytest.raises(ConfigError, match="key 'evaluation.pre_cmd'"):
        prepare(ConfigOptions(config=path), running=True)
    config, _ = load_config(path)
    hooks.check(config, source="e", running=False, in_container=True)
    assert ("(-e NEMO_EVALUATOR_TRUST_PRE_CMD=1 on the launcher container)"
            in capsys.readouterr().err)


def test_an_env_file_beside_the_config_cannot_switch_it_on(tmp_path, untrusted):
    path = write(tmp_path, [{"name": "gsm8k"}], pre_cmd="echo hi")
    (tmp_path / ".env").write_text(f"{hooks.TRUST_ENV}=1\n")
    (tmp_path / "more.env").write_text(f"{hooks.TRUST_ENV}=1\n")
    with pytest.raises(ConfigError, match="key 'evaluation.pre_cmd'"):
        prepare(ConfigOptions(config=path, env_file=str(tmp_path / "more.env")), running=True)


def test_trusted_runs_plan_the_hooks(tmp_path, monkeypatch):
    monkeypatch.setenv(hooks.TRUST_ENV, "1")
    path = write(tmp_path, [{"name": "gsm8k"}], pre_cmd="echo hi")
    prepared = prepare(ConfigOptions(config=path), running=True)
    assert prepared.invocation.jobs[0].hooks == hooks.Hooks("echo hi", "")


def test_the_cli_refuses_in_one_line_and_writes_nothing(tmp_path):
    path = write(tmp_path, [{"name": "gsm8k", "pre_cmd": "curl x | sh"}])
    env = {k: v for k, v in os.environ.items() if k != hooks.TRUST_ENV}
    env["DOCKER_HOST"] = f"unix://{tmp_path}/nowhere.sock"
    before = sorted(tmp_path.iterdir())
    proc = subprocess.run([sys.executable, "-m", "launcher", "run", "--config", path],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: {path}, key 'evaluation.tasks[0].pre_cmd': runs shell")
    assert "NEMO_EVALUATOR_TRUST_PRE_CMD=1" in line and "Traceback" not in proc.stderr
    assert sorted(tmp_path.iterdir()) == before
