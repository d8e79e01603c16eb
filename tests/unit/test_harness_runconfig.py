from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from launcher.errors import ConfigError
from launcher.harness.runconfig import Params, load_run_config, parse_run_config

MINIMAL = {
    "config": {"type": "gsm8k", "output_dir": "/results"},
    "target": {"api_endpoint": {"url": "http://h:8000/v1/chat/completions", "model_id": "m"}},
}


def test_defaults() -> None:
    cfg = parse_run_config(MINIMAL)
    assert cfg.task == "gsm8k" and cfg.output_dir == "/results"
    assert cfg.params == Params()
    p = cfg.params
    assert (p.limit_samples, p.parallelism, p.max_retries, p.request_timeout) == (None, 8, 5, 60.0)
    assert (p.temperature, p.top_p, p.max_new_tokens, p.extra) == (0.0, 1.0, 1024, {})
    assert cfg.endpoint.type == "chat" and cfg.endpoint.api_key_name is None
    assert cfg.api_key() is None


def test_full_config_from_file(tmp_path: Path) -> None:
    data = {
        "config": {
            "type": "humaneval",
            "output_dir": "/out",
            "params": {
                "limit_samples": 10,
                "parallelism": 2,
                "max_retries": 0,
                "request_timeout": 5,
                "temperature": 0.7,
                "top_p": 0.9,
                "max_new_tokens": 256,
                "extra": {"dataset_dir": "/datasets"},
            },
        },
        "target": {
            "api_endpoint": {
                "url": "https://h/v1/completions",
                "model_id": "m",
                "type": "completions",
                "api_key_name": "MY_KEY",
                "adapter_config": {"ignored": True},
            }
        },
    }
    path = tmp_path / "run_config.yml"
    path.write_text(yaml.safe_dump(data))
    cfg = load_run_config(path)
    assert cfg.params.limit_samples == 10 and cfg.params.request_timeout == 5.0
    assert cfg.params.extra == {"dataset_dir": "/datasets"}
    assert cfg.endpoint.type == "completions"
    assert cfg.api_key({"MY_KEY": "k"}) == "k"
    assert cfg.echo()["params"]["max_new_tokens"] == 256
    with pytest.raises(ConfigError, match="MY_KEY .* is not set"):
        cfg.api_key({})


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"config": {"output_dir": "/r"}}, "key 'config.type': is missing"),
        ({"config": {"type": "gsm8k", "params": {"parallelism": 0}}}, "config.params.parallelism"),
        ({"config": {"type": "gsm8k", "params": {"limit_samples": "x"}}}, "must be an integer"),
        ({"config": {"type": "gsm8k", "params": {"top_p": 2}}}, "config.params.top_p"),
        ({"config": {"type": "gsm8k", "params": [1]}}, "must be a mapping"),
        ({"target": {"api_endpoint": {"url": "h:80", "model_id": "m"}}}, "http:// or https://"),
        ({"target": {"api_endpoint": {"url": "http://h", "model_id": "m", "type": "x"}}}, "type"),
        ({"target": {}}, "target.api_endpoint': is missing"),
    ],
)
def test_errors_name_the_key(patch: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_run_config({**MINIMAL, **patch}, source="run_config.yml")


def test_unreadable_and_invalid_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_run_config(tmp_path / "missing.yml")
    bad = tmp_path / "bad.yml"
    bad.write_text("config: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_run_config(bad)
