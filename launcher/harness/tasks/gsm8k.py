"""GSM8K (test split, 1319 grade-school math problems), scored by exact match of the number."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from launcher.harness.datasets import load_gsm8k, resolve_gsm8k
from launcher.harness.scoring import Summary
from launcher.harness.tasks.base import Item, Message, Scored, matched, mean_summary, score_each

INSTRUCTION = (
    "Solve the following math problem step by step. End your reply with the final answer"
    ' in the form "The answer is <number>."\n\n'
)
_NUMBER = r"-?\$?\s?(?:\d[\d,]*(?:\.\d+)?|\.\d+)"
_MARKED = re.compile(rf"(?:####|the (?:final )?answer is:?)\s*\**\s*({_NUMBER})", re.IGNORECASE)
_ANY = re.compile(_NUMBER)


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


def extract_answer(response: str) -> str | None:
    """The model's final number: after the last ``####`` / ``The answer is``, else the last one."""
    marked = _MARKED.findall(response)
    candidates = marked or _ANY.findall(response)
    for raw in reversed(candidates):
        number = normalize_number(raw)
        if number is not None:
            return number
    return None


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
