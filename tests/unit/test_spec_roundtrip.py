"""``run.sh`` is the command the backend ran: the ``docker run`` words of every generated
script, parsed back (shlex), give exactly the ContainerSpec the backend was given."""

from __future__ import annotations

import csv
import os
import re
import shlex
import signal

import attrs
import pytest
import yaml

from launcher import backends, hooks, labels, runs
from launcher.commands import run as run_cmd
from launcher.envvars import EnvVar
from launcher.gpus import GpuRequest
from launcher.hostpaths import HostSource
from launcher.prepare import ConfigOptions
from launcher.spec import ContainerSpec, MountSpec
from tests.unit.fake_backend import FakeBackend

SECRET = "s3cr3t-value-never-in-scripts"


def docker_run_of(script: str) -> list[str]:
    """The words of the ``docker run`` command in a rerun script (a quoted word may span
    lines: a multi-line pre_cmd)."""
    start = re.search(r"^(exec )?docker run", script, re.MULTILINE)
    assert start is not None
    lexer = shlex.shlex(script[start.start():].removeprefix("exec ").replace("\\\n", " "),
                        posix=True, punctuation_chars="|&;")
    lexer.whitespace_split = True
    words = []
    for word in lexer:
        if word == "\n" or word in ("|", "2>&1", "&&", ";") or word.startswith("2>"):
            break
        words.append(word)
    return words


def _mount(value: str) -> MountSpec:
    fields = dict(f.partition("=")[::2] for f in next(csv.reader([value])))
    return MountSpec(fields["dst"], HostSource(fields["type"], fields["src"],
                                               fields.get("volume-subpath", "")),
                     "readonly" in fields)


def _gpus(value: str) -> GpuRequest:
    """A ``--gpus`` value as docker's CLI reads it (opts/gpus.go): CSV fields, a bare one is
    the count, one GPU when neither a count nor devices are given."""
    fields: dict = {}
    for field in next(csv.reader([value])):
        key, eq, item = field.partition("=")
        if not eq:
            fields["count"] = -1 if field == "all" else int(field)
        elif key in ("device", "capabilities"):
            fields["device_ids" if key == "device" else key] = tuple(item.split(","))
        else:
            fields[key] = item
    if "count" not in fields and "device_ids" not in fields:
        fields["count"] = 1
    return GpuRequest(**fields)


def parse(words: list[str]) -> ContainerSpec:
    """``docker run`` words → ContainerSpec (the flags scripts.docker_run_words writes)."""
    assert words[:3] == ["docker", "run", "--rm"], words[:3]
    fields: dict = {"init": False, "labels": {}, "mounts": [], "add_hosts": [], "env": [],
                    "devices": [], "aliases": []}
    i = 3
    single = {"--user": "user", "--network": "network", "--shm-size": "shm_size",
              "--memory": "mem_limit", "--ipc": "ipc_mode", "--runtime": "runtime",
              "--entrypoint": "entrypoint"}
    while words[i].startswith("-"):
        flag = words[i]
        if flag == "--init":
            fields["init"] = True
            i += 1
            continue
        value = words[i + 1]
        i += 2
        if flag == "--label":
            key, _, val = value.partition("=")
            fields["labels"][key] = val
        elif flag == "--mount":
            fields["mounts"].append(_mount(value))
        elif flag == "--add-host":
            host, _, ip = value.partition(":")
            fields["add_hosts"].append((host, ip))
        elif flag == "--network-alias":
            fields["aliases"].append(value)
        elif flag == "--cpus":
            fields["cpus"] = float(value)
        elif flag == "--gpus":
            fields["gpus"] = _gpus(value)
        elif flag == "--device":
            fields["devices"].append(value)
        elif flag == "-e":
            name, eq, rest = value.partition("=")
            ref = re.fullmatch(r"\$\{(\w+)(-?)\}", rest)
            fields["env"].append(EnvVar(name, host_name=name) if not eq else
                                 EnvVar(name, host_name=ref.group(1), runtime=bool(ref.group(2)))
                                 if ref else EnvVar(name, literal=rest))
        else:
            fields[single[flag]] = value
    return ContainerSpec(
        image=words[i], command=tuple(words[i + 1:]),
        **{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


@pytest.mark.parametrize("volume_output", [False, True])
def test_every_run_sh_parses_back_to_the_spec_the_backend_ran(tmp_path, monkeypatch,
                                                              volume_output):
    fake = FakeBackend()
    monkeypatch.setattr(backends, "connect", lambda execution=None: fake)
    monkeypatch.setenv(labels.LABELS_ENV, "suite=roundtrip")
    monkeypatch.setenv(hooks.TRUST_ENV, "1")
    for name in ("UNIT_KEY", "HOST_VAR", "FROMHOST"):
        monkeypatch.setenv(name, SECRET)
    data = tmp_path / "data"
    data.mkdir()
    (data / "test.jsonl").write_text("")
    extra = (f"--network n --add-host h.local:10.0.0.1 -v named:/named:ro -v {data}:/extra "
             "--shm-size 1g -m 2g --cpus 1.5 --ipc host -e LIT=some-value -e FROMHOST "
             "--gpus '\"device=0,1\",capabilities=compute' --device /dev/null "
             "--device nvidia.com/gpu=all --runtime nvidia")
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump({
        "execution": {"output_dir": str(tmp_path / "out"), "extra_docker_args": extra},
        "target": {"api_endpoint": {"url": "http://ep:8000/v1/chat/completions",
                                    "model_id": "m", "api_key_name": "UNIT_KEY"}},
        "env_vars": {"INNER": "HOST_VAR", "MODE": "lit:fast", "SCRATCH": "runtime:RT_VAR"},
        "evaluation": {"post_cmd": "ls /results",
                       "tasks": [{"name": "gsm8k", "dataset_dir": str(data)},
                                 {"name": "humaneval",
                                  "pre_cmd": "export A='it''s'\necho \"$A\" | tee /tmp/x\n"}]},
    }))
    if volume_output:  # results in a named volume: the script is an `exec docker run`
        real = fake.path_translator

        def translator(output_dir, override=None):
            base = real(output_dir, override)
            return attrs.evolve(base, container_id="c" * 64, mounts=[
                {"Type": "volume", "Name": "evals", "Destination": output_dir, "Source": ""},
                {"Type": "bind", "Source": f"/host{data}", "Destination": str(data)}],
                volume_subpath_supported=True)

        monkeypatch.setattr(fake, "path_translator", translator)
    sigterm = signal.getsignal(signal.SIGTERM)  # the scheduler installs its own handler
    try:
        code = run_cmd.run(ConfigOptions(config=str(path)), (), dry_run=False,
                           host_output_dir=None)
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    assert code == 0
    (run,) = runs.all_runs(str(tmp_path / "out"))
    jobs = fake.jobs_started()
    assert len(jobs) == 2
    for job, started in zip(run.invocation().jobs, jobs, strict=True):
        script = (tmp_path / "out" / os.path.basename(run.dir) / os.path.basename(job.job_dir)
                  / "run.sh").read_text()
        assert SECRET not in script
        assert SECRET in started.env.values()  # the values went to the backend, in memory
        assert parse(docker_run_of(script)) == attrs.evolve(started.spec, name=None)
        assert started.spec.labels["suite"] == "roundtrip"
        assert started.spec.gpus == GpuRequest(device_ids=("0", "1"),
                                               capabilities=("compute",))
        assert started.spec.devices == ("/dev/null:/dev/null:rwm", "nvidia.com/gpu=all")
        assert started.spec.runtime == "nvidia"
        assert started.spec.entrypoint == hooks.SHELL and "ls /results" in started.spec.command
    if volume_output:
        assert jobs[0].spec.mounts[0].source.kind == "volume"
        assert any(m.source.source == f"/host{data}" for m in jobs[0].spec.mounts)
