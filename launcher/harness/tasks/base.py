"""What every task provides: items (prompts + targets) and a scorer."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import attrs

Message = dict[str, Any]


@attrs.frozen
class Item:
    id: str
    messages: list[Message]
    target: str
    data: dict[str, Any] = attrs.field(factory=dict, repr=False)


@attrs.frozen
class Scored:
    score: int  # 0 or 1
    details: dict[str, Any] = attrs.field(factory=dict)  # extra fields for samples.jsonl


class Task(Protocol):
    name: str
    metric: str  # used as both the metric and the score name in results.yml

    def load(self, limit: int | None, dataset_dir: str | None = None) -> list[Item]:
        """The first ``limit`` items (all when None) in dataset order."""
        ...

    def score(self, items: Sequence[Item], responses: Sequence[str]) -> list[Scored]: ...
