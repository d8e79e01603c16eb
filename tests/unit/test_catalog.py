"""The task catalog: built-in + external tasks, name resolution, endpoint types, pinned
containers, and `launcher ls tasks`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import resources

import pytest
import yaml
from click.testing import CliRunner

from launcher import catalog, plan
from launcher.cli import cli
from launcher.config import load_config
from launcher.errors import ConfigError


@pytest.fixture(autouse=True)
def _default_image(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(catalog.IMAGE_ENV, raising=False)


def lookup(name: str) -> catalog.TaskSpec:
    return catalog.lookup(name, source="eval.yaml", key="evaluation.tasks[0].name")


def error(name: str, **kwargs) -> str:
    with pytest.raises(ConfigError) as info:
        if kwargs:
            catalog.resolve(name, source="eval.yaml", key="evaluation.tasks[0]", **kwargs)
        else:
            lookup(name)
    return info.value.message


# ----------------------------------------------------------------------------- the data


def test_packaged_tsv_is_found_and_counts():
    assert resources.files("launcher").joinpath(catalog.EXTERNAL_TSV).is_file()
    external = catalog.external_tasks()
    assert len(external) == 421
    assert len(catalog.all_tasks()) == 421 + len(catalog.builtin_tasks()) == 425
    assert len({t.harness for t in external}) == 23
    assert all(t.endpoint_types and not t.builtin for t in external)
    assert {tp for t in external for tp in t.endpoint_types} == {
        "chat", "completions", "vlm", "embedding"}
    assert len({t.qualified_name for t in external}) == 421  # qualified names are unique
    assert catalog.external_tasks() is external  # parsed once


def test_every_catalog_task_has_an_image():
    # The reference's 0.2.6 catalog maps ruler and AA-LCR to its long-context-eval and aa-lcr
    # images too (an earlier copy had them blank).
    assert [t.qualified_name for t in catalog.external_tasks() if not t.image] == []
    images = {t.harness: t.image for t in catalog.external_tasks()}
    assert images["ruler"] == "nvcr.io/nvidia/eval-factory/long-context-eval:26.03"
    assert images["AA-LCR"] == "nvcr.io/nvidia/eval-factory/aa-lcr:26.03"


def test_catalog_images_follow_one_pattern():
    # Every row, ruler and AA-LCR included, is <registry>/eval-factory/<image>:<release tag>,
    # one registry and tag for the whole catalog and one image per harness.
    pattern = re.compile(r"nvcr\.io/nvidia/eval-factory/([a-z0-9-]+):(\d\d\.\d\d)")
    parts = {t.qualified_name: pattern.fullmatch(t.image) for t in catalog.external_tasks()}
    assert [name for name, m in parts.items() if m is None] == []
    assert len({m.group(2) for m in parts.values() if m}) == 1
    per_harness: dict[str, set[str]] = {}
    for t in catalog.external_tasks():
        per_harness.setdefault(t.harness, set()).add(t.image)
    assert {h: len(images) for h, images in per_harness.items() if len(images) > 1} == {}
    ruler = [t for t in catalog.external_tasks() if t.harness == "ruler"]
    assert len(ruler) == 20 and {t.image.split(":")[0] for t in ruler} == {
        "nvcr.io/nvidia/eval-factory/long-context-eval"}


def test_parse_tsv_rejects_bad_rows():
    with pytest.raises(ValueError, match="header"):
        catalog.parse_tsv("a\tb\n")
    with pytest.raises(ValueError, match="line 2"):
        catalog.parse_tsv("harness\ttask\timage\tendpoint_types\nh\tt\timg\n")
    (spec,) = catalog.parse_tsv("harness\ttask\timage\tendpoint_types\nh\tt\t\tchat,vlm\n\n")
    assert spec == catalog.TaskSpec("t", "h", "", ("chat", "vlm"), False)


# ----------------------------------------------------------------------------- resolution


def test_builtin_short_and_qualified_names():
    spec = lookup("humaneval")
    assert spec.builtin and spec.harness == "eval-launcher" and spec.image == "eval-launcher:latest"
    assert lookup("eval-launcher.humaneval") == spec
    assert spec.entrypoint() == "launcher"
    assert spec.command("/results/run_config.yml") == [
        "harness", "run_eval", "--run_config", "/results/run_config.yml"]


def test_builtin_wins_over_externals_with_the_same_short_name():
    assert lookup("humaneval").builtin  # also simple_evals.humaneval and bigcode's
    assert lookup("gsm8k").builtin  # also lm-evaluation-harness.gsm8k
    external = lookup("lm-evaluation-harness.gsm8k")
    assert not external.builtin and external.endpoint_types == ("completions",)


def test_external_qualified_and_unique_short_name():
    spec = lookup("simple_evals.mmlu_pro")
    assert (spec.name, spec.harness, spec.qualified_name) == (
        "mmlu_pro", "simple_evals", "simple_evals.mmlu_pro")
    assert spec.image == "nvcr.io/nvidia/eval-factory/simple-evals:26.03"
    assert spec.entrypoint() == "nemo-evaluator"
    assert spec.command("/r/c.yml") == ["run_eval", "--run_config", "/r/c.yml"]
    assert lookup("mmlu_instruct").qualified_name == "lm-evaluation-harness.mmlu_instruct"


def test_ambiguous_short_name_resolves_by_endpoint_type_then_harness_preference(capsys):
    # ifeval: lm-evaluation-harness (chat) and codec (completions): the endpoint type decides.
    for endpoint_type, chosen in (("chat", "lm-evaluation-harness.ifeval"),
                                  ("completions", "codec.ifeval")):
        spec = catalog.resolve("ifeval", container=None, endpoint_type=endpoint_type,
                               source="eval.yaml", key="evaluation.tasks[0]")
        assert spec.qualified_name == chosen
    notices = capsys.readouterr().err.splitlines()
    assert notices[0] == (
        "notice: eval.yaml, key 'evaluation.tasks[0].name': task 'ifeval' is in 2 harnesses;"
        " using 'lm-evaluation-harness.ifeval' (chat); to run another, name it: 'codec.ifeval'")
    # humaneval_instruct: two harnesses take chat: the preference order decides.
    spec = catalog.resolve("humaneval_instruct", container=None, endpoint_type="chat",
                           source="s", key="k")
    assert spec.qualified_name == "lm-evaluation-harness.humaneval_instruct"
    assert "'bigcode-evaluation-harness.humaneval_instruct'" in capsys.readouterr().err
    # gpqa_diamond (simple_evals chat, codec completions), as the reference's examples use it.
    assert catalog.resolve("gpqa_diamond", container=None, endpoint_type="chat", source="s",
                           key="k").qualified_name == "simple_evals.gpqa_diamond"


def test_legacy_short_names_of_the_older_catalog(capsys):
    for endpoint_type in ("chat", "completions"):
        spec = catalog.resolve("mbpp", container=None, endpoint_type=endpoint_type,
                               source="s", key="k")
        assert spec.qualified_name == f"bigcode-evaluation-harness.mbpp-{endpoint_type}"
    assert "task 'mbpp' of the reference's older catalog is now" in capsys.readouterr().err


def test_ambiguous_short_name_lists_qualified_choices():
    assert error("ifeval") == (
        "eval.yaml, key 'evaluation.tasks[0].name': ambiguous task 'ifeval': qualify it as one "
        "of 'lm-evaluation-harness.ifeval', 'codec.ifeval'")
    assert error("mgsm").endswith(
        "ambiguous task 'mgsm': qualify it as one of 'lm-evaluation-harness.mgsm', "
        "'simple_evals.mgsm'")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("gsm9k", ["gsm8k"]),  # one clear match is suggested alone
        ("humanevl", ["humaneval"]),
        ("MGSM", ["lm-evaluation-harness.mgsm", "simple_evals.mgsm"]),  # ambiguous: qualified
        ("lm-evaluation-harness.gsm8", ["lm-evaluation-harness.gsm8k"]),
        ("simple-evals.mgsm", ["simple_evals.mgsm"]),  # typo in the harness
        ("helm.mgsm", ["simple_evals.mgsm", "lm-evaluation-harness.mgsm"]),  # wrong harness
    ],
)
def test_unknown_task_suggests_closest_names(name, expected):
    message = error(name)
    assert message.startswith(f"eval.yaml, key 'evaluation.tasks[0].name': unknown task '{name}';")
    assert message.endswith("(list them with `launcher ls tasks`)")
    suggested = catalog.suggestions(name)
    assert suggested[: len(expected)] == expected
    assert all(f"'{s}'" in message for s in expected)


def test_unknown_task_without_close_names():
    assert error("zzzzzz").endswith(
        "unknown task 'zzzzzz' (list them with `launcher ls tasks`; a task of your own image "
        "needs its 'container' set)")


# ----------------------------------------------------------------------------- endpoint types


def test_endpoint_type_mismatch_says_how_to_fix():
    message = error("lm-evaluation-harness.mgsm", container=None, endpoint_type="chat")
    assert message == (
        "eval.yaml, key 'evaluation.tasks[0].name': task 'lm-evaluation-harness.mgsm' needs a "
        "completions endpoint but target.api_endpoint.type is 'chat'; set "
        "target.api_endpoint.type to completions (with a URL of that kind), or use "
        "'simple_evals.mgsm', which takes chat")
    assert "needs a chat endpoint" in error("humaneval", container=None,
                                            endpoint_type="completions")
    vlm = next(t for t in catalog.external_tasks() if t.endpoint_types == ("vlm",))
    assert "drives only chat and completions endpoints" in error(
        vlm.qualified_name, container=None, endpoint_type="chat")


def test_endpoint_type_match_resolves():
    spec = catalog.resolve("lm-evaluation-harness.mmlu", container=None,
                           endpoint_type="completions", source="s", key="k")
    assert spec.image.endswith("lm-evaluation-harness:26.03")


# ----------------------------------------------------------------------------- containers


def test_pinned_container_overrides_a_known_tasks_image_and_keeps_its_checks():
    spec = catalog.resolve("simple_evals.mmlu", container="me/simple-evals:dev",
                           endpoint_type="chat", source="s", key="k")
    assert (spec.image, spec.harness, spec.entrypoint()) == (
        "me/simple-evals:dev", "simple_evals", "nemo-evaluator")
    assert "needs a chat endpoint" in error("simple_evals.mmlu", container="me/x:1",
                                            endpoint_type="completions")
    spec = catalog.resolve("ifeval", container="me/x:1", endpoint_type="chat", source="s",
                           key="k")
    assert (spec.qualified_name, spec.image) == ("lm-evaluation-harness.ifeval", "me/x:1")


def test_custom_task_with_container():
    spec = catalog.resolve("my_task", container="me/harness:1", endpoint_type="completions",
                           source="s", key="k")
    assert (spec.name, spec.harness, spec.image, spec.builtin) == (
        "my_task", "custom", "me/harness:1", False)
    assert spec.entrypoint() == "nemo-evaluator"
    assert "custom task name '../x'" in error("../x", container="me/h:1", endpoint_type="chat")


def test_task_without_public_image_needs_a_container(monkeypatch: pytest.MonkeyPatch):
    rows = catalog.parse_tsv("harness\ttask\timage\tendpoint_types\nruler\truler-chat\t\tchat\n")
    monkeypatch.setattr(catalog, "external_tasks", lambda: rows)
    message = error("ruler.ruler-chat", container=None, endpoint_type="chat")
    assert message == (
        "eval.yaml, key 'evaluation.tasks[0].container': task 'ruler.ruler-chat' has no public "
        "image in the catalog; set evaluation.tasks[0].container to an image that runs it")
    spec = catalog.resolve("ruler-chat", container="me/ruler:1", endpoint_type="chat",
                           source="s", key="k")
    assert spec.image == "me/ruler:1" and spec.harness == "ruler"


# ----------------------------------------------------------------------------- through plan


def build(tmp_path, tasks: list[dict], endpoint_type: str = "chat") -> plan.Invocation:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({
        "execution": {"output_dir": str(tmp_path / "out")},
        "target": {"api_endpoint": {"url": "http://ep:8000/v1/chat/completions",
                                    "model_id": "m", "type": endpoint_type}},
        "evaluation": {"tasks": tasks},
    }))
    config, _ = load_config(str(path), ())
    return plan.build(config, source=str(path), invocation_id="0123456789abcdef")


def test_plan_jobs_for_external_custom_and_builtin(tmp_path):
    inv = build(tmp_path, [{"name": "simple_evals.mmlu_pro"},
                           {"name": "my_task", "container": "me/harness:1"},
                           {"name": "gsm8k", "container": "eval-launcher:pinned"}])
    ext, custom, builtin = inv.jobs
    assert (ext.task, ext.image, ext.entrypoint, ext.command) == (
        "mmlu_pro", "nvcr.io/nvidia/eval-factory/simple-evals:26.03", "nemo-evaluator",
        ("run_eval", "--run_config", "/results/run_config.yml"))
    assert ext.run_config["config"]["type"] == "mmlu_pro"
    assert ext.job_dir.endswith("/mmlu_pro.0")
    assert (custom.task, custom.image, custom.entrypoint) == (
        "my_task", "me/harness:1", "nemo-evaluator")
    assert (builtin.task, builtin.image, builtin.entrypoint) == (
        "gsm8k", "eval-launcher:pinned", "launcher")


def test_plan_errors_name_the_task_index(tmp_path):
    with pytest.raises(ConfigError) as info:  # no humaneval_instruct takes completions
        build(tmp_path, [{"name": "mmlu"}, {"name": "humaneval_instruct"}],
              endpoint_type="completions")
    assert info.value.key == "evaluation.tasks[1].name"
    assert "qualify it as one of" in info.value.message
    with pytest.raises(ConfigError) as info:
        build(tmp_path, [{"name": "lm-evaluation-harness.ifeval"}], endpoint_type="completions")
    assert info.value.key == "evaluation.tasks[0].name"
    assert "set target.api_endpoint.type to chat" in info.value.message
    assert "'codec.ifeval', which takes completions" in info.value.message


# ----------------------------------------------------------------------------- ls tasks


def test_ls_tasks_json():
    result = CliRunner().invoke(cli, ["ls", "tasks", "--json"])
    assert result.exit_code == 0, result.output
    tasks = json.loads(result.output)
    assert len(tasks) == 425
    assert tasks[0] == {"task": "humaneval", "harness": "eval-launcher",
                        "qualified_name": "eval-launcher.humaneval",
                        "image": "eval-launcher:latest", "endpoint_types": ["chat"],
                        "builtin": True}
    assert sum(not t["builtin"] for t in tasks) == 421
    ruler = next(t for t in tasks if t["harness"] == "ruler")
    assert ruler["image"] == "nvcr.io/nvidia/eval-factory/long-context-eval:26.03"


def test_ls_tasks_table_and_harness_filter():
    result = CliRunner().invoke(cli, ["ls", "tasks"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split() == ["task", "harness", "endpoint", "kind", "image"]
    assert len(lines) == 1 + 425
    assert lines[1].split() == ["humaneval", "eval-launcher", "chat", "built-in",
                                "eval-launcher:latest"]
    result = CliRunner().invoke(cli, ["ls", "tasks", "--harness", "simple_evals", "--json"])
    tasks = json.loads(result.output)
    assert tasks and {t["harness"] for t in tasks} == {"simple_evals"}


def test_ls_tasks_unknown_harness_is_one_line_exit_2():
    proc = subprocess.run([sys.executable, "-m", "launcher", "ls", "tasks", "--harness",
                           "simple-evals"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: --harness: unknown harness 'simple-evals'; did you mean 'simple_evals'?"]


def test_ls_tasks_does_not_import_docker():
    code = ("import sys\n"
            "sys.argv = ['launcher', 'ls', 'tasks', '--json']\n"
            "from launcher.cli import main\n"
            "try:\n    main()\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "assert 'docker' not in sys.modules, 'docker imported'\n"
            "print('no docker', file=sys.stderr)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == "no docker"
    assert len(json.loads(proc.stdout)) == 425
