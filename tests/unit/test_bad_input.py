"""Issue 3's bad-input table, through the real CLI: one line on stderr naming the file and the
key path, exit code 2, no traceback, nothing written, nothing started (Docker is never reached:
DOCKER_HOST points nowhere, so a start attempt would show up as exit 3)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

GOOD = {
    "execution": {"output_dir": "OUT"},
    "target": {"api_endpoint": {"url": "http://ep:8000/v1/chat/completions", "model_id": "m",
                                "api_key_name": "BAD_INPUT_KEY"}},
    "evaluation": {"tasks": [{"name": "gsm8k"}]},
}


def write(tmp_path: Path, text: str | None = None, **changes) -> Path:
    data = yaml.safe_load(yaml.safe_dump(GOOD))
    data["execution"]["output_dir"] = str(tmp_path / "out")
    for dotted, value in changes.items():
        node = data
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[last] = value
    path = tmp_path / "eval.yaml"
    path.write_text(text if text is not None else yaml.safe_dump(data))
    return path


CASES = [
    ("malformed yaml", "target: {api_endpoint: {url: x\nevaluation: [\n", {}, [],
     "malformed YAML at line 2, column 11"),
    ("wrong type", None, {"execution__max_parallel": "four"}, [],
     "key 'execution.max_parallel': expected int, got str 'four'"),
    ("missing value", None, {"target__api_endpoint__url": "???"}, [],
     "key 'target.api_endpoint.url': a value is required here"),
    ("unknown key", None, {"execution__outptu_dir": "/x"}, [],
     "key 'execution': unknown key 'outptu_dir' (did you mean 'output_dir'?)"),
    ("slurm key on the local executor", None, {"execution__num_nodes": 2}, [],
     "key 'execution.num_nodes': is a key of the Slurm executor: set execution.type: slurm"),
    ("legacy evaluation.overrides", None,
     {"evaluation__overrides": {"config.params.temperature": 0}}, [],
     "key 'evaluation': unknown key 'overrides': it is the reference's older form: write its "
     "dotted keys nested under nemo_evaluator_config instead"),
    ("unknown task", None, {"evaluation__tasks__0__name": "gsm8"}, [],
     "key 'evaluation.tasks[0].name': unknown task 'gsm8'"),
    ("env var unset", None, {}, [], "host environment variable BAD_INPUT_KEY is not set"),
    ("output dir not writable", None, {}, ["-o", "execution.output_dir=FILE/out"],
     "key 'execution.output_dir': output folder"),
    ("conflicting flags", None, {}, ["--config-dir", "."], "--config cannot be combined"),
    ("unknown -t task", None, {}, ["-t", "mmlu"], "--task mmlu is not in the config"),
    ("bad interpolation", None, {"execution__output_dir": "${execution.nope}"}, [],
     "key 'execution.output_dir': '${execution.nope}' refers to a key that does not exist"),
    ("ambiguous task", None, {"evaluation__tasks__0__name": "humaneval_instruct",
                              "target__api_endpoint__type": "completions"}, [],
     "key 'evaluation.tasks[0].name': ambiguous task 'humaneval_instruct': qualify it as one of "
     "'lm-evaluation-harness.humaneval_instruct', 'bigcode-evaluation-harness.humaneval_instruct'"),
    ("unknown qualified task", None, {"evaluation__tasks__0__name": "lm-evaluation-harness.gsm9k"},
     [], "key 'evaluation.tasks[0].name': unknown task 'lm-evaluation-harness.gsm9k'; did you "
     "mean 'lm-evaluation-harness.gsm8k'?"),
    ("task endpoint type", None, {"evaluation__tasks__0__name": "lm-evaluation-harness.mgsm"}, [],
     "key 'evaluation.tasks[0].name': task 'lm-evaluation-harness.mgsm' needs a completions "
     "endpoint but target.api_endpoint.type is 'chat'"),
    ("unsupported docker flag", None, {"execution__extra_docker_args": "--gpus all --privileged"},
     [], "key 'execution.extra_docker_args': unsupported docker flag '--privileged'"),
    ("bad --gpus value", None, {"execution__extra_docker_args": "--gpus 0"}, [],
     "key 'execution.extra_docker_args': --gpus 0: '0' is not all or a positive count; write "
     "--gpus all, --gpus 2, --gpus device=0,1 or --gpus capabilities=compute,utility"),
    ("task endpoint_type value", None, {"evaluation__tasks__0__endpoint_type": "vlm"}, [],
     "key 'evaluation.tasks[0].endpoint_type': expected 'chat' or 'completions', got 'vlm'"),
    ("metadata not a mapping", None, {"user_provided_metadata": "ablations"}, [],
     "key 'user_provided_metadata': expected a mapping, got str 'ablations'"),
    ("adapter config type", None, {}, ["-o", "+target.api_endpoint.adapter_config.use_caching=3"],
     "key 'target.api_endpoint.adapter_config.use_caching': must be true or false"),
]


@pytest.mark.parametrize(("case", "text", "changes", "args", "needle"), CASES,
                         ids=[c[0] for c in CASES])
def test_bad_input(tmp_path, case, text, changes, args, needle):
    path = write(tmp_path, text, **changes)
    blocker = tmp_path / "file"
    blocker.write_text("a file where a folder should be")
    args = [a.replace("FILE", str(blocker)) for a in args]
    env = {k: v for k, v in os.environ.items() if k != "BAD_INPUT_KEY"}
    env["DOCKER_HOST"] = f"unix://{tmp_path}/nowhere.sock"
    if case != "env var unset":
        env["BAD_INPUT_KEY"] = "x"
    before = sorted(tmp_path.iterdir())
    proc = subprocess.run([sys.executable, "-m", "launcher", "run", "--config", str(path),
                           *args], capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    assert needle in lines[0], lines[0]
    if case not in ("conflicting flags",):
        assert str(path) in lines[0]
    assert "Traceback" not in proc.stderr
    assert sorted(tmp_path.iterdir()) == before  # nothing written


# -- hostile YAML: refused in one line before anything expands (launcher/yamlfile.py) ---------

BOMB = "".join(
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9) if prev else ', '.join(['lol'] * 9)}]\n"
    for prev, name in zip(["", "a", "b", "c", "d", "e", "f", "g"], "abcdefgh", strict=True)
)  # 9^8 = 43 million values once expanded
DEEP = "x: " + "[" * 200 + "]" * 200 + "\n"
CYCLE = "a: &a [1, *a]\n"


@pytest.mark.parametrize(("case", "content", "needle"), [
    ("alias bomb", BOMB.encode(), "the YAML expands to more than 200000 values"),
    ("deep nesting", DEEP.encode(), "the YAML nests deeper than 64 levels"),
    ("alias cycle", CYCLE.encode(), "an alias refers to the value that contains it"),
    ("NUL bytes", b"execution: {}\n\x00\x01\x02", "not a YAML text file (it holds NUL bytes)"),
    ("not UTF-8", bytes(range(128, 256)) * 4, "it is not UTF-8 text"),
    ("too big", b"# " + b"x" * (5 * 1024 * 1024) + b"\n", "a config is far smaller"),
], ids=lambda v: v if isinstance(v, str) and len(v) < 20 else None)
def test_hostile_yaml(tmp_path, case, content, needle):
    path = tmp_path / "eval.yaml"
    path.write_bytes(content)
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/nowhere.sock"}
    before = sorted(tmp_path.iterdir())
    for command in (["config", "validate", str(path)], ["run", "--config", str(path)]):
        proc = subprocess.run([sys.executable, "-m", "launcher", *command], capture_output=True,
                              text=True, env=env, timeout=60)
        assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"error: {path}: "), proc.stderr[-2000:]
        assert needle in lines[0], lines[0]
    assert sorted(tmp_path.iterdir()) == before


def test_alias_bomb_in_a_sibling_file_of_the_defaults_list(tmp_path):
    (tmp_path / "_endpoints.yaml").write_text(BOMB)
    path = write(tmp_path, None)
    data = yaml.safe_load(path.read_text())
    data["defaults"] = ["_endpoints", "_self_"]
    path.write_text(yaml.safe_dump(data))
    env = {**os.environ, "DOCKER_HOST": f"unix://{tmp_path}/nowhere.sock", "BAD_INPUT_KEY": "x"}
    proc = subprocess.run([sys.executable, "-m", "launcher", "config", "validate", str(path)],
                          capture_output=True, text=True, env=env, timeout=60)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip() == (
        f"error: {tmp_path / '_endpoints.yaml'}: the YAML expands to more than 200000 values "
        "(aliases repeated inside aliases); a config is far smaller: write the values out or "
        "remove the repeated aliases")
