"""The CLI as a user meets it: one-line errors, exit codes, no traceback, dry-run writes nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import yaml

SECRET = "sk-unit-secret-value"


def launcher(*args: str, env: dict[str, str] | None = None, cwd: str | None = None):
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True,
                          text=True, env={**os.environ, **(env or {})}, cwd=cwd, timeout=60)


def config(tmp_path, **execution) -> str:
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump({
        "execution": {"output_dir": str(tmp_path / "out"), **execution},
        "target": {"api_endpoint": {"url": "http://ep:8000/v1/chat/completions",
                                    "model_id": "m", "api_key_name": "UNIT_KEY"}},
        "evaluation": {"tasks": [{"name": "gsm8k"}, {"name": "humaneval"}]},
    }))
    return str(path)


def test_config_error_is_one_line_exit_2(tmp_path):
    path = config(tmp_path)
    proc = launcher("run", "--config", path, "-o", "evaluation.tasks.0.name=gsm9k")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"error: {path}, key 'evaluation.tasks[0].name': unknown task 'gsm9k'; did you mean "
        "'gsm8k'? (list them with `launcher ls tasks`)"]
    assert not (tmp_path / "out").exists()


def test_debug_shows_traceback(tmp_path):
    proc = launcher("--debug", "run", "--config", str(tmp_path / "missing.yaml"))
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_dry_run_writes_nothing_and_shows_names_only(tmp_path):
    path = config(tmp_path)
    proc = launcher("run", "--config", path, "--dry-run", env={"UNIT_KEY": SECRET})
    assert proc.returncode == 0, proc.stderr
    plan = yaml.safe_load(proc.stdout)
    jobs = plan["plan"]["jobs"]
    assert [j["task"] for j in jobs] == ["gsm8k", "humaneval"]
    assert "UNIT_KEY" in jobs[0]["env"]
    assert jobs[0]["command"][:3] == ["launcher", "harness", "run_eval"]
    assert SECRET not in proc.stdout + proc.stderr
    assert not (tmp_path / "out").exists()


def test_unset_key_fails_before_anything(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "UNIT_KEY"}
    proc = subprocess.run([sys.executable, "-m", "launcher", "run", "--config", config(tmp_path)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2
    assert "host environment variable UNIT_KEY is not set" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_docker_unreachable_is_exit_3(tmp_path):
    proc = launcher("run", "--config", config(tmp_path), env={
        "UNIT_KEY": SECRET, "DOCKER_HOST": f"unix://{tmp_path}/no.sock"})
    assert proc.returncode == 3, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "cannot reach the Docker engine" in lines[0]
    assert not (tmp_path / "out").exists()


def test_version_and_help():
    assert launcher("--version").stdout.startswith("eval-launcher, version ")
    for args in (["--help"], ["run", "--help"], ["reference-endpoint", "--help"],
                 ["harness", "run_eval", "--help"], ["ls", "tasks", "--help"]):
        proc = launcher(*args)
        assert proc.returncode == 0 and "Usage:" in proc.stdout, args


def test_both_console_commands_run_the_same_cli():
    from importlib.metadata import entry_points

    scripts = {ep.name: ep.value for ep in entry_points(group="console_scripts")
               if ep.value.startswith("launcher.")}
    assert scripts == {"eval-launcher": "launcher.cli:main", "launcher": "launcher.cli:main"}


def test_a_full_disk_is_one_line_naming_the_file_exit_3(monkeypatch, capsys):
    import errno

    import pytest

    from launcher import cli

    class FullDisk:
        def main(self, **_):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/results/inv/job/logs/x")

    monkeypatch.setattr(cli, "cli", FullDisk())
    monkeypatch.setattr(sys, "argv", ["launcher", "resume", "abc"])
    with pytest.raises(SystemExit) as exited:
        cli.main()
    assert exited.value.code == 3
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"error: cannot write /results/inv/job/logs/x: {os.strerror(errno.ENOSPC)}; "
                   "free space (or fix the disk) there, then `launcher resume <invocation id>` "
                   "reruns only what did not finish"]


def test_other_os_errors_are_not_disguised_as_a_full_disk(monkeypatch):
    import errno

    import pytest

    from launcher import cli

    class Other:
        def main(self, **_):
            raise OSError(errno.EBADF, "bad fd")

    monkeypatch.setattr(cli, "cli", Other())
    monkeypatch.setattr(sys, "argv", ["launcher", "status"])
    with pytest.raises(OSError):
        cli.main()
