"""Custom tasks: your own questions in a JSONL file, scored without writing code.

Each line is a JSON object::

    {"question": "What is the capital of France?", "answer": "Paris"}
    {"question": "2 + 2 * 3 = ?", "answer": ["8", "eight"]}                  # any of these
    {"question": "Largest planet?", "choices": ["Mars", "Jupiter", "Venus"], "answer": "B"}
    {"id": "q7", "question": "...", "answer": "...", "context": "..."}        # extra fields ok

``question`` (string) and ``answer`` are required; ``choices`` (2-26 strings) is optional; ``id``
is optional (default ``custom/<row index>``); other fields can be used in the prompt template.

Params (``config.params.extra``):

* ``dataset_path``: the JSONL file, absolute or relative to the dataset dir (``dataset_dir``, or
  the task's ``dataset_dir`` that the launcher mounts at /datasets). Optional when that dir holds
  exactly one ``*.jsonl``.
* ``scoring``: ``exact``, ``regex`` or ``choice``; default ``choice`` when every row has
  ``choices``, else ``exact``:

  - ``exact``: the reply (or what ``answer_regex`` extracts from it) equals the answer (or one of
    the answers) after normalising both: Unicode NFKC, markdown ``*``/`````` removed, whitespace
    collapsed, surrounding quotes and trailing punctuation (``.,;:!?``) removed, case folded
    (unless ``case_sensitive``), and numbers compared by value (``1,000`` = ``1000.0``);
  - ``regex``: the answer (or each of the answers) is a regular expression, searched for
    anywhere in the reply (or in what ``answer_regex`` extracts); any match is right;
  - ``choice``: the choices are shown lettered ``A.``, ``B.`` ...; the answer is the right
    letter or the text of the right choice; the reply's letter is found as for MMLU (``B``,
    ``B. Jupiter``, ``Answer: B``, ``answer: b``, ``the answer is (B)``, the last such marker
    when a reply corrects itself, or the exact text of one choice; see docs/scoring.md).

* ``answer_regex``: a regular expression that extracts the answer from the reply before
  scoring: the last match is used, its first group if it has groups; no match scores 0. E.g.
  ``"(?i)answer:\\s*(.+)"``.
* ``case_sensitive`` (default false): for ``exact``, and the regexes of ``regex``.
* ``prompt_template``: the user message; ``{question}``, ``{choices}`` (the lettered lines) and
  ``{<any field of the row>}`` are replaced, any other ``{...}`` is left as is. Defaults:
  exact ``"{question}\\n\\nReply with only the answer, no explanation."``, regex ``"{question}"``,
  choice ``"{question}\\n\\n{choices}\\n\\nAnswer with the letter of the correct option."``.
* ``system_prompt``: an optional system message.

``limit_samples`` takes the first N rows. Metrics: ``exact_match``, ``regex_match`` or
``accuracy`` (choice).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

from launcher.harness.datasets import load_jsonl, resolve_custom
from launcher.harness.errors import DatasetError
from launcher.harness.scoring import Summary
from launcher.harness.tasks.base import (
    Item,
    Message,
    Params,
    Scored,
    mean_summary,
    score_each,
    strip_thinking,
)
from launcher.harness.tasks.gsm8k import normalize_number
from launcher.harness.tasks.mmlu import letters_for, score_choice

SCORINGS = ("exact", "regex", "choice")
METRICS = {"exact": "exact_match", "regex": "regex_match", "choice": "accuracy"}
TEMPLATES = {
    "exact": "{question}\n\nReply with only the answer, no explanation.",
    "regex": "{question}",
    "choice": "{question}\n\n{choices}\n\nAnswer with the letter of the correct option.",
}
MAX_CHOICES = 26
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_STRIP = " \t\r\n\"'`\u201c\u201d\u2018\u2019.,;:!?"
_LETTER_ANSWER = re.compile(r"\(?([A-Za-z])[\).]?")


def normalize(text: str, case_sensitive: bool = False) -> str:
    """The form ``exact`` compares (see the module docstring)."""
    t = unicodedata.normalize("NFKC", str(text)).replace("*", "").replace("`", "")
    t = " ".join(t.split()).strip(_STRIP)
    number = normalize_number(t)
    if number is not None:
        return number
    return t if case_sensitive else t.casefold()


def render(template: str, row: Mapping[str, Any], choices_text: str) -> str:
    def fill(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "choices":
            return choices_text
        value = row.get(name)
        if isinstance(value, str | int | float) and not isinstance(value, bool):
            return str(value)
        return m.group(0)

    return _PLACEHOLDER.sub(fill, template)


def format_choices(choices: Sequence[str]) -> str:
    letters = letters_for(len(choices))
    return "\n".join(f"{letter}. {c}" for letter, c in zip(letters, choices, strict=True))


class CustomTask:
    name = "custom"
    samples_per_item = 1

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        p = Params(params)
        self.dataset_path = p.get("dataset_path", str, None)
        self.scoring = p.choice("scoring", SCORINGS, None)
        self.template = p.get("prompt_template", str, None)
        if self.template is not None and not _PLACEHOLDER.search(self.template):
            raise p.error(
                "prompt_template", "must contain {question} (or another {field} of your rows)"
            )
        self.system_prompt = p.get("system_prompt", str, None)
        self.case_sensitive = p.get("case_sensitive", bool, False)
        self.flags = 0 if self.case_sensitive else re.IGNORECASE
        pattern = p.get("answer_regex", str, None)
        try:
            self.answer_regex = re.compile(pattern) if pattern else None
        except re.error as e:
            raise p.error("answer_regex", f"is not a valid regular expression: {e}") from None

    @property
    def metric(self) -> str:
        """From ``scoring``; before ``load`` picks the default scoring, ``exact``'s."""
        return METRICS[self.scoring or "exact"]

    # -- loading -------------------------------------------------------------------------------

    def load(self, limit: int | None, dataset_dir: str | None = None) -> list[Item]:
        path = resolve_custom(self.dataset_path, dataset_dir)
        numbered = load_jsonl(path)
        if not numbered:
            raise DatasetError(f"custom task: {path} has no rows")
        rows = [(n, _check_row(row, f"{path}: line {n}")) for n, row in numbered]
        if self.scoring is None:
            self.scoring = "choice" if all(r.get("choices") for _, r in rows) else "exact"
        template = self.template or TEMPLATES[self.scoring]
        items = []
        for index, (n, row) in enumerate(rows[:limit]):
            where = f"{path}: line {n}"
            choices = [str(c) for c in row.get("choices") or []]
            target, data = self._target(row, choices, where)
            content = render(template, row, format_choices(choices))
            messages: list[Message] = []
            if self.system_prompt:
                messages.append({"role": "system", "content": self.system_prompt})
            messages.append({"role": "user", "content": content})
            item_id = row.get("id")
            items.append(
                Item(
                    id=str(item_id) if item_id is not None else f"custom/{index}",
                    messages=messages,
                    target=target,
                    data={**data, "choices": choices},
                )
            )
        return items

    def _target(
        self, row: Mapping[str, Any], choices: list[str], where: str
    ) -> tuple[str, dict[str, Any]]:
        answers = row["answer"] if isinstance(row["answer"], list) else [row["answer"]]
        answers = [str(a) for a in answers]
        if self.scoring == "choice":
            if len(choices) < 2:
                raise DatasetError(f"{where}: scoring 'choice' needs a 'choices' list (2-26)")
            if len(answers) != 1:
                raise DatasetError(f"{where}: scoring 'choice' needs one answer, got a list")
            return _choice_letter(answers[0], choices, where), {}
        if self.scoring == "regex":
            try:
                patterns = [re.compile(a, self.flags) for a in answers]
            except re.error as e:
                raise DatasetError(f"{where}: the answer is not a valid regex: {e}") from None
            return " | ".join(answers), {"patterns": patterns}
        normalized = {normalize(a, self.case_sensitive) for a in answers}
        return " | ".join(answers), {"answers": normalized}

    # -- scoring -------------------------------------------------------------------------------

    def _extract(self, response: str) -> str | None:
        if self.answer_regex is None:
            return response
        matches = list(self.answer_regex.finditer(response))
        if not matches:
            return None
        last = matches[-1]
        return last.group(1) if self.answer_regex.groups else last.group(0)

    def score_one(self, item: Item, response: str) -> Scored:
        extracted = self._extract(strip_thinking(response))
        if self.scoring == "choice":
            return score_choice(item, extracted)
        details: dict[str, Any] = {}
        if self.answer_regex is not None:
            details["extracted"] = extracted
        if extracted is None:
            return Scored(0, details)
        if self.scoring == "regex":
            ok = any(p.search(extracted) for p in item.data["patterns"])
            return Scored(int(ok), details)
        norm = normalize(extracted, self.case_sensitive)
        if self.answer_regex is None:
            details["normalized"] = norm[:200]
        return Scored(int(norm in item.data["answers"]), details)

    def score(
        self, items: Sequence[Item], responses: Sequence[Sequence[str]]
    ) -> list[list[Scored]]:
        return score_each(items, responses, self.score_one)

    def summarize(self, items: Sequence[Item], scored: Sequence[Sequence[Scored]]) -> Summary:
        return mean_summary(self.metric, scored)


def _check_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    question = row.get("question")
    if not isinstance(question, str) or not question.strip():
        raise DatasetError(f"{where}: 'question' must be a non-empty string")
    answer = row.get("answer")
    scalar = (str, int, float)
    ok = (isinstance(answer, scalar) and not isinstance(answer, bool)) or (
        isinstance(answer, list)
        and answer
        and all(isinstance(a, scalar) and not isinstance(a, bool) for a in answer)
    )
    if not ok:
        raise DatasetError(f"{where}: 'answer' must be a string, a number, or a list of them")
    choices = row.get("choices")
    if choices is not None and (
        not isinstance(choices, list)
        or not 2 <= len(choices) <= MAX_CHOICES
        or not all(isinstance(c, scalar) and not isinstance(c, bool) for c in choices)
    ):
        raise DatasetError(f"{where}: 'choices' must be a list of 2 to 26 strings")
    return row


def _choice_letter(answer: str, choices: list[str], where: str) -> str:
    letters = letters_for(len(choices))
    m = _LETTER_ANSWER.fullmatch(answer.strip())
    if m and m.group(1).upper() in letters:
        return m.group(1).upper()
    wanted = normalize(answer)
    hits = [letters[i] for i, c in enumerate(choices) if normalize(c) == wanted]
    if len(hits) == 1:
        return hits[0]
    raise DatasetError(
        f"{where}: the answer {answer!r} is neither a letter {letters[0]}-{letters[-1]} nor the"
        " text of exactly one choice"
    )
