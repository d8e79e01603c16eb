"""``execution.extra_docker_args`` GPU and container flags (issue 13): config → spec →
``run.sh`` words and the Docker SDK's ``containers.create`` arguments; bad values are one
line at the key."""

from __future__ import annotations

import shlex
import threading
from datetime import UTC, datetime

import attrs
import pytest
import yaml
from docker.errors import APIError
from docker.types import DeviceRequest

from launcher import plan, scripts, spec
from launcher.backends import docker as docker_backend
from launcher.config import load_config
from launcher.errors import ConfigError, EnvironmentProblem
from launcher.gpus import GpuRequest
from launcher.hostpaths import HostSource
from tests.unit.test_spec_roundtrip import parse


def container(tmp_path, extra: str) -> spec.ContainerSpec:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "execution": {"output_dir": str(tmp_path / "out"), "extra_docker_args": extra},
        "target": {"api_endpoint": {"url": "http://ep/v1/chat/completions", "model_id": "m"}},
        "evaluation": {"tasks": [{"name": "gsm8k"}]},
    }))
    config, _ = load_config(str(path))
    job = plan.build(config, source=str(path), invocation_id="ab" * 8,
                     now=datetime(2026, 1, 1, tzinfo=UTC)).jobs[0]
    return spec.for_job(job, lambda p: HostSource("bind", p), None, {})


def words(s: spec.ContainerSpec) -> list[str]:
    return shlex.split(" ".join(scripts.docker_run_words(s)))


def reads_back(s: spec.ContainerSpec) -> bool:
    """run.sh's words parse back to the spec (less the name run.sh leaves out)."""
    ws = words(s)
    return parse(ws[ws.index("docker"):]) == attrs.evolve(s, name=None)


def option(ws: list[str], flag: str) -> list[str]:
    return [ws[i + 1] for i, w in enumerate(ws) if w == flag]


GPU_CASES = [  # extra_docker_args, the spec's request, run.sh's --gpus value, the engine's
    ("--gpus all", GpuRequest(count=-1), "all",
     DeviceRequest(driver="", count=-1, capabilities=[["gpu"]])),
    ("--gpus=2", GpuRequest(count=2), "2",
     DeviceRequest(driver="", count=2, capabilities=[["gpu"]])),
    ("--gpus device=0,1", GpuRequest(device_ids=("0", "1")), '"device=0,1"',
     DeviceRequest(driver="", count=0, device_ids=["0", "1"], capabilities=[["gpu"]])),
    ("--gpus '\"device=0,1\"'", GpuRequest(device_ids=("0", "1")), '"device=0,1"',
     DeviceRequest(driver="", count=0, device_ids=["0", "1"], capabilities=[["gpu"]])),
    ("--gpus \"capabilities=compute,utility\"",
     GpuRequest(count=1, capabilities=("compute", "utility")), '"capabilities=compute,utility"',
     DeviceRequest(driver="", count=1, capabilities=[["compute", "utility", "gpu"]])),
    ("--gpus 'all,driver=nvidia'", GpuRequest(count=-1, driver="nvidia"), "all,driver=nvidia",
     DeviceRequest(driver="nvidia", count=-1, capabilities=[["gpu"]])),
]


@pytest.mark.parametrize(("extra", "request_", "cli", "engine"), GPU_CASES,
                         ids=[c[0] for c in GPU_CASES])
def test_gpus_reach_run_sh_and_the_engine_alike(tmp_path, extra, request_, cli, engine):
    s = container(tmp_path, extra)
    assert s.gpus == request_
    ws = words(s)
    assert option(ws, "--gpus") == [cli]
    assert reads_back(s)
    kwargs = docker_backend.create_kwargs(s, {})
    assert kwargs["device_requests"] == [engine]
    assert kwargs["devices"] is None and kwargs["runtime"] is None


def test_device_runtime_shm_and_ipc(tmp_path):
    s = container(tmp_path, "--device /dev/fuse --device=/dev/sda:/dev/xvdc:r "
                            "--device nvidia.com/gpu=all --runtime nvidia --shm-size=16g "
                            "--ipc host")
    assert s.devices == ("/dev/fuse:/dev/fuse:rwm", "/dev/sda:/dev/xvdc:r", "nvidia.com/gpu=all")
    ws = words(s)
    assert option(ws, "--device") == list(s.devices)
    assert option(ws, "--runtime") == ["nvidia"]
    assert option(ws, "--shm-size") == ["16g"] and option(ws, "--ipc") == ["host"]
    assert reads_back(s)
    kwargs = docker_backend.create_kwargs(s, {})
    assert kwargs["devices"] == ["/dev/fuse:/dev/fuse:rwm", "/dev/sda:/dev/xvdc:r"]
    assert kwargs["device_requests"] == [DeviceRequest(driver="cdi",
                                                       device_ids=["nvidia.com/gpu=all"])]
    assert (kwargs["runtime"], kwargs["shm_size"], kwargs["ipc_mode"]) == ("nvidia", "16g", "host")


def test_no_gpu_flags_leave_the_engine_defaults(tmp_path):
    kwargs = docker_backend.create_kwargs(container(tmp_path, "--network n"), {})
    assert kwargs["device_requests"] is None and kwargs["devices"] is None
    assert kwargs["runtime"] is None


BAD = [
    ("--privileged", "unsupported docker flag '--privileged'"),
    ("--gpus", "flag '--gpus' needs a value (--gpus VALUE or --gpus=VALUE)"),
    ("--gpus --ipc host", "flag '--gpus' needs a value"),
    ("--gpus 0", "--gpus 0: '0' is not all or a positive count; write --gpus all"),
    ("--gpus many", "--gpus many: 'many' is not all or a positive count"),
    ("--gpus device=", "--gpus device=: device= needs a comma-separated list"),
    ("--gpus 'device=0,count=2'", "gives both a count and device=; give one"),
    ("--gpus options=x=y", "unexpected 'options=x=y' in 'options=x=y'"),
    ("--gpus all --gpus 1", "--gpus is given twice"),
    ("--device sda", "--device sda: cannot read 'sda': paths must be absolute"),
    ("--device /dev/a:/b:c:d", "--device /dev/a:/b:c:d: cannot read '/dev/a:/b:c:d'"),
    ("--shm-size lots", "--shm-size expects a size such as 1g or 512m, got 'lots'"),
    ("-m 2x", "--memory expects a size such as 8g or 512m, got '2x'"),
    ("--ipc everything", "--ipc expects host, private, shareable, none or container:NAME"),
    ("--runtime '/bin/x'", "--runtime expects a runtime name such as nvidia, got '/bin/x'"),
]


@pytest.mark.parametrize(("extra", "needle"), BAD, ids=[b[0] for b in BAD])
def test_bad_values_are_one_line_at_the_key(tmp_path, extra, needle):
    with pytest.raises(ConfigError) as err:
        container(tmp_path, extra)
    assert err.value.key == "execution.extra_docker_args"
    assert str(tmp_path / "c.yaml") in err.value.message
    assert needle in err.value.message, err.value.message
    assert "\n" not in err.value.message


def test_every_suggested_gpus_form_parses(tmp_path):
    """The hint's forms, pasted into extra_docker_args, are accepted."""
    for form in ("--gpus all", "--gpus 2", "--gpus device=0,1",
                 "--gpus capabilities=compute,utility"):
        assert container(tmp_path, form).gpus is not None


class _Info:
    """A DockerBackend without an engine: only what the checks read."""

    @staticmethod
    def backend(info: dict, client=None) -> docker_backend.DockerBackend:
        b = object.__new__(docker_backend.DockerBackend)
        b.info, b.client = info, client
        b._started, b._lock = {}, threading.Lock()
        return b


def test_unknown_runtime_is_named_before_anything_starts(tmp_path):
    s = container(tmp_path, "--runtime nvidia")
    backend = _Info.backend({"Runtimes": {"runc": {}, "io.containerd.runc.v2": {}}})
    with pytest.raises(EnvironmentProblem, match=r"runtime 'nvidia' \(--runtime in execution"
                       r".extra_docker_args\) is not on the Docker engine, which has "
                       r"io.containerd.runc.v2, runc: install the NVIDIA Container Toolkit"):
        backend.check_runtimes([s])
    _Info.backend({"Runtimes": {"runc": {}, "nvidia": {}}}).check_runtimes([s])


def test_engine_without_gpu_support_is_one_line(tmp_path):
    class Container:
        id = "c1"
        removed = False

        def start(self):
            raise APIError('could not select device driver "" with capabilities: [[gpu]]')

        def remove(self, force):
            Container.removed = True

    class Client:
        class containers:  # noqa: N801 - the SDK's attribute name
            @staticmethod
            def create(image, **kwargs):
                return Container()

    backend = _Info.backend({}, Client())
    with pytest.raises(EnvironmentProblem, match="cannot give this container GPUs .* install "
                       "the NVIDIA Container Toolkit"):
        backend.start(container(tmp_path, "--gpus all"), {})
    assert Container.removed
