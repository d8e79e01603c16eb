"""Issue 13's validation defects, through the real CLI on a temp YAML file: every error is one
line naming the file, the key path as the user wrote it and a fix that works when pasted
(exit 2, no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

ENDPOINT = {"url": "http://ep:8000/v1/chat/completions", "model_id": "m"}


def write(tmp_path: Path, data: dict[str, Any]) -> str:
    data = {"execution": {"output_dir": str(tmp_path / "out")}, **data}
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def launcher(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/nowhere.sock"}
    return subprocess.run([sys.executable, "-m", "launcher", *args], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=60)


def validate(tmp_path: Path, path: str, *overrides: str) -> subprocess.CompletedProcess[str]:
    args = [a for o in overrides for a in ("-o", o)]
    return launcher(tmp_path, "config", "validate", path, *args)


def one_error(proc: subprocess.CompletedProcess[str], path: str) -> str:
    """The single error line (checked: exit 2, one line, names the file, no traceback)."""
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {path}, "), lines[0]
    assert "Traceback" not in proc.stderr
    return lines[0]


# ------------------------------------------------------------------ mounts (key rendering)


def test_mount_source_that_does_not_exist_names_the_key_as_written(tmp_path):
    path = write(tmp_path, {"target": {"api_endpoint": ENDPOINT},
                            "execution": {"output_dir": str(tmp_path / "out"),
                                          "mounts": {"evaluation": {"./hf_cache": "/cache"}}},
                            "evaluation": {"tasks": [{"name": "gsm8k"}]}})
    for command in (["config", "validate", path], ["run", "--dry-run", "--config", path]):
        line = one_error(launcher(tmp_path, *command), path)
        assert "key 'execution.mounts.evaluation['./hf_cache']': " in line, line
        assert "evaluation.." not in line
    (tmp_path / "hf_cache").mkdir()
    assert validate(tmp_path, path).returncode == 0


def test_bad_env_var_name_is_rendered_with_brackets(tmp_path):
    path = write(tmp_path, {"target": {"api_endpoint": ENDPOINT},
                            "evaluation": {"tasks": [{"name": "gsm8k",
                                                      "env_vars": {"MY VAR": "lit:x"}}]}})
    line = one_error(validate(tmp_path, path), path)
    assert "key 'evaluation.tasks[0].env_vars['MY VAR']': 'MY VAR' is not a valid" in line
