"""NeMo's config semantics on Hydra/OmegaConf/python-dotenv: sibling-file defaults, the
override grammar, helper blocks, resolvers, env-file precedence, the older ``api_key``
spelling, and one-line errors naming the file, the key path and a fix that works pasted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from launcher import dotenv
from launcher.apikey import looks_like_secret
from launcher.config import load_config
from launcher.errors import ConfigError
from launcher.prepare import ConfigOptions, load

REPO = Path(__file__).resolve().parents[2]
BODY = {
    "target": {"api_endpoint": {"url": "http://ep/v1/chat/completions", "model_id": "m"}},
    "evaluation": {"tasks": [{"name": "gsm8k"}]},
}


def write(folder: Path, data, name: str = "c.yaml") -> str:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data, sort_keys=False))
    return str(path)


def error_of(path: str | None, overrides=(), environ=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(path, overrides, environ)
    message = info.value.message
    assert "\n" not in message
    return message


# --------------------------------------------------------------------------- defaults lists


def test_sibling_file_defaults_resolve_against_the_config_folder(tmp_path, monkeypatch):
    folder = tmp_path / "configs"
    write(folder, {"target": {"api_endpoint": {"url": "http://sib/v1/chat/completions",
                                               "model_id": "from-sibling"}}}, "_endpoints.yaml")
    path = write(folder, {"defaults": ["_endpoints", {"execution": "local"}, "_self_"],
                          "target": {"api_endpoint": {"model_id": "mine"}},
                          "evaluation": {"tasks": [{"name": "gsm8k"}]}})
    monkeypatch.chdir(tmp_path)  # elsewhere: the entry must not resolve against the cwd
    config, raw = load_config(path)
    assert config.target.api_endpoint.url == "http://sib/v1/chat/completions"
    assert config.target.api_endpoint.model_id == "mine"  # _self_ after the sibling wins
    assert config.execution.output_dir == "./results"  # the packaged group
    assert raw["defaults"] == ["_endpoints", {"execution": "local"}, "_self_"]


def test_sibling_before_self_loses_and_after_self_wins(tmp_path):
    write(tmp_path, {"execution": {"mode": "parallel"}}, "_mode.yaml")
    first = write(tmp_path, {"defaults": ["_mode", "_self_"], "execution": {"mode": "sequential"},
                             **BODY}, "first.yaml")
    last = write(tmp_path, {"defaults": ["_self_", "_mode"], "execution": {"mode": "sequential"},
                            **BODY}, "last.yaml")
    assert load_config(first)[0].execution.mode == "sequential"
    assert load_config(last)[0].execution.mode == "parallel"


def test_config_dir_and_name_find_siblings(tmp_path):
    write(tmp_path, {"target": {"api_endpoint": {"model_id": "sib"}}}, "_ep.yaml")
    write(tmp_path, {"defaults": ["_ep", "_self_"], **{
        "target": {"api_endpoint": {"url": "http://x/v1/chat/completions"}}},
        "evaluation": BODY["evaluation"]})
    loaded = load(ConfigOptions(config_dir=str(tmp_path), config_name="c"))
    assert loaded.config.target.api_endpoint.model_id == "sib"


def test_missing_sibling_and_bad_sibling_are_one_line(tmp_path):
    path = write(tmp_path, {"defaults": ["_self_", "_nope"], **BODY})
    message = error_of(path)
    assert message.startswith(f"{path}, key 'defaults[1]': no config '_nope'")
    assert str(tmp_path / "_nope.yaml") in message
    write(tmp_path, "url: [1\n", "_broken.yaml")
    path = write(tmp_path, {"defaults": ["_broken", "_self_"], **BODY}, "d.yaml")
    assert error_of(path).startswith(f"{tmp_path / '_broken.yaml'}: malformed YAML at line 2")


def test_group_override_on_the_command_line(tmp_path):
    path = write(tmp_path, {"defaults": [{"execution": "local"}, "_self_"], **BODY})
    assert load_config(path, ["execution=local"])[0].execution.type == "local"
    message = error_of(path, ["execution=slurm"])
    assert "unknown execution 'slurm' (available: local, slurm/default)" in message


# --------------------------------------------------------------------------- -o grammar


def test_add_force_add_delete_and_indexes(tmp_path):
    path = write(tmp_path, {**BODY, "evaluation": {
        "tasks": [{"name": "gsm8k", "timeout": 5}, {"name": "humaneval"}]}})
    config, raw = load_config(path, [
        "+evaluation.tasks.1.timeout=60",       # add a key that is not there
        "++execution.mode=parallel",            # add or replace (it is there)
        "++evaluation.env_vars={A: lit:x}",     # add or replace (it is not there)
        "~evaluation.tasks.0.timeout",          # delete
        "evaluation.tasks.2={name: mmlu}",      # one past the end appends
    ])
    tasks = config.evaluation.tasks
    assert [t.name for t in tasks] == ["gsm8k", "humaneval", "mmlu"]
    assert tasks[0].timeout is None and tasks[1].timeout == 60
    assert config.execution.mode == "parallel" and config.evaluation.env_vars == {"A": "lit:x"}
    config, _ = load_config(path, ["~evaluation.tasks.1"])
    assert [t.name for t in config.evaluation.tasks] == ["gsm8k"]


def test_add_on_an_existing_key_fails_with_a_pasteable_fix(tmp_path):
    path = write(tmp_path, BODY)
    message = error_of(path, ["+execution.mode=parallel"])
    assert message.startswith("-o, key 'execution.mode': ")
    assert "already set" in message
    fix = message.split("write -o ")[1].split(" ")[0]
    assert fix == "execution.mode=parallel"
    assert load_config(path, [fix])[0].execution.mode == "parallel"


def test_delete_of_a_missing_key_and_bad_values(tmp_path):
    path = write(tmp_path, BODY)
    assert "cannot delete 'execution.nope', there is no such key" in error_of(
        path, ["~execution.nope"])
    assert "cannot delete" in error_of(path, ["~execution.mode=parallel"])
    message = error_of(path, ["execution.output_dir=a,b"])
    assert "looks like a sweep" in message
    fix = message.split("quote it: -o ")[1].split(" or ")[0].strip('"')
    assert load_config(path, [fix])[0].execution.output_dir == "a,b"


def test_missing_value_fix_works_when_pasted(tmp_path):
    path = write(tmp_path, {"target": {"api_endpoint": {"model_id": "m"}},
                            "evaluation": BODY["evaluation"]})
    message = error_of(path)
    assert message.startswith(f"{path}, key 'target.api_endpoint.url': required key missing")
    assert "-o target.api_endpoint.url=http://localhost:8000/v1/chat/completions" in message
    config, _ = load_config(path, ["target.api_endpoint.url=http://h:8000/v1/chat/completions"])
    assert config.target.api_endpoint.url == "http://h:8000/v1/chat/completions"


# --------------------------------------------------------------------------- ${...}


def test_top_level_helper_blocks_are_interpolated_then_dropped(tmp_path):
    path = write(tmp_path, {
        "common": {"model": "llama", "limit": 4, "host": "http://h:8000"},
        "target": {"api_endpoint": {"url": "${common.host}/v1/chat/completions",
                                    "model_id": "${common.model}"}},
        "evaluation": {"tasks": [{"name": "gsm8k", "nemo_evaluator_config": {"config": {
            "params": {"limit_samples": "${common.limit}"}}}}]},
    })
    config, raw = load_config(path)
    assert config.target.api_endpoint.url == "http://h:8000/v1/chat/completions"
    assert config.target.api_endpoint.model_id == "llama"
    assert config.evaluation.tasks[0].nemo_evaluator_config["config"]["params"][
        "limit_samples"] == 4
    assert raw["common"]["model"] == "llama"


def test_unreferenced_unknown_top_level_key_is_still_an_error(tmp_path):
    path = write(tmp_path, {**BODY, "evalution": {"tasks": []}})
    message = error_of(path)
    assert message.startswith(path) and "unknown key 'evalution'" in message
    assert "did you mean 'evaluation'" in message


def test_resolvers_env_default_select_and_env_file(tmp_path):
    (tmp_path / ".env").write_text("OUT_DIR=/from/dotenv\n")
    path = write(tmp_path, {**BODY, "common": {"mode": "parallel"}, "execution": {
        "output_dir": "${oc.env:OUT_DIR}",
        "mode": "${oc.select:common.mode,sequential}",
        "extra_docker_args": "${oc.env:UNSET_FOR_TEST,--network none}",
    }})
    environ = dotenv.host_environment(path, None, environ={})
    config, _ = load_config(path, environ=environ)
    assert config.execution.output_dir == "/from/dotenv"
    assert config.execution.mode == "parallel"
    assert config.execution.extra_docker_args == "--network none"
    assert "OUT_DIR" not in os.environ  # env files stay in memory


def test_interpolation_errors_name_file_and_key(tmp_path):
    path = write(tmp_path, {**BODY, "execution": {"output_dir": "${oc.env:NOPE_X}"}})
    message = error_of(path, environ={})
    assert message.startswith(f"{path}, key 'execution.output_dir': ${{oc.env:NOPE_X}} needs")
    assert "${oc.env:NOPE_X,value}" in message
    path = write(tmp_path, {**BODY, "execution": {"output_dir": "${common.nope}"}})
    assert "'${common.nope}' refers to a key that does not exist" in error_of(path)


# --------------------------------------------------------------------------- .env


def test_dotenv_precedence_and_python_dotenv_syntax(tmp_path):
    (tmp_path / ".env").write_text('A=beside\nB=beside\nexport M="two\\nlines"\nQ=\'$NOT\'\n')
    (tmp_path / "x.env").write_text("B=file\nC=file # comment\nD=${A}\n")
    env = dotenv.host_environment(str(tmp_path / "c.yaml"), str(tmp_path / "x.env"),
                                  environ={"C": "host"})
    assert (env["A"], env["B"], env["C"]) == ("beside", "file", "host")
    assert env["M"] == "two\nlines" and env["Q"] == "$NOT"
    assert env["D"] == "${A}"  # literal: no expansion
    for bad, line in (("OK=1\nnot a pair\n", 2), ("9X=1\n", 1), ("A=1\n=x\n", 2)):
        (tmp_path / "bad.env").write_text(bad)
        with pytest.raises(ConfigError, match=f"line {line} is not NAME=value"):
            dotenv.host_environment(None, str(tmp_path / "bad.env"), environ={})


# --------------------------------------------------------------------------- api_key


def test_old_api_key_spelling_in_the_file_and_on_the_command_line(tmp_path):
    notes: list[str] = []
    path = write(tmp_path, {**BODY, "target": {"api_endpoint": {
        **BODY["target"]["api_endpoint"], "api_key": "MY_KEY"}}})
    config, raw = load_config(path, note=notes.append)
    assert config.target.api_endpoint.api_key_name == "MY_KEY"
    assert "api_key" not in raw["target"]["api_endpoint"]
    assert len(notes) == 1 and "target.api_endpoint.api_key_name" in notes[0]
    notes.clear()
    config, _ = load_config(write(tmp_path, BODY, "b.yaml"),
                            ["target.api_endpoint.api_key=OTHER_KEY"], note=notes.append)
    assert config.target.api_endpoint.api_key_name == "OTHER_KEY" and len(notes) == 1


def test_old_spelling_on_the_command_line_replaces_the_files_name(tmp_path):
    path = write(tmp_path, {**BODY, "target": {"api_endpoint": {
        **BODY["target"]["api_endpoint"], "api_key_name": "NGC_API_KEY"}}})
    for override in ("target.api_endpoint.api_key=API_KEY", "+target.api_endpoint.api_key=API_KEY"):
        config, _ = load_config(path, [override], note=lambda _: None)
        assert config.target.api_endpoint.api_key_name == "API_KEY"


def test_both_spellings_is_an_error(tmp_path):
    path = write(tmp_path, {**BODY, "target": {"api_endpoint": {
        **BODY["target"]["api_endpoint"], "api_key": "A_KEY", "api_key_name": "B_KEY"}}})
    assert "key 'target.api_endpoint.api_key': both api_key" in error_of(path)
    message = error_of(write(tmp_path, BODY, "b.yaml"), [
        "target.api_endpoint.api_key=A_KEY", "target.api_endpoint.api_key_name=B_KEY"])
    assert "both target.api_endpoint.api_key" in message


SECRETS = ["sk-proj-abcDEF1234567890xyz", "nvapi-AbCdEf0123456789abcdef",
           "hf_abcdefghijklmnopqrstu", "aB3dE5gH7jK9mN1pQ3sT5vX7", "my key", "a.b=c", "12345"]


@pytest.mark.parametrize("secret", SECRETS)
@pytest.mark.parametrize("key", ["api_key", "api_key_name"])
def test_a_literal_key_is_refused_and_never_echoed(tmp_path, secret, key):
    path = write(tmp_path, BODY)
    with pytest.raises(ConfigError) as info:
        load_config(path, [f"target.api_endpoint.{key}='{secret}'"], note=lambda _: None)
    message = info.value.message
    assert secret not in message and "not shown" in message
    assert f"key 'target.api_endpoint.{key}'" in message
    assert "-o target.api_endpoint.api_key_name=NGC_API_KEY" in message


def test_secret_heuristic_leaves_names_alone():
    for name in ("NGC_API_KEY", "OPENAI_API_KEY", "API_KEY", "hf_token",
                 "MY_VERY_LONG_SERVICE_API_KEY_2"):
        assert not looks_like_secret(name)


def test_quick_start_command_works_in_dry_run(tmp_path):
    """The reference docs' quick start, verbatim (plus --dry-run)."""
    env = {**os.environ, "API_KEY": "sk-quick-start-secret", "HF_TOKEN": "hf-secret",
           "DOCKER_HOST": f"unix://{tmp_path}/nowhere.sock"}
    proc = subprocess.run([sys.executable, "-m", "launcher", "run", "--config-dir",
                           str(REPO / "examples"), "--config-name",
                           "local_llama_3_1_8b_instruct", "-o",
                           "target.api_endpoint.api_key=API_KEY", "--dry-run"],
                          capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    document = yaml.safe_load(proc.stdout)
    assert document["config"]["target"]["api_endpoint"]["api_key_name"] == "API_KEY"
    note, *notices = proc.stderr.strip().splitlines()
    assert note == (
        "note: target.api_endpoint.api_key is the older spelling of "
        "target.api_endpoint.api_key_name (the NAME of the host environment variable holding "
        "the key); use -o target.api_endpoint.api_key_name=NAME")
    # The reference's short names resolve, each with a notice naming the harness chosen.
    assert [line.split("': ", 1)[1].split(";")[0] for line in notices] == [
        "task 'ifeval' is in 2 harnesses", "task 'gpqa_diamond' is in 2 harnesses",
        "task 'mbpp' of the reference's older catalog is now"
        " 'bigcode-evaluation-harness.mbpp-chat' (chat)"]
    assert [job["image"].rsplit("/", 1)[1] for job in document["plan"]["jobs"]] == [
        "lm-evaluation-harness:26.03", "simple-evals:26.03", "bigcode-evaluation-harness:26.03"]
    assert "sk-quick-start-secret" not in proc.stdout + proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_bad_sibling_through_the_cli_is_one_line_exit_2(tmp_path):
    write(tmp_path, "a: [1\n", "_broken.yaml")
    path = write(tmp_path, {"defaults": ["_broken", "_self_"], **BODY})
    proc = subprocess.run([sys.executable, "-m", "launcher", "config", "validate", path],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("error: ")


def test_group_override_on_a_file_without_defaults_and_yml_suffix(tmp_path):
    path = write(tmp_path, {**BODY, "execution": {"mode": "parallel"}})
    config, _ = load_config(path, ["execution=local"])
    assert config.execution.mode == "parallel" and config.execution.type == "local"
    assert "unknown execution 'slurm'" in error_of(path, ["execution=slurm"])
    yml = write(tmp_path, BODY, "c.yml")
    assert error_of(yml).startswith(f"{yml}: expected a .yaml file")
    assert "rename it to c.yaml" in error_of(yml)


def test_tasks_addressed_by_name(tmp_path):
    path = write(tmp_path, {**BODY, "evaluation": {"tasks": [
        {"name": "gsm8k"}, {"name": "lm-evaluation-harness.ifeval"}]}})
    config, _ = load_config(path, ["+evaluation.tasks.gsm8k.timeout=600",
                                   "+evaluation.tasks.ifeval.env_vars={A: lit:x}"])
    assert config.evaluation.tasks[0].timeout == 600
    assert config.evaluation.tasks[1].env_vars == {"A": "lit:x"}
    message = error_of(path, ["evaluation.tasks.mmlu.timeout=5"])
    assert "no item is named 'mmlu'" in message and "evaluation.tasks.0.timeout" in message


@pytest.mark.parametrize(("defaults", "extra", "overrides", "needle"), [
    (["_list", "_self_"], {}, [], "_list.yaml: expected a mapping at the top level, got a list"),
    ([{"a": 1, "b": 2}], {}, [], "key 'defaults': Too many keys in default item"),
    ([5], {}, [], "key 'defaults': Unsupported type in defaults"),
    (["_self_"], {"x": "${a"}, [], "key 'x': cannot parse the ${...} in this value"),
    (["_self_"], {}, ["=x"], "override '=x' is not of the form dotted.key=value"),
    (["_self_"], {}, ["a..b=1"], "override 'a..b=1' is not of the form dotted.key=value"),
    (["_self_"], {}, ["@x=1"], "override '@x=1' is not of the form"),
])
def test_malformed_input_is_one_config_error_line(tmp_path, defaults, extra, overrides, needle):
    (tmp_path / "_list.yaml").write_text("- 1\n")
    path = write(tmp_path, {"defaults": defaults, **BODY, **extra})
    assert needle in error_of(path, overrides)


def test_files_that_are_not_utf8(tmp_path):
    (tmp_path / "c.yaml").write_bytes(b"\xff\xfe: 1\n")
    assert "not UTF-8 text" in error_of(str(tmp_path / "c.yaml"))
    (tmp_path / "bad.env").write_bytes(b"\x00\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8 text"):
        dotenv.host_environment(None, str(tmp_path / "bad.env"), environ={})
