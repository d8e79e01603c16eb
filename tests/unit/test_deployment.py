"""Golden tests of the model server each ``deployment.type`` starts: image, command line,
mounts, GPU request, health path, network, as the reference documents them (its packaged
deployment configs and local executor: ``vllm serve <hf handle or /checkpoint> ...``,
checkpoint at /checkpoint read-only, cache at /cache, ``--gpus all``, NIM health at
``/v1/health/ready``), and the endpoint the evaluation containers are given."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from launcher import plan, scripts
from launcher.config import load_config
from launcher.errors import ConfigError
from launcher.gpus import parse_gpus
from launcher.hostpaths import HostSource
from launcher.spec import ContainerSpec, MountSpec, server_spec

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
INV = "0123456789abcdef"


def load(tmp_path, kind: str, deployment: dict[str, Any], execution: dict | None = None,
         target: dict | None = None):
    data: dict[str, Any] = {
        "defaults": [{"execution": "local"}, {"deployment": kind}, "_self_"],
        "execution": {"output_dir": str(tmp_path / "out"), **(execution or {})},
        "deployment": deployment,
        "evaluation": {"tasks": [{"name": "gsm8k"}, {"name": "humaneval"}]},
    }
    if target:
        data["target"] = target
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    config, _ = load_config(str(path))
    return config, plan.build(config, source=str(path), invocation_id=INV, now=NOW)


def spec_of(inv: plan.Invocation) -> ContainerSpec:
    assert inv.server is not None
    return server_spec(inv.server, lambda p: HostSource("bind", p), {})


def bind(path, target: str, ro: bool = False) -> MountSpec:
    return MountSpec(target, HostSource("bind", str(path)), ro)


def test_vllm_checkpoint(tmp_path):
    ckpt, cache = tmp_path / "ckpt", tmp_path / "cache"
    ckpt.mkdir()
    cache.mkdir()
    config, inv = load(tmp_path, "vllm", {"checkpoint_path": str(ckpt),
                                          "cache_path": str(cache), "served_model_name": "m"})
    spec = spec_of(inv)
    assert spec.image == "vllm/vllm-openai:latest"
    assert [spec.entrypoint, *spec.command] == [
        "vllm", "serve", "/checkpoint", "--tensor-parallel-size=8",
        "--pipeline-parallel-size=1", "--data-parallel-size=1", "--port", "8000",
        "--trust-remote-code", "--served-model-name", "m", "--gpu-memory-utilization", "0.95"]
    assert spec.mounts == (bind(ckpt, "/checkpoint", ro=True), bind(cache, "/cache"))
    assert spec.gpus == parse_gpus("all") and spec.shm_size == "100g"
    assert spec.network == f"eval-launcher-{INV}" and spec.aliases == ("eval-launcher-server",)
    assert spec.name == f"eval-launcher-{INV}-server" and spec.user is None
    assert spec.labels == {"eval-launcher.invocation": INV, "eval-launcher.role": "server"}
    assert inv.server is not None
    assert inv.server.health_url == "http://eval-launcher-server:8000/health"
    assert inv.server.readiness_timeout == 600
    ep = config.target.api_endpoint
    assert (ep.url, ep.model_id) == ("http://eval-launcher-server:8000/v1/chat/completions", "m")
    for job in inv.jobs:  # every evaluation container is on the server's network
        assert job.docker.network == f"eval-launcher-{INV}"
        assert job.run_config["target"]["api_endpoint"]["url"] == ep.url


def test_vllm_hf_handle_parallelism_extra_args_env(tmp_path):
    _, inv = load(tmp_path, "vllm", {
        "checkpoint_path": None, "hf_model_handle": "meta-llama/Llama-3.1-8B-Instruct",
        "served_model_name": "llama", "tensor_parallel_size": 2, "data_parallel_size": 4,
        "port": 8080, "gpu_memory_utilization": 0.8, "extra_args": "--max-model-len 8192",
        "env_vars": {"HF_TOKEN": "host:HF_TOKEN"}})
    spec = spec_of(inv)
    assert [spec.entrypoint, *spec.command] == [
        "vllm", "serve", "meta-llama/Llama-3.1-8B-Instruct", "--tensor-parallel-size=2",
        "--pipeline-parallel-size=1", "--data-parallel-size=4", "--port", "8080",
        "--trust-remote-code", "--served-model-name", "llama", "--gpu-memory-utilization",
        "0.8", "--max-model-len", "8192"]
    assert spec.mounts == ()
    assert [(v.name, v.host_name) for v in spec.env] == [("HF_TOKEN", "HF_TOKEN")]
    assert inv.server is not None and inv.server.port == 8080


def test_sglang(tmp_path):
    _, inv = load(tmp_path, "sglang", {"hf_model_handle": "Qwen/Qwen3-8B",
                                       "served_model_name": "qwen", "tensor_parallel_size": 1})
    spec = spec_of(inv)
    assert spec.image == "lmsysorg/sglang:latest"
    assert [spec.entrypoint, *spec.command] == [
        "python3", "-m", "sglang.launch_server", "--model-path", "Qwen/Qwen3-8B", "--host",
        "0.0.0.0", "--port", "8000", "--served-model-name", "qwen", "--tp-size", "1",
        "--dp-size", "1", "--pp-size", "1"]
    assert spec.gpus == parse_gpus("all")
    assert inv.server is not None and inv.server.health_path == "/health"


def test_trtllm(tmp_path):
    ckpt = tmp_path / "engine"
    ckpt.mkdir()
    _, inv = load(tmp_path, "trtllm", {"checkpoint_path": str(ckpt), "served_model_name": "m",
                                       "extra_args": "--max_batch_size 8"})
    spec = spec_of(inv)
    assert spec.image == "nvcr.io/nvidia/tensorrt-llm/release:1.0.0"
    assert [spec.entrypoint, *spec.command] == [
        "mpirun", "--allow-run-as-root", "--oversubscribe", "trtllm-serve", "serve",
        "/checkpoint", "--tp_size=8", "--pp_size=1", "--host", "0.0.0.0", "--port", "8000",
        "--backend", "pytorch", "--trust_remote_code", "--max_batch_size", "8"]
    assert spec.mounts == (bind(ckpt, "/checkpoint", ro=True),)
    assert spec.gpus == parse_gpus("all")


def test_nim_with_deployment_mounts(tmp_path):
    nim_cache = tmp_path / "nim-cache"
    nim_cache.mkdir()
    _, inv = load(tmp_path, "nim", {
        "image": "nvcr.io/nim/meta/llama-3.2-1b-instruct:latest",
        "served_model_name": "meta/llama-3.2-1b-instruct",
        "env_vars": {"NGC_API_KEY": "host:NGC_API_KEY"}},
        execution={"mounts": {"deployment": {str(nim_cache): "/opt/nim/.cache"}}})
    spec = spec_of(inv)
    assert spec.image == "nvcr.io/nim/meta/llama-3.2-1b-instruct:latest"
    assert [spec.entrypoint, *spec.command] == ["/opt/nvidia/nvidia_entrypoint.sh",
                                                "/opt/nim/start_server.sh"]
    assert spec.mounts == (bind(nim_cache, "/opt/nim/.cache"),)
    assert spec.gpus == parse_gpus("all")
    assert inv.server is not None
    assert inv.server.health_url == "http://eval-launcher-server:8000/v1/health/ready"
    assert inv.jobs[0].run_config["target"]["api_endpoint"]["model_id"] == (
        "meta/llama-3.2-1b-instruct")


def test_generic_no_gpu_by_default_and_shell_command(tmp_path):
    config, inv = load(tmp_path, "generic", {
        "image": "eval-launcher:latest", "served_model_name": "ref", "port": 9000,
        "command": "python -m launcher.testing.reference_endpoint --port 9000 "
                   "--host 0.0.0.0"},
        execution={"endpoint_readiness_timeout": 20})
    spec = spec_of(inv)
    assert [spec.entrypoint, *spec.command] == [
        "python", "-m", "launcher.testing.reference_endpoint", "--port", "9000", "--host",
        "0.0.0.0"]
    assert spec.gpus is None and spec.shm_size is None
    assert inv.server is not None and inv.server.readiness_timeout == 20
    assert config.target.api_endpoint.url == "http://eval-launcher-server:9000/v1/chat/completions"
    _, inv = load(tmp_path, "generic", {"image": "i", "served_model_name": "m", "gpus": 2,
                                        "command": "cd /srv && exec ./serve --port $PORT"})
    spec = spec_of(inv)
    assert (spec.entrypoint, spec.command) == ("/bin/sh", (
        "-c", "cd /srv && exec ./serve --port $PORT"))
    assert spec.gpus == parse_gpus("2")


def test_script_words_carry_network_alias_and_gpus(tmp_path):
    _, inv = load(tmp_path, "vllm", {"hf_model_handle": "h", "served_model_name": "m"})
    words = scripts.docker_run_words(spec_of(inv))
    assert f"--network eval-launcher-{INV}" in words
    assert "--network-alias eval-launcher-server" in words
    assert "--gpus all" in words and "--entrypoint vllm" in words


@pytest.mark.parametrize(("kind", "deployment", "key", "text"), [
    ("vllm", {"served_model_name": "m"}, "deployment.checkpoint_path", "hf_model_handle"),
    ("vllm", {"hf_model_handle": "h"}, "deployment.served_model_name", ""),
    ("generic", {"image": "i", "served_model_name": "m"}, "deployment.command", ""),
    ("generic", {"image": "i", "command": "c", "served_model_name": "m", "gpus": "many"},
     "deployment.gpus", "expected 'all'"),
    ("vllm", {"hf_model_handle": "h", "served_model_name": "m", "checkpoint_path": "/nope"},
     "deployment.checkpoint_path", "does not exist"),
])
def test_bad_deployments(tmp_path, kind, deployment, key, text):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, kind, deployment)
    assert err.value.key == key and text in err.value.detail


def test_url_and_model_id_come_from_the_deployment(tmp_path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, "vllm", {"hf_model_handle": "h", "served_model_name": "m"},
             target={"api_endpoint": {"url": "http://elsewhere:8000/v1/chat/completions"}})
    assert err.value.key == "target.api_endpoint.url"
    assert "comes from the deployment" in err.value.detail


def test_no_deployment_keeps_the_probe_timeout(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "target": {"api_endpoint": {"url": "http://ep:8000/v1/chat/completions",
                                    "model_id": "m"}},
        "evaluation": {"tasks": [{"name": "gsm8k"}]}}))
    config, _ = load_config(str(path))
    assert config.execution.readiness_timeout(deployed=False) == 30
    assert plan.build(config, source=str(path)).server is None


def test_server_sh_runs_the_recorded_server_spec(tmp_path):
    """server.sh's ``docker run -d`` is the server spec the backend runs (parsed back), and
    the job scripts start it unless run_all.sh did."""
    import shlex

    import attrs

    from launcher import record, serverscript
    from launcher.hostpaths import PathTranslator
    from tests.unit.test_spec_roundtrip import parse

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    _, inv = load(tmp_path, "vllm", {"checkpoint_path": str(ckpt), "served_model_name": "m",
                                     "env_vars": {"HF_TOKEN": "host:HF_TOKEN"}})
    translator = PathTranslator(container_id=None)
    host, jobs = record.resolve_jobs(inv, translator, None, {})
    server = record.resolve_server(inv, translator, {})
    rec = record.build(inv, host, jobs, {}, {}, None, record.Execution(), server=server)
    text = serverscript.render_server_script(rec, "eval-launcher:latest")
    assert text is not None and server is not None
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if "docker run -d" in line)
    end = next(i for i in range(start, len(lines)) if not lines[i].endswith("\\"))
    words = shlex.split(" ".join(line.rstrip("\\") for line in lines[start:end + 1]))
    assert words[:6] == ["docker", "run", "-d", "--init", "--name", "$NAME"]
    words = ["docker", "run", "--rm", "--init", *words[6:words.index(">/dev/null")]]
    assert parse(words) == attrs.evolve(server.container, name=None)
    assert f"NAME={server.container.name}" in lines and ': "${HF_TOKEN:?export HF_TOKEN first}"' \
        in lines
    assert "--health-url http://eval-launcher-server:8000/health" in text
    job_script = scripts.render_job_script(jobs[0], host.source)
    assert f"bash {host.source}/server.sh start" in job_script
    assert 'if [ -z "${EVAL_LAUNCHER_SERVER_UP:-}" ]; then' in job_script
    all_script = scripts.render_all_script(inv.invocation_id, jobs, host.source)
    assert all_script.index("server.sh start") < all_script.index("gsm8k.0/run.sh")


def test_gpus_for_evaluation_containers_are_opt_in_per_task(tmp_path):
    """No GPU for evaluation containers by default; a task opts in with gpus: (all or a
    count); the reference's execution.evaluation_gpu_visible sets it for every task."""
    from launcher import spec

    path = tmp_path / "c.yaml"

    def plan_of(execution: dict, tasks: list[dict]) -> plan.Invocation:
        path.write_text(yaml.safe_dump({
            "target": {"api_endpoint": {"url": "http://ep:8000/v1/chat/completions",
                                        "model_id": "m"}},
            "execution": {"output_dir": str(tmp_path / "out"), **execution},
            "evaluation": {"tasks": tasks}}))
        config, _ = load_config(str(path))
        return plan.build(config, source=str(path))

    inv = plan_of({}, [{"name": "gsm8k"}, {"name": "humaneval", "gpus": 1},
                       {"name": "gsm8k", "gpus": "all"}])
    assert [j.gpus for j in inv.jobs] == [None, "1", "all"]
    specs = [spec.for_job(j, lambda p: HostSource("bind", p), None, {}) for j in inv.jobs]
    assert [s.gpus for s in specs] == [None, parse_gpus("1"), parse_gpus("all")]
    inv = plan_of({"evaluation_gpu_visible": True}, [{"name": "gsm8k"},
                                                     {"name": "humaneval", "gpus": 0}])
    assert [j.gpus for j in inv.jobs] == ["all", None]
    inv = plan_of({}, [{"name": "gsm8k", "gpus": [0, 1]}, {"name": "gsm8k", "gpus": "0,1"},
                       {"name": "gsm8k", "gpus": "device=2"}])
    assert [j.gpus for j in inv.jobs] == ["device=0,1", "device=0,1", "device=2"]
    specs = [spec.for_job(j, lambda p: HostSource("bind", p), None, {}) for j in inv.jobs]
    assert [s.gpus.device_ids for s in specs if s.gpus] == [("0", "1"), ("0", "1"), ("2",)]
    for bad in ("0,x", [0, -1], [True], "gpu0"):
        with pytest.raises(ConfigError) as err:
            plan_of({}, [{"name": "gsm8k", "gpus": bad}])
        assert err.value.key == "evaluation.tasks[0].gpus" and "device indices" in err.value.detail


def test_dry_run_document_has_the_server(tmp_path, capsys, monkeypatch):
    from launcher.commands import run as run_cmd
    from launcher.prepare import ConfigOptions

    monkeypatch.delenv("EVAL_LAUNCHER_LABELS", raising=False)
    load(tmp_path, "vllm", {"hf_model_handle": "h", "served_model_name": "m",
                            "env_vars": {"HF_TOKEN": "host:HF_TOKEN"}})
    capsys.readouterr()
    assert run_cmd.run(ConfigOptions(config=str(tmp_path / "c.yaml")), (), dry_run=True,
                       host_output_dir=None) == 0
    document = yaml.safe_load(capsys.readouterr().out)
    srv = document["plan"]["server"]
    assert srv["image"] == "vllm/vllm-openai:latest" and srv["gpus"] == "all"
    assert srv["command"][:3] == ["vllm", "serve", "h"] and srv["env"] == ["HF_TOKEN"]
    assert srv["health"] == "http://eval-launcher-server:8000/health"
    assert srv["readiness_timeout"] == 600
    assert any(name.endswith("/server.sh") for name in document["scripts"])
    assert not (tmp_path / "out").exists()  # nothing written
