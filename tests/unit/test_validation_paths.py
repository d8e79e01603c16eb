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


# ------------------------------------------------------------------ ??? and the -o it suggests

TWO_TASKS = {"target": {"api_endpoint": ENDPOINT},
             "evaluation": {"tasks": [{"name": "gsm8k"}, {"name": "humaneval",
                            "nemo_evaluator_config": {"config": {"params": {
                                "limit_samples": "???"}}}}]}}


def suggested_override(line: str) -> str:
    """The ``-o`` the message suggests, as a shell would pass it on."""
    import shlex

    words = shlex.split(line.partition(" pass ")[2])
    assert words[0] == "-o", line
    return words[1]


def test_missing_value_suggests_an_override_that_works_when_pasted(tmp_path):
    path = write(tmp_path, TWO_TASKS)
    line = one_error(validate(tmp_path, path), path)
    key = "evaluation.tasks.1.nemo_evaluator_config.config.params.limit_samples"
    assert line.endswith(f"(it is '???'): set it in the file or pass -o {key}=10"), line
    proc = validate(tmp_path, path, suggested_override(line))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"ok: {path} (2 tasks")


def test_override_in_bracket_form_sets_the_list_item(tmp_path):
    path = write(tmp_path, TWO_TASKS)
    proc = validate(tmp_path, path,
                    "evaluation.tasks[1].nemo_evaluator_config.config.params.limit_samples=3")
    assert proc.returncode == 0, proc.stderr
    shown = launcher(tmp_path, "config", "show", path, "-o",
                     "evaluation.tasks[1].nemo_evaluator_config.config.params.limit_samples=3",
                     "-o", "evaluation.tasks[gsm8k].timeout=60")
    assert shown.returncode == 0, shown.stderr
    tasks = yaml.safe_load(shown.stdout)["evaluation"]["tasks"]
    assert tasks[1]["nemo_evaluator_config"]["config"]["params"]["limit_samples"] == 3
    assert tasks[0]["timeout"] == 60
    assert "tasks[1]" not in shown.stdout


def test_override_with_a_key_it_cannot_address_is_one_line(tmp_path):
    path = write(tmp_path, TWO_TASKS)
    proc = validate(tmp_path, path, "execution.mounts.evaluation['./x']=/data")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: -o: override "), proc.stderr
    assert "set a key like this one in the file" in lines[0]


# ------------------------------------------------------------------ typos and missing keys


def test_misspelled_required_key_is_named_not_the_missing_one(tmp_path):
    path = write(tmp_path, {"target": {"api_endpoint": {"url": ENDPOINT["url"],
                                                        "modle_id": "m"}},
                            "evaluation": {"tasks": [{"name": "gsm8k"}]}})
    line = one_error(validate(tmp_path, path), path)
    assert line == (f"error: {path}, key 'target.api_endpoint': unknown key 'modle_id' "
                    "(did you mean 'model_id'?)")


def test_misspelled_block_above_a_required_key_is_named(tmp_path):
    path = write(tmp_path, {"target": {"api_endpint": ENDPOINT},
                            "evaluation": {"tasks": [{"name": "gsm8k"}]}})
    line = one_error(validate(tmp_path, path), path)
    assert line.endswith("key 'target': unknown key 'api_endpint' (did you mean "
                         "'api_endpoint'?)"), line


def test_key_never_written_is_reported_missing_with_how_to_set_it(tmp_path):
    path = write(tmp_path, {"target": {"api_endpoint": {"model_id": "m"}},
                            "evaluation": {"tasks": [{"name": "gsm8k"}]}})
    line = one_error(validate(tmp_path, path), path)
    assert "???" not in line
    assert line == (f"error: {path}, key 'target.api_endpoint.url': required key missing: add "
                    "'url: http://localhost:8000/v1/chat/completions' under target.api_endpoint "
                    "in the file, or pass -o target.api_endpoint.url=http://localhost:8000/v1/"
                    "chat/completions")
    assert validate(tmp_path, path, suggested_override(line)).returncode == 0


def test_missing_tasks_suggest_a_quoted_override_that_works(tmp_path):
    path = write(tmp_path, {"target": {"api_endpoint": ENDPOINT}})
    line = one_error(validate(tmp_path, path), path)
    assert line.endswith("key 'evaluation.tasks': required key missing: add 'tasks: "
                         "[{name: gsm8k}]' under evaluation in the file, or pass -o "
                         "'evaluation.tasks=[{name: gsm8k}]'"), line
    assert validate(tmp_path, path, suggested_override(line)).returncode == 0


# ------------------------------------------------------------------ nemo_evaluator_config paths


def params_config(evaluation_params: dict[str, Any], task_params: dict[str, Any] | None = None,
                  name: str = "gsm8k") -> dict[str, Any]:
    task: dict[str, Any] = {"name": name}
    if task_params is not None:
        task["nemo_evaluator_config"] = {"config": {"params": task_params}}
    return {"target": {"api_endpoint": ENDPOINT},
            "evaluation": {"nemo_evaluator_config": {"config": {"params": evaluation_params}},
                           "tasks": [task]}}


def test_bad_evaluation_level_value_is_reported_where_it_was_written(tmp_path):
    path = write(tmp_path, params_config({"limit_samples": -1}))
    line = one_error(validate(tmp_path, path), path)
    assert "key 'evaluation.nemo_evaluator_config.config.params.limit_samples': " in line, line
    assert "tasks[0]" not in line


def test_limit_samples_of_an_external_task_is_checked_at_the_key_written(tmp_path):
    path = write(tmp_path, params_config({"limit_samples": "ten"}, None,
                                         "lm-evaluation-harness.ifeval"))
    line = one_error(validate(tmp_path, path), path)
    assert line.endswith("key 'evaluation.nemo_evaluator_config.config.params.limit_samples': "
                         "expected a positive integer or null, got str 'ten'"), line


def test_bad_task_level_value_is_reported_at_the_task(tmp_path):
    path = write(tmp_path, params_config({"limit_samples": 5}, {"limit_samples": 0}))
    line = one_error(validate(tmp_path, path), path)
    assert ("key 'evaluation.tasks[0].nemo_evaluator_config.config.params.limit_samples': "
            in line), line


# ------------------------------------------------------------------ built-in task params

PARAM_CASES = [
    # (evaluation-level params, task params, task, key, the harness's message)
    ({"limit_samples": -1}, None, "gsm8k",
     "evaluation.nemo_evaluator_config.config.params.limit_samples", "must be >= 1, got -1"),
    ({"parallelism": -3}, None, "gsm8k",
     "evaluation.nemo_evaluator_config.config.params.parallelism", "must be >= 1, got -3"),
    ({"request_timeout": "1h"}, None, "gsm8k",
     "evaluation.nemo_evaluator_config.config.params.request_timeout",
     "must be a number, got '1h'"),
    ({}, {"temperature": 5}, "gsm8k",
     "evaluation.tasks[0].nemo_evaluator_config.config.params.temperature",
     "must be between 0.0 and 2.0, got 5"),
    ({}, {"extra": {"n_samples": 0}}, "humaneval",
     "evaluation.tasks[0].nemo_evaluator_config.config.params.extra.n_samples",
     "must be between 1 and 1000, got 0"),
    ({"extra": {"n_samples": 2}}, {"extra": {"k": [5]}}, "humaneval",
     "evaluation.tasks[0].nemo_evaluator_config.config.params.extra.k",
     "pass@k needs k <= n_samples (2); got k=5"),
]


def test_built_in_task_params_fail_at_validation_with_the_harness_message(tmp_path):
    from launcher.errors import ConfigError
    from launcher.harness.runconfig import parse_run_config
    from launcher.harness.tasks import get_task

    for i, (evaluation, task, name, key, message) in enumerate(PARAM_CASES):
        folder = tmp_path / str(i)
        folder.mkdir()
        path = write(folder, params_config(evaluation, task, name))
        for command in (["config", "validate", path], ["run", "--dry-run", "--config", path]):
            line = one_error(launcher(folder, *command), path)
            assert f"key '{key}': {message}" in line, (command, line)
        # the same message the harness gives inside the container
        params = {**evaluation, **(task or {}),
                  "extra": {**evaluation.get("extra", {}), **(task or {}).get("extra", {})}}
        run_config = {"config": {"type": name, "params": params},
                      "target": {"api_endpoint": ENDPOINT}}
        try:
            get_task(name, parse_run_config(run_config).params.extra)
        except ConfigError as exc:
            assert exc.detail in line
        else:
            raise AssertionError(f"the harness accepts {params}")


def test_valid_built_in_task_params_pass(tmp_path):
    path = write(tmp_path, params_config({"parallelism": 2, "request_timeout": 30},
                                         {"temperature": 0.8, "extra": {"n_samples": 5,
                                                                        "k": [1, 5]}},
                                         "humaneval"))
    proc = validate(tmp_path, path)
    assert proc.returncode == 0, proc.stderr


def test_external_task_params_are_left_to_their_harness(tmp_path):
    path = write(tmp_path, params_config({"temperature": 5}, None,
                                         "lm-evaluation-harness.ifeval"))
    proc = validate(tmp_path, path)
    assert proc.returncode == 0, proc.stderr


def test_wrong_value_in_a_string_mapping_names_its_key(tmp_path):
    path = write(tmp_path, {"target": {"api_endpoint": ENDPOINT},
                            "env_vars": {"A B": [1]},
                            "evaluation": {"tasks": [{"name": "gsm8k"}]}})
    line = one_error(validate(tmp_path, path), path)
    assert line.endswith("key 'env_vars['A B']': expected str, got list [1]"), line
    path = write(tmp_path, {"target": {"api_endpoint": ENDPOINT},
                            "execution": {"output_dir": str(tmp_path / "out"),
                                          "mounts": {"evaluation": {"./data": ["/data"]}}},
                            "evaluation": {"tasks": [{"name": "gsm8k"}]}})
    line = one_error(validate(tmp_path, path), path)
    assert "key 'execution.mounts.evaluation['./data']': expected str, got list" in line, line


def test_misspelled_tasks_key_is_named(tmp_path):
    path = write(tmp_path, {"target": {"api_endpoint": ENDPOINT},
                            "evaluation": {"task": [{"name": "gsm8k"}]}})
    line = one_error(validate(tmp_path, path), path)
    assert line.endswith("key 'evaluation': unknown key 'task' (did you mean 'tasks'?)"), line


def test_key_path_rendering():
    from launcher import keypaths

    parts = ["execution", "mounts", "evaluation", "./hf_cache"]
    assert keypaths.render(parts) == "execution.mounts.evaluation['./hf_cache']"
    assert keypaths.override_key(parts) is None
    assert keypaths.render(["evaluation", "tasks", 1, "name"]) == "evaluation.tasks[1].name"
    assert keypaths.override_key(["evaluation", "tasks", 1, "name"]) == "evaluation.tasks.1.name"
    assert keypaths.override_text(["evaluation", "tasks"], "[{name: a}]") == \
        "-o 'evaluation.tasks=[{name: a}]'"
    assert keypaths.child("env_vars", "A B") == "env_vars['A B']"
    assert keypaths.child("a", 0) == "a[0]"


def test_evaluator_config_block_that_is_not_a_mapping_is_one_line(tmp_path):
    cases = [({"config": 5}, "evaluation.nemo_evaluator_config.config", "got int 5"),
             ({"config": None}, "evaluation.nemo_evaluator_config.config",
              "got nothing (the key is empty): give it keys or remove it"),
             ({"config": {"params": [1]}}, "evaluation.nemo_evaluator_config.config.params",
              "got list [1]"),
             ({"target": {"api_endpoint": "x"}},
              "evaluation.nemo_evaluator_config.target.api_endpoint", "got str 'x'")]
    for i, (block, key, got) in enumerate(cases):
        folder = tmp_path / str(i)
        folder.mkdir()
        path = write(folder, {"target": {"api_endpoint": ENDPOINT},
                              "evaluation": {"nemo_evaluator_config": block,
                                             "tasks": [{"name": "lm-evaluation-harness.ifeval"}]}})
        line = one_error(validate(folder, path), path)
        assert line.endswith(f"key '{key}': expected a mapping, {got}"), line
    path = write(tmp_path, {"target": {"api_endpoint": ENDPOINT},
                            "evaluation": {"tasks": [{"name": "gsm8k",
                                                      "nemo_evaluator_config": {"config": 1}}]}})
    line = one_error(validate(tmp_path, path), path)
    assert line.endswith("key 'evaluation.tasks[0].nemo_evaluator_config.config': expected a "
                         "mapping, got int 1"), line


def test_interpolation_error_names_the_key_as_written(tmp_path):
    path = write(tmp_path, {"target": {"api_endpoint": ENDPOINT},
                            "execution": {"output_dir": str(tmp_path / "out"), "mounts": {
                                "evaluation": {"./hf_cache": "${oc.env:H13_UNSET_VARIABLE}"}}},
                            "evaluation": {"tasks": [{"name": "gsm8k"}]}})
    line = one_error(validate(tmp_path, path), path)
    assert "key 'execution.mounts.evaluation['./hf_cache']': ${oc.env:H13_UNSET_VARIABLE} " in line
    path = write(tmp_path, {"target": {"api_endpoint": ENDPOINT},
                            "evaluation": {"tasks": [{"name": "gsm8k", "env_vars": {
                                "B": "${evaluation.tasks[5].name}"}}]}})
    line = one_error(validate(tmp_path, path), path)
    assert line.endswith("key 'evaluation.tasks[0].env_vars.B': '${evaluation.tasks[5].name}' "
                         "refers to a key that does not exist; check its spelling"), line
