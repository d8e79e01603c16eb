"""GSM8K (test split, 1319 grade-school math problems), scored by exact match of the number."""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from launcher.harness.datasets import load_gsm8k, resolve_gsm8k
from launcher.harness.tasks.base import Item, Message, Scored

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
    name = "gsm8k"
    metric = "exact_match"

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

    def score(self, items: Sequence[Item], responses: Sequence[str]) -> list[Scored]:
        scored = []
        for item, response in zip(items, responses, strict=True):
            extracted = extract_answer(response)
            scored.append(Scored(int(extracted == item.target), {"extracted": extracted}))
        return scored
