from __future__ import annotations

import json
from datetime import UTC, datetime

import attrs
import yaml

from launcher import plan, record, scripts
from launcher.config import load_config
from launcher.hostpaths import HostSource


def job_and_invocation(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "execution": {"output_dir": "/results", "extra_docker_args": "--network n"},
        "target": {"api_endpoint": {"url": "http://ep/v1/chat/completions", "model_id": "m",
                                    "api_key_name": "NGC_API_KEY"}},
        "evaluation": {"env_vars": {"INNER": "HOST_VAR"}, "tasks": [{"name": "gsm8k"}]},
    }))
    config, raw = load_config(str(path))
    inv = plan.build(config, source=str(path), invocation_id="ab" * 8,
                     now=datetime(2026, 1, 1, tzinfo=UTC))
    return inv.jobs[0], inv, raw


def test_run_sh_uses_host_paths_and_env_names(tmp_path):
    job, inv, _ = job_and_invocation(tmp_path)
    host_job = HostSource("bind", "/home/u/results/x/gsm8k.0")
    mounts = [HostSource("bind", "/home/u/results/x/gsm8k.0/artifacts")]
    text = scripts.render_job_script(job, host_job, mounts, "1000:1000")
    assert "JOB_DIR=/home/u/results/x/gsm8k.0" in text
    assert "--mount type=bind,src=/home/u/results/x/gsm8k.0/artifacts,dst=/results" in text
    assert "/results/2026" not in text  # no launcher-side path leaks into the script
    assert "-e NGC_API_KEY" in text and '-e INNER="${HOST_VAR}"' in text
    assert ': "${NGC_API_KEY:?export NGC_API_KEY first}"' in text
    assert "--user 1000:1000" in text and "--network n" in text
    assert "--label eval-launcher.job=abababababababab.0" in text
    assert text.rstrip().endswith('exit "$rc"')


def test_run_all_runs_each_job_and_keeps_going(tmp_path):
    _, inv, _ = job_and_invocation(tmp_path)
    text = scripts.render_all_script(inv, [HostSource("bind", "/h/x/gsm8k.0")])
    assert "bash /h/x/gsm8k.0/run.sh || failed=1" in text
    assert text.rstrip().endswith('exit "$failed"')


def test_record_redacts_literals_and_round_trips_the_plan(tmp_path):
    job, inv, raw = job_and_invocation(tmp_path)
    raw["env_vars"] = {"MODE": "lit:private-value"}
    view = record.HostView(HostSource("bind", "/h/x"), [HostSource("bind", "/h/x/gsm8k.0")],
                           [[HostSource("bind", "/h/x/gsm8k.0/artifacts")]], "1:1")
    rec = record.build(inv, view, raw, {"eval-launcher:latest": "sha256:1"}, None,
                       {"mode": "sequential"})
    assert rec["config"]["env_vars"] == {"MODE": "lit:<redacted>"}
    assert rec["jobs"][0]["image_id"] == "sha256:1"
    assert "NGC_API_KEY" in rec["jobs"][0]["env_names"]
    rec = json.loads(json.dumps(rec))  # as read back from invocation.json
    again, view_again = record.plan_of(rec, "/elsewhere/20260101_000000-" + "ab" * 8)
    assert view_again == view
    assert again.jobs[0].job_dir == "/elsewhere/20260101_000000-abababababababab/gsm8k.0"
    assert attrs.evolve(again.jobs[0], job_dir=job.job_dir) == job
