"""MMLU: the Hendrycks CSV layout (small fixture files), prompts, answer extraction, scores."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from launcher.errors import ConfigError
from launcher.harness.datasets import MMLU_SUBJECTS, load_mmlu_csv, resolve_mmlu
from launcher.harness.errors import DatasetError
from launcher.harness.tasks import get_task
from launcher.harness.tasks.base import Scored
from launcher.harness.tasks.mmlu import MmluTask, build_prompt, extract_choice
from tests.unit.harness_stub import StubServer

SUBJECTS = {
    "abstract_algebra": 4,
    "anatomy": 3,
    "high_school_us_history": 2,
}


def _rows(subject: str, split: str, n: int) -> list[list[str]]:
    rows = []
    for i in range(n):
        answer = "ABCD"[(i + len(subject)) % 4]
        question = f"{subject} {split} question {i}: what is {i} + {i}, \"roughly\"?"
        if i == 1:
            question += "\nSecond line, with a comma"
        rows.append([question, f"{2 * i}", f"{2 * i + 1}", f"{2 * i + 2}", f"{2 * i + 3}", answer])
    return rows


def write_mmlu(root: Path, subjects: dict[str, int] = SUBJECTS, dev: int = 5) -> Path:
    """A miniature MMLU in the original layout: root/data/{dev,test}/<subject>_<split>.csv."""
    for split, count in (("dev", None), ("test", None)):
        folder = root / "data" / split
        folder.mkdir(parents=True, exist_ok=True)
        for subject, n in subjects.items():
            with (folder / f"{subject}_{split}.csv").open("w", newline="", encoding="utf-8") as f:
                csv.writer(f).writerows(_rows(subject, split, dev if split == "dev" else n))
        del count
    return root


@pytest.fixture
def mmlu_dir(tmp_path: Path) -> Path:
    return write_mmlu(tmp_path / "mmlu-data")


ALL3 = {"subjects": list(SUBJECTS)}


# -- data -------------------------------------------------------------------------------------


def test_csv_rows_keep_commas_quotes_and_newlines(mmlu_dir: Path) -> None:
    rows = load_mmlu_csv(mmlu_dir / "data" / "test" / "anatomy_test.csv")
    assert len(rows) == 3
    assert rows[1].question.endswith("\"roughly\"?\nSecond line, with a comma")
    assert rows[1].choices == ("2", "3", "4", "5")
    assert rows[0].answer == "ABCD"[len("anatomy") % 4]


def test_header_row_is_skipped_and_bad_rows_are_named(tmp_path: Path) -> None:
    path = tmp_path / "x_test.csv"
    path.write_text("question,A,B,C,D,answer\nQ?,1,2,3,4,b\n")
    rows = load_mmlu_csv(path)
    assert [(r.question, r.answer) for r in rows] == [("Q?", "B")]
    path.write_text("Q?,1,2,3,4,E\n")
    with pytest.raises(DatasetError, match="row 1: the answer must be A, B, C or D"):
        load_mmlu_csv(path)
    path.write_text("Q?,1,2,A\n")
    with pytest.raises(DatasetError, match="row 1 has 4 columns, expected 6"):
        load_mmlu_csv(path)


@pytest.mark.parametrize("layout", ["data", "flat", "mmlu/data"])
def test_layouts_found(tmp_path: Path, layout: str) -> None:
    write_mmlu(tmp_path / "x")
    base = tmp_path / "x" / "data"
    if layout == "flat":
        assert resolve_mmlu(str(base)) == base
    elif layout == "mmlu/data":
        (tmp_path / "outer").mkdir()
        (tmp_path / "x").rename(tmp_path / "outer" / "mmlu")
        assert resolve_mmlu(str(tmp_path / "outer")) == tmp_path / "outer" / "mmlu" / "data"
    else:
        assert resolve_mmlu(str(tmp_path / "x")) == base


def test_missing_folder_errors_name_the_folder_and_layout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("MMLU_DATA_DIR", "NEMO_EVALUATOR_DATASET_DIR"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(DatasetError, match="never downloaded.*dataset_dir.*data/dev/<subject>"):
        MmluTask(ALL3).load(None, None)
    with pytest.raises(DatasetError, match=f"{tmp_path}.*expected layout: data/dev/<subject>_dev"):
        MmluTask(ALL3).load(None, str(tmp_path))


def test_env_var_dataset_dir(mmlu_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEMO_EVALUATOR_DATASET_DIR", str(mmlu_dir))
    assert len(MmluTask(ALL3).load(None, None)) == 9


def test_incomplete_folder_needs_an_explicit_subject_list(mmlu_dir: Path) -> None:
    with pytest.raises(DatasetError, match="has 3 of the 57 subjects.*params.extra.subjects"):
        MmluTask().load(None, str(mmlu_dir))
    with pytest.raises(DatasetError, match="no test/virology_test.csv"):
        MmluTask({"subjects": ["anatomy", "virology"]}).load(None, str(mmlu_dir))


def test_all_57_subjects(tmp_path: Path) -> None:
    root = write_mmlu(tmp_path / "full", dict.fromkeys(MMLU_SUBJECTS, 1))
    items = MmluTask().load(None, str(root))
    assert len(items) == 57 and items[0].id == "mmlu/abstract_algebra/0"
    assert items[-1].id == "mmlu/world_religions/0"


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"num_fewshot": 6}, "num_fewshot.*between 0 and 5"),
        ({"num_fewshot": "5"}, "num_fewshot.*an integer"),
        ({"subjects": ["algebra"]}, "subjects.*unknown MMLU subject 'algebra'"),
        ({"subjects": []}, "subjects.*non-empty list"),
    ],
)
def test_bad_params(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        get_task("mmlu", extra)


def test_too_few_dev_examples(tmp_path: Path) -> None:
    root = write_mmlu(tmp_path / "m", {"anatomy": 2}, dev=3)
    with pytest.raises(DatasetError, match="anatomy_dev.csv has 3 examples, num_fewshot is 5"):
        MmluTask({"subjects": ["anatomy"]}).load(None, str(root))
    assert len(MmluTask({"subjects": ["anatomy"], "num_fewshot": 3}).load(None, str(root))) == 2


# -- prompts ----------------------------------------------------------------------------------


def test_prompt_is_the_hendrycks_format(mmlu_dir: Path) -> None:
    items = MmluTask({"subjects": ["anatomy"], "num_fewshot": 2}).load(None, str(mmlu_dir))
    dev = _rows("anatomy", "dev", 5)
    test = _rows("anatomy", "test", 3)

    def example(row: list[str], answer: bool) -> str:
        text = f"{row[0]}\nA. {row[1]}\nB. {row[2]}\nC. {row[3]}\nD. {row[4]}\nAnswer:"
        return text + (f" {row[5]}\n\n" if answer else "")

    expected = (
        "The following are multiple choice questions (with answers) about anatomy.\n\n"
        + example(dev[0], True)
        + example(dev[1], True)
        + example(test[0], False)
    )
    assert items[0].messages == [{"role": "user", "content": expected}]
    assert items[0].target == test[0][5]
    assert items[0].id == "mmlu/anatomy/0"


def test_zero_shot_and_subject_words(mmlu_dir: Path) -> None:
    task = MmluTask({"subjects": ["high_school_us_history"], "num_fewshot": 0})
    content = task.load(None, str(mmlu_dir))[0].messages[0]["content"]
    assert content.startswith(
        "The following are multiple choice questions (with answers) about high school us"
        " history.\n\nhigh_school_us_history test question 0"
    )
    assert content.endswith("\nD. 3\nAnswer:")
    assert content.count("Answer:") == 1


def test_limit_applies_per_subject(mmlu_dir: Path) -> None:
    items = MmluTask(ALL3).load(2, str(mmlu_dir))
    assert [i.id for i in items] == [
        "mmlu/abstract_algebra/0", "mmlu/abstract_algebra/1",
        "mmlu/anatomy/0", "mmlu/anatomy/1",
        "mmlu/high_school_us_history/0", "mmlu/high_school_us_history/1",
    ]  # fmt: skip


def test_build_prompt_direct() -> None:
    from launcher.harness.datasets import McRow

    row = McRow("Q?", ("a", "b", "c", "d"), "C")
    assert build_prompt("college_physics", [], row) == (
        "The following are multiple choice questions (with answers) about college physics.\n\n"
        "Q?\nA. a\nB. b\nC. c\nD. d\nAnswer:"
    )


# -- answer extraction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("B", "B"),
        (" B", "B"),
        ("b", "B"),
        ("(C)", "C"),
        ("C.", "C"),
        ("**D**", "D"),
        ("$\\boxed{A}$", "A"),
        ("B. 42", "B"),
        ("C) the third one", "C"),
        ("A: 12", "A"),
        (" B\n\nThe following are multiple choice questions...\nAnswer: C", "B"),  # completions
        ("Answer: D", "D"),
        ("answer: b", "B"),  # issue 13: a lowercase marker and letter (was None)
        ("The answer is (B).", "B"),
        ("The correct answer is **C. 42**", "C"),
        ("I think the answer is option D because A and B are wrong.", "D"),
        ("A triangle has three sides, so the answer is C.", "C"),
        ("Answer: A\n\nExplanation: B is wrong, C is wrong.", "A"),
        ("Let me think. It must be D.", "D"),
        ("I'd go with C", "C"),
        ("A is wrong, B is wrong, so C.", "C"),  # a conclusion ending its line
        ("B or C, I cannot tell.", None),  # several letters and no marker
        ("B is correct.", "B"),
        ("42", None),
        ("", None),
        ("I do not know.", None),
    ],
)
def test_extract_choice(response: str, expected: str | None) -> None:
    assert extract_choice(response) == expected


# Issue 13: replies that correct themselves, lowercase markers; each of these failed before.
@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("Answer: B ... wait, actually the answer is C", "C"),  # the last marker; was B
        ("The answer is (A). Hmm, no: the correct answer is (D).", "D"),  # was A
        ("answer: c", "C"),  # was None
        ("Final answer: d", "D"),  # was None
        ("B. 42\n\nWait, actually the answer is C.", "C"),  # was B
        ("B\n\nHmm, on reflection the answer is C.", "C"),  # was B
        ("So it is $\\boxed{B}$, not A or C.", "B"),  # was None
        ("the answer is (c) because c is larger", "C"),  # was None
    ],
)
def test_extract_choice_last_marker_and_lowercase(response: str, expected: str) -> None:
    assert extract_choice(response) == expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("The answer is a bit unclear, but I'd go with D.", "D"),  # 'a' the article
        ("Answer: C. Option A is wrong, and answer B ignores friction.", "C"),  # no marker
        ("B\n\nQ2?\nA. x\nB. y\nC. z\nD. w\nAnswer: C", "B"),  # a run-on's own Answer:
    ],
)
def test_extract_choice_articles_and_run_ons(response: str, expected: str) -> None:
    assert extract_choice(response) == expected


def test_extract_choice_by_choice_text() -> None:
    choices = ["Paris", "Lyon", "Nice", "Lille"]
    assert extract_choice("Lyon.", choices=choices) == "B"
    assert extract_choice("lille", choices=choices) == "D"
    assert extract_choice("Marseille", choices=choices) is None


# -- scores -----------------------------------------------------------------------------------


def test_micro_macro_and_per_subject_scores(mmlu_dir: Path) -> None:
    task = MmluTask(ALL3)
    items = task.load(None, str(mmlu_dir))
    # abstract_algebra 4/4 right, anatomy 1/3, high_school_us_history 0/2
    right = {"abstract_algebra": 4, "anatomy": 1, "high_school_us_history": 0}
    seen: dict[str, int] = {}
    responses = []
    for item in items:
        subject = item.data["subject"]
        seen[subject] = seen.get(subject, 0) + 1
        ok = seen[subject] <= right[subject]
        letter = item.target if ok else "ABCD"[("ABCD".index(item.target) + 1) % 4]
        responses.append([f"The answer is {letter}."])
    scored = task.score(items, responses)
    assert sum(row[0].score for row in scored) == 5
    assert scored[0][0].details == {"extracted": items[0].target}
    summary = task.summarize(items, scored)
    micro = summary.metrics["accuracy"]["micro"]
    macro = summary.metrics["accuracy"]["macro"]
    assert list(summary.metrics["accuracy"]) == ["micro", "macro"]  # micro is the headline
    assert (micro.value, micro.count) == (pytest.approx(5 / 9), 9)
    assert micro.stderr == pytest.approx(((5 / 9) * (4 / 9) / 8) ** 0.5)
    assert macro.value == pytest.approx((1 + 1 / 3 + 0) / 3)
    subject_se = [0.0, ((1 / 3) * (2 / 3) / 2) ** 0.5, 0.0]
    assert macro.stderr == pytest.approx(sum(se**2 for se in subject_se) ** 0.5 / 3)
    anatomy = summary.groups["anatomy"].metrics["accuracy"]["accuracy"]
    assert (anatomy.value, anatomy.count) == (pytest.approx(1 / 3), 3)
    assert list(summary.groups) == sorted(SUBJECTS)


def test_unanswerable_reply_scores_zero() -> None:
    task = MmluTask(ALL3)
    from launcher.harness.tasks.base import Item

    item = Item("mmlu/anatomy/0", [], "B", {"subject": "anatomy", "choices": ["1", "2", "3", "4"]})
    assert task.score([item], [["hmm"]]) == [[Scored(0, {"extracted": None})]]


# -- end to end through run_eval with a stub endpoint -----------------------------------------


def _answer(body: dict) -> str:
    """Answers each MMLU question right when its index within its subject is even."""
    prompt = body["messages"][-1]["content"]
    last = prompt.rsplit("Answer: ", 1)[-1]  # the tail after the last shot
    question = last.split("\n\n", 1)[-1]
    index = int(question.split(" question ", 1)[1].split(":", 1)[0])
    subject = question.split(" ", 1)[0]
    answer = _rows(subject, "test", index + 1)[index][5]
    letter = answer if index % 2 == 0 else "ABCD"[("ABCD".index(answer) + 1) % 4]
    return f"Answer: {letter}"


@pytest.fixture
def endpoint(server: StubServer) -> str:
    server.answer = _answer
    return server.url


def test_run_eval_writes_subjects_and_headline(
    mmlu_dir: Path, endpoint: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from launcher.harness.run_eval import main

    out = tmp_path / "results"
    cfg = {
        "config": {
            "type": "mmlu",
            "output_dir": str(out),
            "params": {"parallelism": 2, "max_retries": 0,
                       "extra": {"dataset_dir": str(mmlu_dir), **ALL3}},
        },
        "target": {"api_endpoint": {"url": endpoint, "model_id": "m", "type": "chat"}},
    }  # fmt: skip
    path = tmp_path / "run_config.yml"
    path.write_text(yaml.safe_dump(cfg))
    assert main(str(path)) == 0
    # right: abstract_algebra 0,2 of 4; anatomy 0,2 of 3; us history 0 of 2 -> 5/9
    assert capsys.readouterr().out.strip().splitlines()[-1] == "mmlu accuracy=0.5556 (n=9)"
    doc = yaml.safe_load((out / "results.yml").read_text())
    scores = doc["results"]["tasks"]["mmlu"]["metrics"]["accuracy"]["scores"]
    assert list(scores) == ["micro", "macro"]
    assert scores["micro"]["value"] == pytest.approx(5 / 9)
    assert scores["micro"]["stats"]["count"] == 9
    assert scores["macro"]["value"] == pytest.approx((2 / 4 + 2 / 3 + 1 / 2) / 3)
    assert set(scores["macro"]["stats"]) == {"count", "stderr"}
    group = doc["results"]["groups"]["mmlu"]
    assert group["metrics"]["accuracy"]["scores"]["micro"] == scores["micro"]
    anatomy = group["groups"]["anatomy"]["metrics"]["accuracy"]["scores"]["accuracy"]
    assert anatomy["value"] == pytest.approx(2 / 3) and anatomy["stats"]["count"] == 3
    samples = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 9 and samples[0]["id"] == "mmlu/abstract_algebra/0"
    assert samples[0]["extracted"] == samples[0]["target"] and samples[0]["score"] == 1
