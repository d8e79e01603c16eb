"""What every task provides: items (prompts + targets), a scorer and an aggregator.

The flow in ``run_eval``::

    task = get_task(cfg.task, cfg.params.extra)    # params validated here (ConfigError)
    items = task.load(limit, dataset_dir)           # DatasetError if the data is missing
    responses = fetch(...)                          # per item, task.samples_per_item texts
    scored = task.score(items, responses)           # per item, one Scored per response
    summary = task.summarize(items, scored)         # metrics -> scores (value, stderr, count)
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

import attrs

from launcher.errors import ConfigError
from launcher.harness.scoring import Summary, mean_score

Message = dict[str, Any]
T = TypeVar("T")

# A reasoning model's thinking before its answer (DeepSeek-R1, Qwen3): drafts, not the answer.
# The opening tag may be missing: chat templates that put ``<think>`` in the prompt.
_THINKING = re.compile(r"\A\s*(?:<think>)?.*?</think>", re.DOTALL | re.IGNORECASE)


def strip_thinking(reply: str) -> str:
    """``reply`` without its leading thinking section (up to the first ``</think>``), unless
    nothing would be left."""
    m = _THINKING.match(reply)
    return reply[m.end() :] if m and reply[m.end() :].strip() else reply

# Words a model puts between an answer marker and the answer (``the answer is actually 18``,
# ``the answer is therefore C``), as a regular expression; "not" is deliberately absent.
ANSWER_ADVERBS = (
    r"(?:actually|really|therefore|thus|then|now|clearly|indeed|simply|just|definitely"
    r"|probably|likely|still|finally|instead|most\s+likely)"
)


@attrs.frozen
class Item:
    id: str
    messages: list[Message]
    target: str
    data: dict[str, Any] = attrs.field(factory=dict, repr=False)


@attrs.frozen
class Scored:
    score: int  # 0 or 1 for this response
    details: dict[str, Any] = attrs.field(factory=dict)  # extra fields for samples.jsonl


class Task(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def metric(self) -> str:
        """The headline metric (the first one in results.yml)."""
        ...

    @property
    def samples_per_item(self) -> int:
        """How many responses the fetch phase gets per item."""
        ...

    def load(self, limit: int | None, dataset_dir: str | None = None) -> list[Item]:
        """The items to ask, in dataset order (``limit``: see each task)."""
        ...

    def score(
        self, items: Sequence[Item], responses: Sequence[Sequence[str]]
    ) -> list[list[Scored]]:
        """One ``Scored`` per response; ``responses[i]`` are the texts for ``items[i]``."""
        ...

    def summarize(self, items: Sequence[Item], scored: Sequence[Sequence[Scored]]) -> Summary: ...


def check_shape(items: Sequence[Item], responses: Sequence[Sequence[str]]) -> None:
    if len(items) != len(responses):
        raise ValueError(f"{len(responses)} response lists for {len(items)} items")
    for item, texts in zip(items, responses, strict=True):
        if isinstance(texts, str) or not texts:
            raise ValueError(f"item {item.id}: expected a non-empty list of response texts")


def score_each(
    items: Sequence[Item],
    responses: Sequence[Sequence[str]],
    score: Callable[[Item, str], Scored],
) -> list[list[Scored]]:
    """``score(item, text)`` for every response, in the shape of ``responses`` (checked first)."""
    check_shape(items, responses)
    return [
        [score(item, text) for text in texts] for item, texts in zip(items, responses, strict=True)
    ]


def matched(extracted: str | None, item: Item) -> Scored:
    """Right (1) if what was extracted from a response is the item's target; records it."""
    return Scored(int(extracted == item.target), {"extracted": extracted})


def item_mean(row: Sequence[Scored]) -> float:
    """The mean score of one item's responses."""
    return sum(s.score for s in row) / len(row)


def mean_summary(metric: str, scored: Sequence[Sequence[Scored]]) -> Summary:
    """One metric with one score of the same name: the mean over the items of ``item_mean``."""
    return Summary({metric: {metric: mean_score([item_mean(row) for row in scored])}})


class Params:
    """Typed access to ``config.params.extra`` with errors that name the key."""

    def __init__(self, extra: Mapping[str, Any] | None) -> None:
        self.extra = dict(extra or {})

    def error(self, name: str, message: str) -> ConfigError:
        return ConfigError(message, key=f"config.params.extra.{name}")

    def get(self, name: str, kind: type[T] | tuple[type, ...], default: T) -> T:
        value = self.extra.get(name)
        if value is None:
            return default
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self.error(name, f"must be {_kind_name(kind)}, got {value!r}")
        return value  # type: ignore[return-value]

    def integer(self, name: str, default: int, minimum: int, maximum: int | None = None) -> int:
        value = self.get(name, int, default)
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f">= {minimum}" if maximum is None else f"between {minimum} and {maximum}"
            raise self.error(name, f"must be {bounds}, got {value}")
        return value

    def choice(self, name: str, options: Sequence[str], default: str | None) -> str | None:
        value = self.get(name, str, default)
        if value is not None and value not in options:
            raise self.error(name, f"must be one of {', '.join(options)}, got {value!r}")
        return value

    def string_list(self, name: str) -> list[str] | None:
        value = self.extra.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            value = [v for v in (s.strip() for s in value.split(",")) if v]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
            raise self.error(name, f"must be a non-empty list of strings, got {value!r}")
        return value

    def int_list(self, name: str, default: list[int]) -> list[int]:
        value = self.extra.get(name)
        if value is None:
            return default
        if isinstance(value, int) and not isinstance(value, bool):
            value = [value]
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in value)
        ):
            raise self.error(name, f"must be a positive integer or a list of them, got {value!r}")
        return sorted(set(value))


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    names = {bool: "true or false", int: "an integer", str: "a string", float: "a number"}
    return " or ".join(names.get(k, k.__name__) for k in kinds)
