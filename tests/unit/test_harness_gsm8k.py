from __future__ import annotations

import pytest

from launcher.harness.tasks.base import Item
from launcher.harness.tasks.gsm8k import (
    Gsm8kTask,
    build_messages,
    extract_answer,
    normalize_number,
    target_of,
)
from launcher.testing.synthetic import gsm8k_dir

DATA = gsm8k_dir()


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("She makes 9 * 2 = 18 dollars.\nThe answer is 18.", "18"),
        ("The answer is $18.00.", "18"),
        ("3 + 4 = 7 so 7 * 2 = 14\n#### 14", "14"),
        ("#### 1,234", "1234"),
        ("The answer is 1,450,000.", "1450000"),
        ("The answer is -3.", "-3"),
        ("the final answer is: **42**", "42"),
        ("The answer is 2.50", "2.5"),
        ("First 5, then 10 then 15 apples", "15"),  # no marker: last number
        ("It costs $1,200 in total.", "1200"),
        ("18.0", "18"),
        ("The answer is 7. Wait, 3 + 4 = 7, so 8 is wrong.", "7"),  # marker beats last number
        ("#### 5\nThe answer is 6.", "6"),  # the last marker wins
        ("I do not know.", None),
        ("", None),
    ],
)
def test_extract_answer(response: str, expected: str | None) -> None:
    assert extract_answer(response) == expected


# Issue 13: replies written the way models write them; each of these failed before.
@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ("Final answer: 18 (9 eggs x $2)", "18"),  # was 2: the marker beats the trailing number
        ("\\boxed{18} (9 eggs x $2)", "18"),  # was 2
        ("The final answer is $\\boxed{1,234}$.", "1234"),
        ("**Answer:** 42 apples, 6 per box", "42"),  # was 6
        ("answer: 7 (3 + 4)", "7"),  # lowercase marker; was 4
        ("#### 16\n**Final answer:** 18", "18"),  # the last marker, whatever its kind; was 16
        ("#### 16\nWait, 9 x 2 = 18.\n#### 18", "18"),  # two #### lines: the last
        ("She has 20 - 2", "2"),  # a binary minus is no sign; was -2
        ("20 -2", "2"),  # nor right before the digits, after a number
        ("The answer is 20 - 2 = 18.", "18"),  # an expression after the marker: its result
        ("Answer: -5", "-5"),
        ("It drops to \u22127 degrees.", "-7"),
        ("The answer is 16. Wait, actually the answer is 18.", "18"),
    ],
)
def test_extract_answer_explicit_markers_and_signs(response: str, expected: str) -> None:
    assert extract_answer(response) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [("18", "18"), ("18.0", "18"), ("$1,000", "1000"), ("0.50", "0.5"), ("-7", "-7"), ("x", None)],
)
def test_normalize_number(text: str, expected: str | None) -> None:
    assert normalize_number(text) == expected


def test_target_of() -> None:
    assert target_of("Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 eggs.\n#### 18") == "18"
    assert target_of("so...\n#### 2,125") == "2125"


def test_prompt_contains_question_and_instruction() -> None:
    content = build_messages("How many apples?")[0]["content"]
    assert "How many apples?" in content
    assert "The answer is <number>." in content


def test_score_exact_match() -> None:
    items = [Item(id=str(i), messages=[], target=t) for i, t in enumerate(["18", "3", "70000"])]
    responses = [["The answer is 18."], ["The answer is 4."], ["#### 70,000"]]
    task = Gsm8kTask()
    scored = task.score(items, responses)
    assert [[s.score for s in row] for row in scored] == [[1], [0], [1]]
    assert [row[0].details["extracted"] for row in scored] == ["18", "4", "70000"]
    summary = task.summarize(items, scored)
    score = summary.metrics["exact_match"]["exact_match"]
    assert (score.value, score.count) == (pytest.approx(2 / 3), 3)
    assert score.stderr == pytest.approx(((2 / 3) * (1 / 3) / 2) ** 0.5)


def test_score_rejects_a_flat_response_list() -> None:
    items = [Item(id="0", messages=[], target="1")]
    with pytest.raises(ValueError, match="list of response texts"):
        Gsm8kTask().score(items, ["The answer is 1."])


def test_load_from_dataset_dir() -> None:
    items = Gsm8kTask().load(None, str(DATA))
    assert len(items) == 1319
    assert items[0].id == "gsm8k/0" and items[0].target == "124"
    assert "Problem 1: Ava the baker" in items[0].messages[0]["content"]
    assert len(Gsm8kTask().load(5, str(DATA))) == 5
