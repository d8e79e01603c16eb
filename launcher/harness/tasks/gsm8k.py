"""GSM8K (test split, 1319 grade-school math problems), scored by exact match of the number."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from launcher.harness.datasets import load_gsm8k, resolve_gsm8k
from launcher.harness.scoring import Summary
from launcher.harness.tasks.base import (
    ANSWER_ADVERBS,
    Item,
    Message,
    Scored,
    matched,
    mean_summary,
    score_each,
    strip_thinking,
)

INSTRUCTION = (
    "Solve the following math problem step by step. End your reply with the final answer"
    ' in the form "The answer is <number>."\n\n'
)
# A number: ``18``, ``1,234``, ``2.50``, ``.5``; its sign and ``$`` are read by :func:`_numbers`.
_DIGITS = re.compile(r"(?<![\d.])(?<!\d,)(?:(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)")
_MINUS = "-\u2212"
# Explicit final-answer markers (case-insensitive): ``#### 18``, ``The (final) answer is 18``,
# ``Final answer: 18``, ``Answer: 18`` (also ``**Answer:** 18``), ``\boxed{18}``.
_VERB = r"(?:is|would\s+be|will\s+be|should\s+be)"
_MARKER = re.compile(
    rf"####|\\boxed\s*\{{|\banswer\b[*_ \t]*(?:{_VERB}\b[*_ \t]*)?[:=]|\banswer\s+{_VERB}\b",
    re.IGNORECASE,
)
# A marker that rejects the number after it: ``the answer is not 16``, ``answer isn't 16``.
_NEGATED = re.compile(r"[*_ \t]*(?:not\b|n't\b)", re.IGNORECASE)
# The correction after a rejected number: ``..., it is 18``, ``but 18``, ``rather 18``.
_CORRECTION = re.compile(r"\b(?:it\s+is|it's|it\s+was|but|rather|instead)\b", re.IGNORECASE)
# What may stand between a marker and its number: spaces, markdown, ``:``, ``=``, ``$``, ``,``,
# LaTeX and an adverb (``the answer is actually 18``).
_FILLER = re.compile(
    r"(?:\s|[*_:=$({\[,]|\\(?:boxed|text|textbf|mathbf|mathrm)|\\[(\[]"
    rf"|(?i:\b{ANSWER_ADVERBS}\b))*"
)
# After a number: an operator and another operand on the same line (``20 - 2``, ``9 x 2``).
_OPERATOR = re.compile(r"[ \t]*(?:\*\*|[-+*/^x\u00d7\u00f7\u2212])[ \t]*[$(]?\d")


def target_of(answer: str) -> str:
    """The normalised number after ``####`` in a GSM8K reference answer."""
    raw = answer.split("####")[-1].strip()
    return normalize_number(raw) or raw


def normalize_number(text: str) -> str | None:
    """``"$1,234.50"`` -> ``"1234.5"``, ``"18.0"`` -> ``"18"``; None if not a number."""
    cleaned = text.replace(",", "").replace("$", "").replace(" ", "").rstrip(".")
    try:
        value = Decimal(cleaned)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    if value == value.to_integral_value():
        return str(int(value))
    return format(value.normalize(), "f")


def _numbers(text: str) -> list[tuple[int, int, str]]:
    """Every number in ``text`` as (start, end, normalised value). A minus is a sign only
    right before the digits (or ``$``), at the start or after a space or one of ``=:([{#*$``,
    and not a binary minus after a number or ``)`` (``20 -2``, ``20 - 2`` and ``20-2`` give 20
    and 2)."""
    found: list[tuple[int, int, str]] = []
    for m in _DIGITS.finditer(text):
        start = m.start()
        if start and text[start - 1] == "$":
            start -= 1
        raw = m.group(0)
        if start and text[start - 1] in _MINUS:
            before = text[: start - 1]
            prev = before[-1:] or " "
            last = before.rstrip()[-1:]
            if (prev.isspace() or prev in "=:([{#*$") and not (last.isdigit() or last in ")]%"):
                start -= 1
                raw = "-" + raw
        value = normalize_number(raw)
        if value is not None:
            found.append((start, m.end(), value))
    return found


def _marked_number(text: str, at: int, numbers: list[tuple[int, int, str]]) -> str | None:
    """The number a marker ending at ``at`` gives: the one right after it (past spaces,
    markdown and LaTeX); if that number starts an expression (``20 - 2 = 18``), the result
    after the ``=`` on the same line, else nothing."""
    following = [n for n in numbers if n[0] >= at]
    if not following or not _FILLER.fullmatch(text, at, following[0][0]):
        return None
    start, end, value = following[0]
    if not _OPERATOR.match(text, end):
        return value
    line_end = text.find("\n", end)
    line = text[end : len(text) if line_end < 0 else line_end]
    equals = line.rfind("=")
    if equals < 0:
        return None
    return _marked_number(text, end + equals + 1, following)


def extract_answer(response: str) -> str | None:
    """The model's final number (see docs/scoring.md), a leading thinking section (up to
    ``</think>``) dropped: the number after the last explicit
    marker (``####``, ``The answer is``, ``Final answer:``, ``Answer:``, ``\\boxed{}``) that is
    followed by one (after a negated marker, ``the answer is not 16, it is 18``, the last
    number on its line), else the last number in the reply."""
    response = strip_thinking(response)
    numbers = _numbers(response)
    for marker in reversed(list(_MARKER.finditer(response))):
        if _NEGATED.match(response, marker.end()):
            value = _after_rejected(response, marker.end(), numbers)
        else:
            value = _marked_number(response, marker.end(), numbers)
        if value is not None:
            return value
    return numbers[-1][2] if numbers else None


def _after_rejected(text: str, at: int, numbers: list[tuple[int, int, str]]) -> str | None:
    """After a negated marker (``the answer is not 16, it is 18``): the number a correction
    on its line gives (``it is 18 (9 x 2)``: 18, read as after a marker), else the last
    number on its line after the rejected one, else nothing."""
    line_end = text.find("\n", at)
    line = [n for n in numbers if at <= n[0] and (line_end < 0 or n[0] < line_end)]
    if len(line) < 2:
        return None
    correction = _CORRECTION.search(text, line[0][1], len(text) if line_end < 0 else line_end)
    if correction is not None:
        value = _marked_number(text, correction.end(), numbers)
        if value is not None:
            return value
    return line[-1][2]


def build_messages(question: str) -> list[Message]:
    return [{"role": "user", "content": f"{INSTRUCTION}Question: {question}"}]


class Gsm8kTask:
    """Params (``config.params.extra``): ``dataset_dir`` only (see :mod:`datasets`)."""

    name = "gsm8k"
    metric = "exact_match"
    samples_per_item = 1

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        pass

    def load(self, limit: int | None, dataset_dir: str | None = None) -> list[Item]:
        rows: list[dict[str, Any]] = load_gsm8k(resolve_gsm8k(dataset_dir))[:limit]
        return [
            Item(
                id=f"gsm8k/{i}",
                messages=build_messages(row["question"]),
                target=target_of(row["answer"]),
                data=row,
            )
            for i, row in enumerate(rows)
        ]

    def score(
        self, items: Sequence[Item], responses: Sequence[Sequence[str]]
    ) -> list[list[Scored]]:
        return score_each(items, responses, lambda item, text: matched(extract_answer(text), item))

    def summarize(self, items: Sequence[Item], scored: Sequence[Sequence[Scored]]) -> Summary:
        return mean_summary(self.metric, scored)
