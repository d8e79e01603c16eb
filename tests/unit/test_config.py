from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from launcher.config import deep_merge, load_config, task_params
from launcher.errors import ConfigError
from launcher.overrides import apply as apply_override
from launcher.overrides import parse as parse_overrides


def parse_override(text: str):
    (override,) = parse_overrides([text])
    return override.path, override.value

MINIMAL = {
    "target": {"api_endpoint": {"url": "http://ep:8000/v1/chat/completions", "model_id": "m"}},
    "evaluation": {"tasks": [{"name": "gsm8k"}]},
}


def write(tmp_path: Path, data, name: str = "c.yaml") -> str:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return str(path)


def test_minimal_config_gets_packaged_defaults(tmp_path):
    config, raw = load_config(write(tmp_path, MINIMAL))
    assert config.execution.output_dir == "./results"
    assert config.target.api_endpoint.type == "chat"
    assert config.evaluation.tasks[0].name == "gsm8k"
    assert task_params(config, config.evaluation.tasks[0])["parallelism"] == 8
    assert raw["execution"]["type"] == "local"


def test_task_override_deep_merges_and_wins(tmp_path):
    data = yaml.safe_load(yaml.safe_dump(MINIMAL))
    data["evaluation"]["nemo_evaluator_config"] = {"config": {"params": {"limit_samples": 5,
                                                                         "temperature": 0.5}}}
    data["evaluation"]["tasks"] = [
        {"name": "gsm8k", "nemo_evaluator_config": {"config": {"params": {"limit_samples": 7}}}},
        {"name": "humaneval"},
    ]
    config, _ = load_config(write(tmp_path, data))
    first, second = (task_params(config, t) for t in config.evaluation.tasks)
    assert first["limit_samples"] == 7 and first["temperature"] == 0.5
    assert second["limit_samples"] == 5


def test_overrides_parse_yaml_values(tmp_path):
    config, _ = load_config(write(tmp_path, MINIMAL), [
        "execution.output_dir=/out",
        "evaluation.nemo_evaluator_config.config.params.limit_samples=3",
        "evaluation.tasks.0.name=humaneval",
        "+evaluation.tasks.1={name: gsm8k}",
    ])
    assert config.execution.output_dir == "/out"
    assert task_params(config, config.evaluation.tasks[0])["limit_samples"] == 3
    assert [t.name for t in config.evaluation.tasks] == ["humaneval", "gsm8k"]


@pytest.mark.parametrize(
    ("doc", "overrides", "expected"),
    [
        ("target: {api_endpoint: {url: http://x, model_id: m}\n", [],
         "malformed YAML at line 2, column 1"),
        ({"target": {"api_endpoint": {"model_id": "m"}}, "evaluation": {"tasks": [{"name": "a"}]}},
         [], "key 'target.api_endpoint.url': required key missing: add 'url: "),
        (MINIMAL, ["target.api_endpoint.url=5"], "key 'target.api_endpoint.url': expected str, "
         "got int 5"),
        (MINIMAL, ["target.api_endpoint.api_kye_name=X"],
         "key 'target.api_endpoint': unknown key 'api_kye_name' (did you mean 'api_key_name'?)"),
        (MINIMAL, ["evaluation.tasks=gsm8k"], "key 'evaluation.tasks': expected a list, got str"),
        (MINIMAL, ["target.api_endpoint.url=ftp://x"], "expected an http(s) URL"),
        (MINIMAL, ["execution.mode=fast"], "key 'execution.mode': expected 'sequential' or"),
        (MINIMAL, ["evaluation.tasks=[]"], "key 'evaluation.tasks': no tasks"),
        (MINIMAL, ["target=5"], "key 'target': expected a mapping of api_endpoint"),
        (MINIMAL, ["nonsense"], "override 'nonsense' is not of the form dotted.key=value"),
    ],
)
def test_bad_config_is_one_line_naming_file_and_key(tmp_path, doc, overrides, expected):
    path = write(tmp_path, doc)
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides)
    message = info.value.message
    assert expected in message
    assert "\n" not in message
    if not overrides or overrides[0] != "nonsense":
        assert message.startswith(path)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(str(tmp_path / "nope.yaml"))


def test_deep_merge_does_not_mutate_inputs():
    base = {"a": {"b": 1, "c": [1]}}
    top = {"a": {"b": 2}}
    assert deep_merge(base, top) == {"a": {"b": 2, "c": [1]}}
    assert base == {"a": {"b": 1, "c": [1]}}


def test_parse_override_forms():
    assert parse_override("a.b=[1, 2]") == (["a", "b"], [1, 2])
    assert parse_override("+a=null") == (["a"], None)
    assert parse_override("a=true")[1] is True
    data: dict = {"l": [{"x": 1}]}
    apply_override(data, *parse_overrides(["l.0.x=2"]))
    assert data == {"l": [{"x": 2}]}
    with pytest.raises(ConfigError, match="not an index"):
        apply_override(data, *parse_overrides(["l.5.x=2"]))
