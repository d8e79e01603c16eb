"""What the reference endpoint knows: items, their right or wrong answers, and why it cannot
answer a prompt. Pure logic (no HTTP); ``launcher.testing.reference_endpoint`` serves it.

* It recognises an item by finding which known item text (HumanEval ``prompt``, GSM8K
  ``question``, a custom task's ``question``) is contained in the last user message, whatever
  the prompt template around it (the longest contained text wins);
* the item at dataset index ``i`` is answered correctly iff
  ``floor((i+1)*A) - floor(i*A) == 1`` (exact, with ``Fraction(str(A))``), so of the first ``n``
  items exactly ``floor(n*A)`` are right: A=1.0 all, A=0.0 none, A=0.5 and n=10 five;
* a right HumanEval answer is the prompt plus the canonical solution in a ```python block, a
  wrong one the prompt with ``raise NotImplementedError`` as body; a right GSM8K answer is the
  reference reasoning ending ``The answer is <target>.``, a wrong one ends with target+1;
* a right custom-task answer is the letter of the right choice (rows with ``choices``) or the
  answer itself (the first, if it is a list), a wrong one another letter or ``I do not know.``;
* it never guesses: a prompt it cannot match gets ``None``, and ``unknown_message`` says what
  it knows and which data it lacks, naming the flag that loads it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

import attrs

from launcher.errors import ConfigError, LauncherError
from launcher.harness.datasets import load_gsm8k, load_humaneval, load_jsonl, resolve_gsm8k
from launcher.harness.tasks.gsm8k import INSTRUCTION as GSM8K_INSTRUCTION
from launcher.harness.tasks.gsm8k import target_of

_WINDOW = 3  # words per recognition anchor


def is_correct(index: int, accuracy: Fraction) -> bool:
    """Whether the item at ``index`` gets the right answer under ``accuracy``."""
    return math.floor((index + 1) * accuracy) - math.floor(index * accuracy) == 1


def humaneval_answer(problem: dict[str, Any], correct: bool) -> str:
    body = problem["canonical_solution"] if correct else "    raise NotImplementedError\n"
    return "```python\n" + problem["prompt"] + body + "\n```"


def custom_answer(row: dict[str, Any], correct: bool) -> str:
    """A custom-task row's answer: its choice letter (or text), right or not."""
    answer = row.get("answer")
    first = str(answer[0] if isinstance(answer, list) and answer else answer)
    choices = row.get("choices")
    if isinstance(choices, list) and choices:
        letters = [chr(ord("A") + i) for i in range(len(choices))]
        right = first.strip().upper() if first.strip().upper() in letters else next(
            (letter for letter, text in zip(letters, choices, strict=False)
             if str(text).strip() == first.strip()), "A")
        if correct:
            return right
        return next(letter for letter in letters if letter != right)
    return first if correct else "I do not know."


def gsm8k_answer(row: dict[str, Any], correct: bool) -> str:
    reasoning = re.sub(r"<<[^>]*>>", "", row["answer"].split("####")[0]).strip()
    target = target_of(row["answer"])
    given = target if correct else str(Decimal(target) + 1)
    return f"{reasoning}\nThe answer is {given}."


@attrs.frozen
class Known:
    task: str
    index: int
    key: str  # the item text looked for in prompts
    answer: str
    id: str = ""  # the stats key: "humaneval/HumanEval/0", "gsm8k/12"


class Oracle:
    """Known items and their (right or wrong) answers; ``answer(text)`` is thread-safe.

    Finding which key a prompt contains would take ~1.5k substring scans per new prompt, so
    each key with enough words is indexed by one run of ``_WINDOW`` interior words (one that no
    other key has taken, if it can): an interior word is whitespace-delimited in the key, so it
    is a whole token of any text containing the key, and only keys whose anchor occurs among
    the text's token runs are checked. Keys too short for an anchor are always checked. The
    result equals a scan of all keys longest first (ties: HumanEval, then GSM8K, by index).
    """

    def __init__(
        self,
        accuracy: float,
        humaneval: list[dict[str, Any]],
        gsm8k: list[dict[str, Any]] | None,
        custom: list[dict[str, Any]] | None = None,
        missing: tuple[str, ...] = (),
    ) -> None:
        if not 0.0 <= accuracy <= 1.0:
            raise ConfigError(f"accuracy must be between 0 and 1, got {accuracy}")
        self.accuracy = Fraction(str(accuracy))
        known = [
            Known(
                "humaneval", i, p["prompt"].strip(), humaneval_answer(p, self._ok(i)),
                f"humaneval/{p.get('task_id', i)}",
            )
            for i, p in enumerate(humaneval)
        ]
        known += [
            Known("gsm8k", i, r["question"].strip(), gsm8k_answer(r, self._ok(i)), f"gsm8k/{i}")
            for i, r in enumerate(gsm8k or [])
        ]
        known += [
            Known("custom", i, str(r["question"]).strip(), custom_answer(r, self._ok(i)),
                  f"custom/{r.get('id', i)}")
            for i, r in enumerate(custom or [])
        ]
        # Longest keys first: if one item's text contains another's, the longer one wins.
        self.known = sorted(known, key=lambda k: -len(k.key))
        self.counts = {"humaneval": len(humaneval), "gsm8k": len(gsm8k or []),
                       "custom": len(custom or [])}
        self.missing = missing  # what it could not load, each with the flag that loads it
        self._anchors, self._unanchored = _anchor_index(self.known)
        self.lookup = lru_cache(maxsize=8192)(self._scan)

    def _ok(self, index: int) -> bool:
        return is_correct(index, self.accuracy)

    def _scan(self, text: str) -> Known | None:
        words = text.split()
        ranks = [r for r in self._unanchored if self.known[r].key in text]
        get = self._anchors.get
        for window in zip(*(words[i:] for i in range(_WINDOW)), strict=False):
            for rank in get(window, ()):
                if self.known[rank].key in text:
                    ranks.append(rank)
        return self.known[min(ranks)] if ranks else None

    def answer(self, text: str) -> str | None:
        """The answer to a prompt, or None when it names no item this oracle knows."""
        found = self.lookup(text)
        return found.answer if found else None

    def unknown_message(self, text: str) -> str:
        """Why a prompt got no answer: the missing data first (GSM8K's if the prompt is the
        gsm8k task's), then what it knows."""
        missing = list(self.missing)
        if GSM8K_MISSING in missing and GSM8K_INSTRUCTION in text:
            missing = [GSM8K_MISSING]
        counts = ", ".join(f"{n} {task}" for task, n in self.counts.items())
        known = f"the reference endpoint (not a model) knows no such prompt ({counts} items)"
        return "; ".join([*missing, known])


def _anchor_index(known: list[Known]) -> tuple[dict[tuple[str, ...], list[int]], list[int]]:
    """Anchor each key on its first interior word window that no other key uses yet."""
    anchors: dict[tuple[str, ...], list[int]] = {}
    unanchored: list[int] = []
    for rank, item in enumerate(known):
        interior = item.key.split()[1:-1]
        windows = zip(*(interior[i:] for i in range(_WINDOW)), strict=False)
        first = None
        for window in windows:
            first = first or window
            if window not in anchors:
                anchors[window] = [rank]
                break
        else:
            if first is None:
                unanchored.append(rank)
            else:
                anchors[first].append(rank)
    return anchors, unanchored


GSM8K_MISSING = (
    "GSM8K data is not loaded: restart it with --dataset-dir DIR, a folder holding GSM8K's"
    " test.jsonl (the same folder as the task's dataset_dir)"
)
CUSTOM_MISSING = "custom-task questions are known only from --dataset FILE.jsonl (repeatable)"


def load_oracle(
    accuracy: float, dataset_dir: str | None, log: Any = print, custom: Iterable[str] = ()
) -> Oracle:
    """The oracle for HumanEval, GSM8K (if it can be found) and the custom JSONL files."""
    humaneval = load_humaneval()
    gsm8k: list[dict[str, Any]] | None = None
    missing: list[str] = []
    try:
        gsm8k = load_gsm8k(resolve_gsm8k(dataset_dir))
    except LauncherError as e:
        log(f"reference endpoint: GSM8K unavailable ({e.message})")
        missing.append(GSM8K_MISSING)
    rows: list[dict[str, Any]] = []
    for path in custom:
        for n, row in load_jsonl(Path(path)):
            if not isinstance(row.get("question"), str) or "answer" not in row:
                raise ConfigError(f"{path}: line {n} is not a custom-task item (question, answer)")
            rows.append(row)
    if not rows:
        missing.append(CUSTOM_MISSING)
    return Oracle(accuracy, humaneval, gsm8k, rows, tuple(missing))
