from __future__ import annotations

from datetime import UTC, datetime

import pytest
import yaml

from launcher import plan
from launcher.config import load_config
from launcher.envvars import resolve
from launcher.errors import ConfigError

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def make(tmp_path, extra: dict | None = None, overrides=()):
    data = {
        "execution": {"output_dir": str(tmp_path / "out"),
                      "extra_docker_args": "--network evalnet --add-host h:1.2.3.4 "
                                           "-v /data:/data:ro -e FOO=bar"},
        "target": {"api_endpoint": {"url": "http://ep:8000/v1/chat/completions",
                                    "model_id": "m", "api_key_name": "MY_KEY"}},
        "env_vars": {"GLOBAL": "HOST_GLOBAL"},
        "evaluation": {
            "env_vars": {"SHARED": "host:HOST_SHARED"},
            "nemo_evaluator_config": {"config": {"params": {"limit_samples": 4}}},
            "tasks": [{"name": "humaneval", "env_vars": {"MODE": "lit:fast"}},
                      {"name": "gsm8k", "dataset_dir": str(tmp_path)}],
        },
    }
    data.update(extra or {})
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    config, _ = load_config(str(path), overrides)
    return plan.build(config, source=str(path), invocation_id="0123456789abcdef", now=NOW)


def test_layout_ids_and_labels(tmp_path):
    inv = make(tmp_path)
    assert inv.dir == str(tmp_path / "out" / "20260102_030405-0123456789abcdef")
    job = inv.jobs[1]
    assert job.job_id == "0123456789abcdef.1"
    assert job.job_dir == f"{inv.dir}/gsm8k.1"
    assert job.artifacts_dir == f"{inv.dir}/gsm8k.1/artifacts"
    assert job.labels == {"eval-launcher.invocation": "0123456789abcdef",
                          "eval-launcher.job": "0123456789abcdef.1",
                          "eval-launcher.task": "gsm8k"}
    assert job.image == "eval-launcher:latest"
    assert job.entrypoint == "launcher"
    assert job.command == ("harness", "run_eval", "--run_config", "/results/run_config.yml")


def test_mounts_env_and_run_config(tmp_path):
    inv = make(tmp_path)
    he, gs = inv.jobs
    assert [(m.source, m.target, m.read_only) for m in gs.mounts] == [
        (gs.artifacts_dir, "/results", False), (str(tmp_path), "/datasets", True),
        ("/data", "/data", True)]
    names = {v.name: (v.host_name, v.literal) for v in he.env}
    assert names == {"GLOBAL": ("HOST_GLOBAL", None), "SHARED": ("HOST_SHARED", None),
                     "MODE": (None, "fast"), "MY_KEY": ("MY_KEY", None), "FOO": (None, "bar")}
    assert {v.name: v.literal for v in gs.env}["NEMO_EVALUATOR_DATASET_DIR"] == "/datasets"
    assert gs.docker.network == "evalnet" and gs.docker.add_hosts == (("h", "1.2.3.4"),)
    rc = gs.run_config
    assert rc["config"]["type"] == "gsm8k" and rc["config"]["output_dir"] == "/results"
    assert rc["config"]["params"]["limit_samples"] == 4
    assert rc["target"]["api_endpoint"] == {"url": "http://ep:8000/v1/chat/completions",
                                            "model_id": "m", "type": "chat",
                                            "api_key_name": "MY_KEY"}


def test_env_values_resolved_only_from_host(tmp_path):
    he = make(tmp_path).jobs[0]
    environ = {"HOST_GLOBAL": "g", "HOST_SHARED": "s", "MY_KEY": "secret"}
    assert resolve(he.env, environ, source="c.yaml") == {
        "GLOBAL": "g", "SHARED": "s", "MODE": "fast", "MY_KEY": "secret", "FOO": "bar"}
    with pytest.raises(ConfigError, match="MY_KEY is not set"):
        resolve(he.env, {"HOST_GLOBAL": "g", "HOST_SHARED": "s"}, source="c.yaml")


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["evaluation.tasks.0.name=humanevl"], "unknown task 'humanevl'; did you mean 'humaneval'"),
        (["target.api_endpoint.type=completions"], "needs a chat endpoint"),
        (["execution.extra_docker_args=--privileged"], "unsupported docker flag '--privileged'"),
        (["evaluation.tasks.1.dataset_dir=/does/not/exist"], "dataset folder '/does/not/exist'"),
        (["evaluation.tasks.0.env_vars={OPENAI_API_KEY: 'lit:sk-123'}"], "looks like a secret"),
    ],
)
def test_plan_errors(tmp_path, overrides, expected):
    with pytest.raises(ConfigError) as info:
        make(tmp_path, overrides=overrides)
    assert expected in info.value.message
