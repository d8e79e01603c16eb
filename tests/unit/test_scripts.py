from __future__ import annotations

import json
from datetime import UTC, datetime

import attrs
import yaml

from launcher import plan, record, scripts
from launcher.config import load_config
from launcher.hostpaths import HostSource, PathTranslator

TRANSLATOR = PathTranslator(container_id=None, overrides={"/results": "/home/u/res"},
                            realpath=lambda p: p)


def job_and_invocation(tmp_path, **execution):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "execution": {"output_dir": "/results", "extra_docker_args": "--network n",
                      **execution},
        "target": {"api_endpoint": {"url": "http://ep/v1/chat/completions", "model_id": "m",
                                    "api_key_name": "NGC_API_KEY"}},
        "evaluation": {"env_vars": {"INNER": "HOST_VAR"}, "tasks": [{"name": "gsm8k"}]},
    }))
    config, raw = load_config(str(path))
    inv = plan.build(config, source=str(path), invocation_id="ab" * 8,
                     now=datetime(2026, 1, 1, tzinfo=UTC))
    return inv.jobs[0], inv, raw


def resolved(inv, user="1000:1000", labels=None):
    return record.resolve_jobs(inv, TRANSLATOR, user, labels or {})


def test_run_sh_uses_host_paths_and_env_names(tmp_path):
    _, inv, _ = job_and_invocation(tmp_path)
    _, (job,) = resolved(inv)
    assert job.host_dir == HostSource("bind", "/home/u/res/20260101_000000-" + "ab" * 8
                                      + "/gsm8k.0")
    text = scripts.render_job_script(job)
    assert f"JOB_DIR={job.host_dir.source}" in text
    assert f"--mount type=bind,src={job.host_dir.source}/artifacts,dst=/results" in text
    assert "/results/2026" not in text  # no launcher-side path leaks into the script
    assert "-e NGC_API_KEY" in text and '-e INNER="${HOST_VAR}"' in text
    assert ': "${NGC_API_KEY:?export NGC_API_KEY first}"' in text
    assert "--user 1000:1000" in text and "--network n" in text
    assert "--label eval-launcher.job=abababababababab.0" in text
    assert text.rstrip().endswith('exit "$rc"')


def test_run_all_runs_each_job_and_keeps_going(tmp_path):
    _, inv, _ = job_and_invocation(tmp_path)
    _, jobs = resolved(inv)
    text = scripts.render_all_script(inv.invocation_id, jobs)
    assert f"bash {jobs[0].host_dir.source}/run.sh || failed=1" in text
    assert text.rstrip().endswith('exit "$failed"')
    assert scripts.RUN_ALL == ("run_all.sh", "run_all.sequential.sh")


def test_record_redacts_literals_and_round_trips_the_plan(tmp_path):
    job, inv, raw = job_and_invocation(tmp_path)
    raw["env_vars"] = {"MODE": "lit:private-value"}
    host, jobs = resolved(inv)
    rec = record.build(inv, host, jobs, raw, {"eval-launcher:latest": "sha256:1"}, None,
                       record.Execution("sequential"))
    data = record.unstructure(rec)
    assert data["config"]["env_vars"] == {"MODE": "lit:<redacted>"}
    assert data["jobs"][0]["task"] == "gsm8k" and data["host_dir"] == host.source
    assert "NGC_API_KEY" in data["jobs"][0]["env_names"]
    again = record.structure(json.loads(json.dumps(data)))  # as read back from invocation.json
    assert again == rec
    moved = again.invocation("/elsewhere/20260101_000000-" + "ab" * 8)
    assert moved.jobs[0].job_dir == "/elsewhere/20260101_000000-abababababababab/gsm8k.0"
    assert attrs.evolve(moved.jobs[0], job_dir=job.job_dir) == job
    assert again.jobs[0].container.mounts[0].source.source.startswith("/home/u/res/")


def test_a_record_from_before_container_specs_still_loads(tmp_path):
    """invocation.json as the launcher wrote it before ContainerSpec (plan + host_view)."""
    job, inv, raw = job_and_invocation(tmp_path)
    host, (resolved_job,) = resolved(inv)
    conv = record._conv
    old = {
        "invocation_id": inv.invocation_id, "created": inv.created, "ended": None,
        "launcher_version": "0.1.0", "launcher": {"container_id": None, "host": "h", "pid": 1},
        "output_dir": inv.output_dir, "dir": inv.dir, "host_dir": host.source,
        "host_view": {"invocation": conv.unstructure(host),
                      "jobs": [conv.unstructure(resolved_job.host_dir)],
                      "mounts": [[conv.unstructure(m.source)
                                  for m in resolved_job.container.mounts]],
                      "user": "1000:1000"},
        "execution": {"mode": "sequential", "max_parallel": 1, "detached": False},
        "config": raw, "images": {}, "jobs": [{
            "job_id": job.job_id, "task": job.task, "image": job.image, "image_id": None,
            "dir": "gsm8k.0", "container_name": job.container_name,
            "env_names": resolved_job.env_names, "spec": conv.unstructure(job)}],
    }
    (tmp_path / record.RECORD).write_text(json.dumps(old))
    loaded = record.load(str(tmp_path))
    assert loaded is not None
    assert loaded.jobs[0].container == resolved_job.container
    assert loaded.jobs[0].host_dir == resolved_job.host_dir
    assert loaded.invocation(str(tmp_path)).jobs[0].task == "gsm8k"
