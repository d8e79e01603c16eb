"""docs/scoring.md: its example tables are rendered from the rows below, and every row's
"ours" value is what the scorer gives, so the doc and the code cannot disagree.

The lm-eval and simple-evals columns are documentation (read off those harnesses' published
extraction rules for the same replies); they are not run here. After changing a row, rewrite
the tables with ``python -m tests.unit.test_scoring_doc``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from launcher.harness.tasks import custom, gsm8k, humaneval, mmlu

DOC = Path(__file__).resolve().parents[2] / "docs" / "scoring.md"
NEWLINE = "\u23ce"  # how a line break of a reply is shown in the tables

# (reply, target, ours, lm-eval strict-match, lm-eval flexible-extract, simple-evals MGSM)
GSM8K_ROWS: list[tuple[str, str, str | None, str | None, str | None, str | None]] = [
    ("She makes 9 * 2 = 18 dollars a day.\nThe answer is 18.", "18", "18", None, "18", None),
    ("Final answer: 18 (9 eggs x $2)", "18", "18", None, "2", None),
    ("9 eggs at $2 each: \\boxed{18} (9 x 2)", "18", "18", None, "2", None),
    ("**Answer:** 18 dollars, i.e. 9 eggs at $2", "18", "18", None, "2", "2"),
    ("answer: 18", "18", "18", None, "18", None),
    ("#### 16\nWait, 9 x 2 = 18, not 16.\n#### 18", "18", "18", "16", "18", None),
    ("The answer is 16. Wait, actually the answer is 18.", "18", "18", None, "18", None),
    ("```\n9 * 2 = 18\n```\nSo she makes $18 every day.", "18", "18", None, "18", None),
    ("She has 20 - 2", "18", "2", None, "2", None),
    ("The answer is 20 - 2 = 18.", "18", "18", None, "18", None),
    (
        "It was 3 degrees and fell 8, so it is -5 degrees.\nThe answer is -5.",
        "-5", "-5", None, "-5", None,
    ),
    ("The answer is $1,234.50.", "1234.5", "1234.5", None, "1234.50", None),
    (
        "The answer is 16. Hmm, the muffins: 9 * 2 = 18, so the answer is actually 18.",
        "18", "18", None, "18", None,
    ),
    ("Answer: 16. Hmm, no: the answer is not 16, it is 18 dollars.", "18", "18", None, "18", "18"),
    (
        "<think>\nThe answer is 16? No, the muffins use 4 more.\n</think>\n\n"
        "She makes 9 * $2 = $18 per day.",
        "18", "18", None, "18", None,
    ),
]  # fmt: skip

# (reply, target, ours, lm-eval mmlu_generative, simple-evals)
MMLU_ROWS: list[tuple[str, str, str | None, str | None, str | None]] = [
    ("B", "B", "B", "B", None),
    ("Answer: C", "C", "C", "C", "C"),
    ("answer: c", "C", "C", "C", "c"),
    ("Final Answer: d", "D", "D", "D", "d"),
    ("Answer: B ... wait, actually the answer is C", "C", "C", "C", "B"),
    ("The correct answer is **(C)**.", "C", "C", None, None),
    ("B. 42\n\nWait, actually the answer is C.", "C", "C", None, None),
    ("So it is $\\boxed{C}$.", "C", "C", None, None),
    ("The answer is a bit unclear, but I'd go with D.", "D", "D", None, None),
    ("C\n\nQuestion 2?\nA. x\nB. y\nC. z\nD. w\nAnswer: A", "C", "C", "C", "A"),
    ("A is wrong, B is wrong, so C.", "C", "C", None, None),
    ("ANSWER: $D$", "D", "D", None, "D"),
    ("Answer: B. Hmm, the answer is not B, it is C.", "C", "C", None, "B"),
    ("A and B are both partly right, but C is the best answer.", "C", "C", None, None),
    ("<think>\nAnswer: B? No, B ignores friction.\n</think>\n\nI'd pick C.", "C", "C", None, "B"),
]  # fmt: skip

# The problem the humaneval rows answer (a small one, so the replies fit in a table).
ADD_PROBLEM: dict[str, Any] = {
    "task_id": "doc/add",
    "prompt": 'def add(x, y):\n    """Return the sum of x and y."""\n',
    "entry_point": "add",
    "canonical_solution": "    return x + y\n",
    "test": (
        "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"
    ),
}
# (reply, ours, lm-eval humaneval, lm-eval humaneval_instruct, simple-evals): passes?
HUMANEVAL_ROWS: list[tuple[str, bool, bool, bool, bool]] = [
    ("```python\ndef add(x, y):\n    return x + y\n```", True, False, False, True),
    (
        "Here is the function:\n\ndef add(x, y):\n    return x + y\n\nIt adds the two numbers.",
        True, False, False, False,
    ),
    ("import operator\n\ndef add(x, y):\n    return operator.add(x, y)", True, True, True, False),
    (
        "```python\nfrom __future__ import annotations\n\ndef add(x: int, y: int) -> int:\n"
        "    return x + y\n```",
        True, False, False, True,
    ),
    (
        "from __future__ import annotations\n\ndef add(x: int, y: int) -> int:\n    return x + y",
        True, False, False, True,
    ),
    ("    return x + y\n", True, True, True, False),
    ("```\ndef add(x, y):\n    return x + y\n```", True, False, False, False),
    (
        "Sure!\n```python\ndef add(x, y):\n    return x + y\n```\nUsage:\n```python\n"
        "print(add(2, 3))\n```",
        True, False, False, True,
    ),
    ("```python\ndef add(x, y):\n    return x + y\n", True, True, False, True),
    ("Implementation:\n\n    def add(x, y):\n        return x + y\n", True, False, False, False),
    (
        "First the import:\n```python\nimport operator\n```\nThen the function:\n```python\n"
        "def add(x, y):\n    return x + y\n```",
        True, False, False, False,
    ),
    (
        "<think>\nMaybe:\n```python\ndef add(x, y):\n    return x - y\n```\nNo, a sum.\n"
        "</think>\n\n```python\ndef add(x, y):\n    return x + y\n```",
        True, False, False, False,
    ),
    ("I'd write:\ndef add(x, y):\n    return x - y", False, False, False, False),
]  # fmt: skip


# -- rendering the tables ---------------------------------------------------------------------


def _code(text: str) -> str:
    """``text`` as a markdown code span in a table cell (line breaks shown as a symbol)."""
    shown = text.replace("\n", NEWLINE).replace("|", "\\|")
    longest = max((len(run) for run in re.findall(r"`+", shown)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if longest or shown.startswith(" ") or shown.endswith(" ") else ""
    return f"{fence}{pad}{shown}{pad}{fence}"


def _answer(value: str | None, target: str) -> str:
    shown = "(none)" if value is None else f"`{value}`"
    return f"{shown} {'✓' if value == target else '✗'}"


def _passed(value: bool) -> str:
    return "pass ✓" if value else "fail ✗"


ANSWER_TABLES = {  # task -> (header line, rows): reply, right answer, then each scorer's answer
    "gsm8k": ("| reply | right | ours | lm-eval strict-match | lm-eval flexible-extract"
              " | simple-evals (MGSM) |", GSM8K_ROWS),
    "mmlu": ("| reply | right | ours | lm-eval mmlu_generative | simple-evals |", MMLU_ROWS),
}


def render(task: str) -> str:
    if task in ANSWER_TABLES:
        header, rows = ANSWER_TABLES[task]
        lines = [header, "|" + "---|" * (header.count("|") - 1)]
        for reply, target, *values in rows:
            cells = [_answer(v, target) for v in values]
            lines.append(f"| {_code(reply)} | `{target}` | " + " | ".join(cells) + " |")
    elif task == "humaneval":
        lines = [
            "| reply | ours | lm-eval humaneval | lm-eval humaneval_instruct | simple-evals |",
            "|---|---|---|---|---|",
        ]
        for reply, *passes in HUMANEVAL_ROWS:
            lines.append(f"| {_code(reply)} | " + " | ".join(_passed(p) for p in passes) + " |")
    else:
        raise ValueError(task)
    return "\n".join(lines)


TASKS = ("gsm8k", "mmlu", "humaneval")


def _region(task: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- examples:{task} -->\n)(.*?)(\n<!-- /examples:{task} -->)", re.DOTALL
    )


def rewrite(doc: str) -> str:
    for task in TASKS:
        m = _region(task).search(doc)
        if m:
            doc = doc[: m.start(2)] + render(task) + doc[m.end(2) :]
    return doc


# -- the tests --------------------------------------------------------------------------------


@pytest.mark.parametrize("task", TASKS)
def test_doc_table_is_the_rows(task: str) -> None:
    m = _region(task).search(DOC.read_text(encoding="utf-8"))
    assert m, f"docs/scoring.md has no <!-- examples:{task} --> table"
    assert m.group(2) == render(task), "run: python -m tests.unit.test_scoring_doc"


@pytest.mark.parametrize(("reply", "target", "ours"), [r[:3] for r in GSM8K_ROWS])
def test_gsm8k_rows(reply: str, target: str, ours: str | None) -> None:
    assert gsm8k.extract_answer(reply) == ours


@pytest.mark.parametrize(("reply", "target", "ours"), [r[:3] for r in MMLU_ROWS])
def test_mmlu_rows(reply: str, target: str, ours: str | None) -> None:
    assert mmlu.extract_choice(reply) == ours


@pytest.mark.parametrize(("reply", "ours"), [r[:2] for r in HUMANEVAL_ROWS])
def test_humaneval_rows(reply: str, ours: bool) -> None:
    assert humaneval.score_response(ADD_PROBLEM, reply).passed is ours


def test_humaneval_problem_is_sound() -> None:
    solution = ADD_PROBLEM["canonical_solution"]
    assert humaneval.score_response(ADD_PROBLEM, solution).passed
    assert not humaneval.score_response(ADD_PROBLEM, "    return x - y\n").passed


@pytest.mark.parametrize(
    "template",
    [
        gsm8k.INSTRUCTION,
        humaneval.INSTRUCTION,
        mmlu.PREAMBLE,
        *custom.TEMPLATES.values(),
    ],
)
def test_doc_quotes_the_prompt_templates(template: str) -> None:
    doc = DOC.read_text(encoding="utf-8")
    for line in template.strip().splitlines():
        assert line in doc


if __name__ == "__main__":
    DOC.write_text(rewrite(DOC.read_text(encoding="utf-8")), encoding="utf-8")
    print(f"rewrote the example tables of {DOC}")
