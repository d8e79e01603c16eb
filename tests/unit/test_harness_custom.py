"""Custom tasks from a user JSONL file: loading, prompts, exact / regex / choice scoring."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from launcher.errors import ConfigError
from launcher.harness.errors import DatasetError
from launcher.harness.tasks import get_task
from launcher.harness.tasks.custom import CustomTask, normalize
from tests.unit.harness_stub import StubServer


def write_jsonl(path: Path, rows: list[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def score(task: CustomTask, path: Path, replies: list[str]) -> list[int]:
    items = task.load(None, str(path.parent))
    scored = task.score(items, [[r] for r in replies])
    return [row[0].score for row in scored]


@pytest.fixture(autouse=True)
def no_env_dataset_dir(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEMO_EVALUATOR_DATASET_DIR", raising=False)


# -- exact ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("Paris", "paris."),
        ("  Paris ", "**Paris**"),
        ('"Paris"', "Paris!"),
        ("1,000", "1000"),
        ("1000.0", "1000"),
        ("$5", "5"),
        ("New   York", "new york"),
        ("ｐａｒｉｓ", "paris"),  # NFKC
    ],
)
def test_normalize_equal(a: str, b: str) -> None:
    assert normalize(a) == normalize(b)


@pytest.mark.parametrize(("a", "b"), [("Paris", "Lyon"), ("10", "100"), ("3:15", "315")])
def test_normalize_different(a: str, b: str) -> None:
    assert normalize(a) != normalize(b)


def test_exact_match(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "d" / "qa.jsonl", [
        {"question": "Capital of France?", "answer": "Paris"},
        {"question": "2 + 2 * 3?", "answer": ["8", "eight"]},
        {"question": "How many legs has a spider?", "answer": 8},
        {"question": "Largest ocean?", "answer": "Pacific"},
    ])  # fmt: skip
    task = CustomTask({"dataset_path": "qa.jsonl"})
    assert score(task, path, ["paris.", "Eight", "8.0", "The Pacific Ocean"]) == [1, 1, 1, 0]
    assert task.scoring == "exact" and task.metric == "exact_match"


def test_exact_case_sensitive(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "Symbol of iron?", "answer": "Fe"}])
    assert score(CustomTask({"dataset_path": str(path)}), path, ["FE"]) == [1]
    task = CustomTask({"dataset_path": str(path), "case_sensitive": True})
    assert score(task, path, ["FE"]) == [0]


def test_answer_regex_extracts_the_last_match(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", [
        {"question": "q1", "answer": "42"},
        {"question": "q2", "answer": "7"},
        {"question": "q3", "answer": "7"},
    ])  # fmt: skip
    task = CustomTask({"dataset_path": str(path), "answer_regex": r"(?i)answer:\s*(\S+)"})
    items = task.load(None)
    scored = task.score(items, [
        ["Let me see. Answer: 41\nWait. Answer: 42"],
        ["I think it is 7."],  # no match: wrong, whatever the text says
        ["ANSWER: 7."],
    ])  # fmt: skip
    assert [row[0].score for row in scored] == [1, 0, 1]
    assert [row[0].details["extracted"] for row in scored] == ["42", None, "7."]


# -- regex ------------------------------------------------------------------------------------


def test_regex_answers(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", [
        {"question": "Name a primary colour.", "answer": r"\b(red|blue|yellow)\b"},
        {"question": "Year of the moon landing?", "answer": [r"\b1969\b", r"sixty-nine"]},
        {"question": "Say hello.", "answer": "^hello"},
    ])  # fmt: skip
    task = CustomTask({"dataset_path": str(path), "scoring": "regex"})
    assert score(task, path, ["I'd say Blue.", "It was in 1969!", "Well, hello"]) == [1, 1, 0]
    assert task.metric == "regex_match"
    strict = CustomTask({"dataset_path": str(path), "scoring": "regex", "case_sensitive": True})
    assert score(strict, path, ["I'd say Blue.", "in 1969", "hello"]) == [0, 1, 1]


def test_a_leading_thinking_section_is_dropped_for_every_scoring(tmp_path: Path) -> None:
    """A reasoning model's drafts (up to ``</think>``) never count, as for the built-in
    tasks (docs/scoring.md, Thinking)."""
    def each(task: CustomTask, path: Path, replies: list[str]) -> list[int]:
        return [score(task, path, [reply])[0] for reply in replies]

    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "Capital of France?",
                                                "answer": "Paris"}])
    exact = CustomTask({"dataset_path": str(path)})
    assert each(exact, path, ["<think>\nMaybe Lyon? No.\n</think>\n\nParis",
                              "Lyon? No.\n</think>\nParis", "<think>Paris</think>Lyon"]) == [
        1, 1, 0]
    path = write_jsonl(tmp_path / "r.jsonl", [{"question": "q", "answer": "^Paris$"}])
    regex = CustomTask({"dataset_path": str(path), "scoring": "regex",
                        "answer_regex": r"Answer: (\w+)"})
    assert each(regex, path, ["<think>Answer: Paris? no</think>Answer: Lyon",
                              "<think>Answer: Lyon?</think>Answer: Paris"]) == [0, 1]


def test_regex_with_extraction(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "q", "answer": "^[0-9]+$"}])
    task = CustomTask(
        {"dataset_path": str(path), "scoring": "regex", "answer_regex": r"Final: (.*)"}
    )
    assert score(task, path, ["steps 1 2 3\nFinal: 12"]) == [1]
    assert score(task, path, ["Final: twelve"]) == [0]


def test_bad_regex_in_data_names_the_line(tmp_path: Path) -> None:
    rows = [{"question": "q", "answer": "a"}, {"question": "q", "answer": "(unclosed"}]
    path = write_jsonl(tmp_path / "qa.jsonl", rows)
    with pytest.raises(DatasetError, match="qa.jsonl: line 2: the answer is not a valid regex"):
        CustomTask({"dataset_path": str(path), "scoring": "regex"}).load(None)


# -- choice -----------------------------------------------------------------------------------


def test_choice_scoring_letters_and_texts(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mc.jsonl", [
        {"question": "Largest planet?", "choices": ["Mars", "Jupiter", "Venus"], "answer": "B"},
        {"question": "Smallest prime?", "choices": ["1", "2", "3", "4", "5", "6"], "answer": 2},
        {"question": "Colour of the sky?", "choices": ["green", "blue"], "answer": "(b)"},
        {"question": "H2O is?", "choices": ["water", "salt"], "answer": "Water"},
    ])  # fmt: skip
    task = CustomTask({"dataset_path": str(path)})
    items = task.load(None)
    assert task.scoring == "choice" and task.metric == "accuracy"
    assert [i.target for i in items] == ["B", "B", "B", "A"]
    assert items[1].messages[0]["content"] == (
        "Smallest prime?\n\nA. 1\nB. 2\nC. 3\nD. 4\nE. 5\nF. 6\n\n"
        "Answer with the letter of the correct option."
    )
    scored = task.score(items, [["The answer is B."], ["F"], ["blue"], ["A. water"]])
    assert [row[0].score for row in scored] == [1, 0, 1, 1]
    assert [row[0].details["extracted"] for row in scored] == ["B", "F", "B", "A"]


def test_choice_scoring_takes_the_last_marker_and_lowercase(tmp_path: Path) -> None:
    # issue 13: the same letter finder as MMLU (score_choice), so the same fixes
    path = write_jsonl(tmp_path / "mc.jsonl", [
        {"question": "Largest planet?", "choices": ["Mars", "Jupiter", "Venus"], "answer": "B"},
        {"question": "Hottest planet?", "choices": ["Mars", "Jupiter", "Venus"], "answer": "C"},
    ])  # fmt: skip
    task = CustomTask({"dataset_path": str(path)})
    items = task.load(None)
    scored = task.score(items, [["answer: b"], ["Answer: A ... wait, actually the answer is C"]])
    assert [row[0].details["extracted"] for row in scored] == ["B", "C"]
    assert [row[0].score for row in scored] == [1, 1]


def test_choice_answer_must_resolve(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mc.jsonl", [
        {"question": "q", "choices": ["x", "y"], "answer": "C"},
    ])  # fmt: skip
    with pytest.raises(DatasetError, match="line 1: the answer 'C' is neither a letter A-B"):
        CustomTask({"dataset_path": str(path)}).load(None)


def test_choice_needs_choices(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "mc.jsonl", [
        {"question": "q", "choices": ["x", "y"], "answer": "A"},
        {"question": "q2", "answer": "A"},
    ])  # fmt: skip
    task = CustomTask({"dataset_path": str(path)})
    assert task.load(None)[1].target == "A"  # mixed rows: auto picks exact
    assert task.scoring == "exact"
    with pytest.raises(DatasetError, match="line 2: scoring 'choice' needs a 'choices' list"):
        CustomTask({"dataset_path": str(path), "scoring": "choice"}).load(None)


# -- prompts, ids, limits ---------------------------------------------------------------------


def test_prompt_template_system_prompt_and_fields(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", [
        {"id": "q-1", "question": "Who wrote it?", "answer": "Tolkien",
         "context": "The Hobbit (1937)"},
        {"question": "And this?", "answer": "x", "context": 7},
    ])  # fmt: skip
    task = CustomTask({
        "dataset_path": str(path),
        "prompt_template": "Context: {context}\nQ: {question}\nKeep {braces} and {missing}.",
        "system_prompt": "Be brief.",
    })  # fmt: skip
    items = task.load(None)
    assert items[0].messages == [
        {"role": "system", "content": "Be brief."},
        {"role": "user",
         "content": "Context: The Hobbit (1937)\nQ: Who wrote it?\nKeep {braces} and {missing}."},
    ]  # fmt: skip
    assert items[1].messages[1]["content"].startswith("Context: 7\nQ: And this?")
    assert [i.id for i in items] == ["q-1", "custom/1"]
    assert items[0].target == "Tolkien"


def test_default_exact_template_asks_for_the_answer_only(tmp_path: Path) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": "Capital of Peru?", "answer": "Lima"}])
    content = CustomTask({"dataset_path": str(path)}).load(None)[0].messages[0]["content"]
    assert content == "Capital of Peru?\n\nReply with only the answer, no explanation."


def test_limit_takes_the_first_rows(tmp_path: Path) -> None:
    rows = [{"question": f"q{i}", "answer": i} for i in range(5)]
    path = write_jsonl(tmp_path / "qa.jsonl", rows)
    items = CustomTask({"dataset_path": str(path)}).load(2)
    assert [i.id for i in items] == ["custom/0", "custom/1"]


# -- finding the file, and bad input ----------------------------------------------------------


def test_dataset_path_resolution(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "datasets"
    write_jsonl(data / "sub" / "mine.jsonl", [{"question": "q", "answer": "a"}])
    assert len(CustomTask({"dataset_path": "sub/mine.jsonl"}).load(None, str(data))) == 1
    monkeypatch.setenv("NEMO_EVALUATOR_DATASET_DIR", str(data))
    assert len(CustomTask({"dataset_path": "sub/mine.jsonl"}).load(None)) == 1
    # no dataset_path: the dataset dir must hold exactly one *.jsonl
    assert len(CustomTask().load(None, str(data / "sub"))) == 1
    with pytest.raises(DatasetError, match="has no \\*.jsonl file; set config.params.extra"):
        CustomTask().load(None, str(data))
    with pytest.raises(DatasetError, match="dataset file .*nope.jsonl does not exist"):
        CustomTask({"dataset_path": "nope.jsonl"}).load(None, str(data))


def test_relative_path_without_dataset_dir(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="relative but no dataset dir is set"):
        CustomTask({"dataset_path": "x.jsonl"}).load(None)
    with pytest.raises(DatasetError, match="set config.params.extra.dataset_path"):
        CustomTask().load(None)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"answer": "a"}, "line 1: 'question' must be a non-empty string"),
        ({"question": "q"}, "line 1: 'answer' must be a string, a number, or a list of them"),
        ({"question": "q", "answer": True}, "'answer' must be a string"),
        ({"question": "q", "answer": []}, "'answer' must be a string"),
        ({"question": "q", "answer": "a", "choices": ["only one"]}, "'choices' must be a list"),
        ("[1, 2]", "line 1 is not a JSON object"),
        ("{not json", "line 1 is not JSON"),
    ],
)
def test_bad_rows(tmp_path: Path, row: Any, message: str) -> None:
    path = write_jsonl(tmp_path / "qa.jsonl", [row])
    with pytest.raises(DatasetError, match=message):
        CustomTask({"dataset_path": str(path)}).load(None)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"scoring": "fuzzy"}, "extra.scoring.*must be one of exact, regex, choice"),
        ({"answer_regex": "("}, "extra.answer_regex.*not a valid regular expression"),
        ({"prompt_template": "no placeholder"}, "extra.prompt_template.*must contain"),
        ({"case_sensitive": "yes"}, "extra.case_sensitive.*true or false"),
        ({"dataset_path": 3}, "extra.dataset_path.*a string"),
    ],
)
def test_bad_params(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        get_task("custom", extra)


# -- end to end through run_eval --------------------------------------------------------------

REPLIES = {"Capital of France?": "Paris.", "2 + 2?": "5", "Capital of Italy?": "**Rome**"}


def _reply(body: dict) -> str:
    question = body["messages"][-1]["content"].split("\n", 1)[0]
    return REPLIES[question]


@pytest.fixture
def endpoint(server: StubServer) -> str:
    server.answer = _reply
    return server.url


def test_run_eval_custom_task(
    tmp_path: Path, endpoint: str, capsys: pytest.CaptureFixture[str]
) -> None:
    from launcher.harness.run_eval import main

    data = tmp_path / "datasets"
    write_jsonl(data / "qa.jsonl", [
        {"question": "Capital of France?", "answer": "Paris"},
        {"question": "2 + 2?", "answer": 4},
        {"question": "Capital of Italy?", "answer": "rome"},
    ])  # fmt: skip
    out = tmp_path / "results"
    cfg = {
        "config": {"type": "custom", "output_dir": str(out),
                   "params": {"max_retries": 0,
                              "extra": {"dataset_dir": str(data), "dataset_path": "qa.jsonl"}}},
        "target": {"api_endpoint": {"url": endpoint, "model_id": "m"}},
    }  # fmt: skip
    path = tmp_path / "run_config.yml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(str(path)) == 0
    assert capsys.readouterr().out.strip().splitlines()[-1] == "custom exact_match=0.6667 (n=3)"
    doc = yaml.safe_load((out / "results.yml").read_text())
    score = doc["results"]["tasks"]["custom"]["metrics"]["exact_match"]["scores"]["exact_match"]
    assert score["value"] == pytest.approx(2 / 3)
    assert score["stats"] == {"count": 3, "stderr": pytest.approx((2 / 3 * 1 / 3 / 2) ** 0.5)}
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert [(s["id"], s["score"], s["normalized"]) for s in samples] == [
        ("custom/0", 1, "paris"), ("custom/1", 0, "5"), ("custom/2", 1, "rome")
    ]  # fmt: skip
