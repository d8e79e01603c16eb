"""Config loading: defaults list, --config-dir/--config-name, ${...}, env files, -t."""

from __future__ import annotations

import pytest
import yaml

from launcher import dotenv, loader
from launcher.config import load_config, locate
from launcher.errors import ConfigError
from launcher.prepare import ConfigOptions, load, select_tasks

BODY = {
    "target": {"api_endpoint": {"url": "http://ep/v1/chat/completions", "model_id": "m"}},
    "evaluation": {"tasks": [{"name": "gsm8k"}, {"name": "humaneval"}]},
}


def compose(user: dict, tmp_path) -> dict:
    """The composed, resolved raw mapping of a config file holding ``user``."""
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({**BODY, **user}))
    return load_config(str(path))[1]


def test_defaults_list_resolves_packaged_groups(tmp_path):
    data = compose({"defaults": [{"execution": "local"}, {"deployment": "none"}, "_self_"],
                    "execution": {"mode": "parallel"}}, tmp_path)
    assert data["execution"]["type"] == "local" and data["execution"]["mode"] == "parallel"
    assert data["execution"]["max_parallel"] == 4
    assert data["deployment"] == {"type": "none"}


def test_self_first_lets_defaults_win(tmp_path):
    data = compose({"defaults": ["_self_", {"execution": "local"}],
                    "execution": {"mode": "parallel"}}, tmp_path)
    assert data["execution"]["mode"] == "sequential"


def test_no_defaults_list_means_the_usual_one_with_the_file_winning(tmp_path):
    data = compose({"execution": {"mode": "parallel"}}, tmp_path)
    assert data["execution"]["mode"] == "parallel" and data["execution"]["type"] == "local"
    assert data["deployment"] == {"type": "none"}


@pytest.mark.parametrize(("defaults", "needle", "key"), [
    ([{"execution": "slurm"}], "unknown execution 'slurm' (available: local, slurm/default)",
     "defaults[0].execution"),
    (["_self_", {"cluster": "x"}], "unknown defaults group 'cluster'", "defaults[1]"),
    (["oops"], "no config 'oops'", "defaults[0]"),
])
def test_bad_defaults(tmp_path, defaults, needle, key):
    with pytest.raises(ConfigError) as info:
        compose({"defaults": defaults}, tmp_path)
    assert needle in info.value.message and f"key '{key}'" in info.value.message
    assert info.value.message.startswith(str(tmp_path / "c.yaml"))
    assert "\n" not in info.value.message


def test_locate():
    assert locate("a.yaml", None, None) == "a.yaml"
    assert locate(None, "examples", "x") == "examples/x.yaml"
    assert locate(None, "examples", "x.yaml") == "examples/x.yaml"
    assert locate(None, None, "x") == "./x.yaml"
    with pytest.raises(ConfigError, match="needs --config-name"):
        locate(None, "examples", None)


def test_interpolation_types_env_and_errors():
    data = {"a": {"n": 3, "s": "x"}, "ref": "${a.n}", "text": "n=${a.n}/${a.s}",
            "env": "${oc.env:HOME_X}", "dflt": "${oc.env:NOPE,'fallback'}",
            "chain": "${ref}", "esc": "\\${a.n}"}
    out = loader.resolve(data, {"HOME_X": "/h"}, source="c.yaml")
    assert out["ref"] == 3 and out["text"] == "n=3/x" and out["env"] == "/h"
    assert out["dflt"] == "fallback" and out["chain"] == 3 and out["esc"] == "${a.n}"
    with pytest.raises(ConfigError, match="circular reference: a -> b -> a"):
        loader.resolve({"a": "${b}", "b": "${a}"}, {}, source="c.yaml")
    with pytest.raises(ConfigError, match="needs host variable NOPE"):
        loader.resolve({"a": "${oc.env:NOPE}"}, {}, source="c.yaml")
    with pytest.raises(ConfigError, match="unsupported resolver 'nope'"):
        loader.resolve({"a": "${nope:x}"}, {}, source="c.yaml")


def test_dotenv_parsing_and_precedence(tmp_path):
    assert dotenv.parse("# c\nexport A=1\nB='two words'\nC=x # note\n", source="f") == {
        "A": "1", "B": "two words", "C": "x"}
    with pytest.raises(ConfigError, match="line 1 is not NAME=value"):
        dotenv.parse("junk", source="f")
    (tmp_path / ".env").write_text("A=beside\nB=beside\nC=beside\n")
    (tmp_path / "extra.env").write_text("B=file\nC=file\n")
    env = dotenv.host_environment(str(tmp_path / "c.yaml"), str(tmp_path / "extra.env"),
                                  environ={"C": "set"})
    assert (env["A"], env["B"], env["C"]) == ("beside", "file", "set")


def test_env_file_feeds_interpolation(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(
        {**BODY, "execution": {"output_dir": "${oc.env:OUT_FROM_FILE}"}}))
    (tmp_path / "vars.env").write_text("OUT_FROM_FILE=/from/env/file\n")
    loaded = load(ConfigOptions(config=str(tmp_path / "c.yaml"),
                                env_file=str(tmp_path / "vars.env")))
    assert loaded.config.execution.output_dir == "/from/env/file"


def test_select_tasks(tmp_path):
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(BODY))
    loaded = load(ConfigOptions(config=str(tmp_path / "c.yaml")))
    assert [t.name for t in select_tasks(loaded, ["humaneval"]).config.evaluation.tasks] == [
        "humaneval"]
    assert len(select_tasks(loaded, []).config.evaluation.tasks) == 2


def test_builtin_defaults_alone_need_values():
    with pytest.raises(ConfigError, match="a value is required here"):
        load_config(None)
