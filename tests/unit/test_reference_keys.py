"""Keys of the reference's configs that used to stop them (issue 13): a task's own
``endpoint_type`` and the top-level ``user_provided_metadata``."""

from __future__ import annotations

import json
import signal

import pytest
import yaml

from launcher import backends, plan, runs
from launcher.commands import manage
from launcher.commands import run as run_cmd
from launcher.config import load_config
from launcher.errors import ConfigError
from launcher.prepare import ConfigOptions
from tests.unit.fake_backend import FakeBackend

CHAT_URL = "http://ep:8000/v1/chat/completions"
METADATA = {"experiment": "ablations-0820", "run_note": "limit_samples smoke test",
            "tags": ["dev", "limit10"]}


def write(tmp_path, tasks, **top) -> str:
    path = tmp_path / "eval.yaml"
    path.write_text(yaml.safe_dump({
        "execution": {"output_dir": str(tmp_path / "out")},
        "target": {"api_endpoint": {"url": CHAT_URL, "model_id": "m"}},
        "evaluation": {"tasks": tasks},
        **top,
    }))
    return str(path)


def build(path: str) -> plan.Invocation:
    config, _ = load_config(path)
    return plan.build(config, source=path, invocation_id="ab" * 8)


def api_endpoint(job: plan.Job) -> dict:
    return job.run_config["target"]["api_endpoint"]


# ------------------------------------------------------------------ endpoint_type


def test_a_task_endpoint_type_overrides_the_targets(tmp_path, capsys):
    inv = build(write(tmp_path, [
        {"name": "gsm8k"},
        {"name": "lm-evaluation-harness.mgsm", "endpoint_type": "completions",
         "nemo_evaluator_config": {"target": {"api_endpoint": {
             "url": "http://ep:8000/v1/completions"}}}},
    ]))
    assert api_endpoint(inv.jobs[0])["type"] == "chat"
    assert api_endpoint(inv.jobs[1])["type"] == "completions"
    assert api_endpoint(inv.jobs[1])["url"] == "http://ep:8000/v1/completions"
    assert capsys.readouterr().err == ""  # its own URL is of its kind: nothing to say


def test_a_completions_only_task_needs_the_override(tmp_path):
    """Without endpoint_type, mgsm (completions only) against a chat target is refused; the
    override is what makes the reference's mixed configs run."""
    with pytest.raises(ConfigError, match="needs a completions endpoint but "
                       "target.api_endpoint.type is 'chat'"):
        build(write(tmp_path, [{"name": "lm-evaluation-harness.mgsm"}]))


def test_a_mismatch_names_the_tasks_own_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        build(write(tmp_path, [{"name": "gsm8k"},
                               {"name": "lm-evaluation-harness.mgsm", "endpoint_type": "chat"}]))
    assert err.value.key == "evaluation.tasks[1].name"
    assert ("needs a completions endpoint but evaluation.tasks[1].endpoint_type is 'chat'; set "
            "evaluation.tasks[1].endpoint_type to completions") in err.value.message


def test_a_url_of_the_other_kind_gets_a_notice(tmp_path, capsys):
    inv = build(write(tmp_path, [{"name": "lm-evaluation-harness.mgsm",
                                  "endpoint_type": "completions"}]))
    assert api_endpoint(inv.jobs[0]) == {"url": CHAT_URL, "model_id": "m", "type": "completions",
                                         "api_key_name": None}
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"notice: {tmp_path / 'eval.yaml'}, key 'evaluation.tasks[0].endpoint_type': "
                   f"completions requests of this task go to {CHAT_URL}, a chat URL; give the "
                   "task its own in evaluation.tasks[0].nemo_evaluator_config.target."
                   "api_endpoint.url"]


def test_the_task_nemo_evaluator_config_type_still_wins(tmp_path):
    """As in the reference: a type set in the task's nemo_evaluator_config is kept."""
    inv = build(write(tmp_path, [{"name": "gsm8k", "endpoint_type": "chat",
                                  "nemo_evaluator_config": {"target": {"api_endpoint": {
                                      "type": "completions"}}}}]))
    assert api_endpoint(inv.jobs[0])["type"] == "completions"


@pytest.mark.parametrize("value", ["vlm", "embedding", "Chat"])
def test_an_unknown_endpoint_type_is_one_line_at_its_key(tmp_path, value):
    with pytest.raises(ConfigError) as err:
        build(write(tmp_path, [{"name": "gsm8k"}, {"name": "mmlu", "endpoint_type": value}]))
    assert err.value.key == "evaluation.tasks[1].endpoint_type"
    assert f"expected 'chat' or 'completions', got '{value}'" in err.value.message


# ------------------------------------------------------------------ user_provided_metadata


def test_metadata_reaches_our_harness_run_config_only(tmp_path):
    """Built-in tasks get it in their run config (the harness copies it into results.yml);
    external images get the run config they know; no container gets it in its environment."""
    config, raw = load_config(write(tmp_path, [{"name": "humaneval"}, {"name": "ifeval"}],
                                    user_provided_metadata=METADATA))
    assert config.user_provided_metadata == METADATA
    ours, theirs = plan.build(config, source="eval.yaml").jobs
    assert ours.run_config["user_provided_metadata"] == METADATA
    assert "ablations-0820" not in json.dumps(theirs.run_config)
    for job in (ours, theirs):
        assert not any("ablations" in (v.literal or "") for v in job.env)


def test_the_harness_copies_metadata_into_results(tmp_path):
    from launcher.harness.results import results_document
    from launcher.harness.runconfig import parse_run_config

    cfg = parse_run_config({"config": {"type": "gsm8k", "output_dir": str(tmp_path)},
                            "target": {"api_endpoint": {"url": "http://ep/v1/chat/completions",
                                                        "model_id": "m"}},
                            "user_provided_metadata": METADATA})
    assert cfg.metadata == METADATA
    from launcher.harness.scoring import Summary

    document = results_document("gsm8k", Summary(metrics={}), cfg.echo(), "m", "u",
                                metadata=cfg.metadata)
    assert document["user_provided_metadata"] == METADATA
    assert "user_provided_metadata" not in results_document(
        "gsm8k", Summary(metrics={}), cfg.echo(), "m", "u")


@pytest.mark.parametrize("block", ["evaluation", "execution"])
def test_metadata_in_a_block_says_where_it_belongs(tmp_path, block):
    path = tmp_path / "eval.yaml"
    write(tmp_path, [{"name": "humaneval"}])
    data = yaml.safe_load(path.read_text())
    data[block]["user_provided_metadata"] = METADATA
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_config(str(path))
    assert err.value.key == block
    assert ("unknown key 'user_provided_metadata': it belongs at the top level of the config, "
            "beside target and evaluation, as in the reference: move it there"
            ) in err.value.message


def test_metadata_that_is_not_a_mapping_is_one_line(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(write(tmp_path, [{"name": "humaneval"}], user_provided_metadata=["x"]))
    assert err.value.key == "user_provided_metadata"
    assert "expected a mapping, got list" in err.value.message


def test_metadata_is_kept_in_the_invocation_record(tmp_path, monkeypatch, capsys):
    fake = FakeBackend()
    monkeypatch.setattr(backends, "connect", lambda execution=None: fake)
    path = write(tmp_path, [{"name": "humaneval"}], user_provided_metadata=METADATA)
    sigterm = signal.getsignal(signal.SIGTERM)  # the scheduler installs its own handler
    try:
        assert run_cmd.run(ConfigOptions(config=path), (), dry_run=False,
                           host_output_dir=None) == 0
    finally:
        signal.signal(signal.SIGTERM, sigterm)
    (found,) = runs.all_runs(str(tmp_path / "out"))
    assert found.record.user_provided_metadata == METADATA
    with open(f"{found.dir}/invocation.json") as fh:
        assert json.load(fh)["user_provided_metadata"] == METADATA
    for started in fake.jobs_started():
        assert "ablations" not in json.dumps(started.env) + repr(started.spec)
    capsys.readouterr()
    assert manage.info(str(tmp_path / "out"), found.invocation_id) == 0
    assert f"metadata     {json.dumps(METADATA, sort_keys=True)}" in capsys.readouterr().out
