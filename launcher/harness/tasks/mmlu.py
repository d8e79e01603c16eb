"""MMLU (Hendrycks et al., 57 subjects, 14042 test questions), k-shot, scored by accuracy.

The prompt is the original paper's format (``evaluate.py`` of hendrycks/test): ::

    The following are multiple choice questions (with answers) about <subject words>.

    <dev question 1>
    A. <choice>
    B. <choice>
    C. <choice>
    D. <choice>
    Answer: <letter>

    ... (num_fewshot dev examples, in file order) ...
    <test question>
    A. ...
    D. <choice>
    Answer:

sent as one user message (chat) or as the prompt (completions). The model's letter is found by
:func:`extract_choice`. Reported: accuracy ``micro`` (over all questions, the headline) and
``macro`` (mean of the subjects' accuracies), plus each subject under ``results.groups.mmlu``.

Params (``config.params.extra``):

* ``dataset_dir``: the folder with the original CSVs (required; never downloaded), see
  :func:`launcher.harness.datasets.resolve_mmlu`;
* ``num_fewshot`` (default 5, 0-5): dev examples before each question;
* ``subjects`` (default: all 57, which must all be present): a list (or comma-separated string)
  of subjects to run instead.

``limit_samples`` applies per subject (the first N test questions of each), as in lm-eval.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from typing import Any

from launcher.harness.datasets import (
    MMLU_LAYOUT,
    MMLU_LETTERS,
    MMLU_SUBJECTS,
    McRow,
    load_mmlu_csv,
    mmlu_subjects,
    resolve_mmlu,
)
from launcher.harness.errors import DatasetError
from launcher.harness.scoring import Score, Summary, macro_score, mean_score
from launcher.harness.tasks.base import (
    ANSWER_ADVERBS,
    Item,
    Params,
    Scored,
    item_mean,
    matched,
    score_each,
    strip_thinking,
)

DEFAULT_FEWSHOT = 5
PREAMBLE = "The following are multiple choice questions (with answers) about {}.\n\n"


def format_subject(subject: str) -> str:
    return subject.replace("_", " ")


def format_example(row: McRow, include_answer: bool) -> str:
    text = row.question
    for letter, choice in zip(MMLU_LETTERS, row.choices, strict=True):
        text += f"\n{letter}. {choice}"
    text += "\nAnswer:"
    if include_answer:
        text += f" {row.answer}\n\n"
    return text


def build_prompt(subject: str, shots: Sequence[McRow], row: McRow) -> str:
    prompt = PREAMBLE.format(format_subject(subject))
    prompt += "".join(format_example(shot, True) for shot in shots)
    return prompt + format_example(row, False)


# -- finding the chosen letter in a reply -----------------------------------------------------

_LATEX = re.compile(r"\\(?:boxed|text|textbf|mathrm|mathbf)\s*\{([^{}]*)\}")
_BOXED = re.compile(r"\\boxed\s*\{\s*([^{}]*?)\s*\}")
_EMPHASIS = re.compile(r"\*+|`+|(?<!\w)_+|_+(?!\w)")
_BOX = "\ue000"  # stands for a ``\boxed{}`` marker in the text the markers are searched in
_VERBS = r"(?:is|was|would\s+be|should\s+be|will\s+be|must\s+be)"


def _norm(text: str) -> str:
    return " ".join(str(text).split()).strip().rstrip(".").casefold()


def _marker(letters: str) -> re.Pattern[str]:
    """An explicit answer marker and its letter: ``Answer: B``, ``answer: c``, ``the correct
    answer is (C)``, ``the answer is actually C``, ``Final answer is option D``, ``\\boxed{B}``,
    ``C is the best answer``, ``..., so C.`` (at the end of its line). Marker words in any case; a
    lowercase letter only where it cannot be the article ``a`` or a word (``answer: c``,
    ``answer is (c).``, not ``the answer is a bit ...``)."""
    upper = letters.upper()
    lower = upper.lower()
    lead = (
        rf"(?:\b(?i:answer)\s*(?:(?i:{_VERBS})(?:,?\s+(?i:{ANSWER_ADVERBS})\b,?)?\s*[:=]?"
        rf"|[:=])|{_BOX})\s*(?:(?i:option|choice|letter)\s*)?"
    )
    article = "".join(c for c in "ai" if c in lower)  # 'a' and 'i' are also words
    others = "".join(c for c in lower if c not in "ai")
    alternatives = [
        rf"[\(\[$]?([{upper}])(?![\w'])",
        rf"\(([{lower}])\)",
        rf"\[([{lower}])\]",
    ]
    if others:
        alternatives.append(rf"\$?([{others}])\$?(?![\w'])")
    if article:
        alternatives.append(
            rf"\$?([{article}])\$?(?=[ \t]*(?:\n|$)|[.,;:!?)\]][ \t]*(?:\n|$))"
        )
    # the letter before the marker: ``C is the best answer``, ``(B) is the correct option``
    trailing = (
        rf"(?<![\w'])[\(\[]?([{upper}])[\)\]]?\s+(?:{_VERBS})\s+(?:the\s+)?"
        r"(?i:correct|best|right|most\s+likely)\s+(?i:answer|option|choice)\b"
    )
    # a conclusion ending its line: ``A is wrong, B is wrong, so C.``
    conclusion = (
        rf"\b(?i:so|thus|therefore|hence)\b,?\s+(?:(?i:option|choice)\s+)?[\(\[]?([{upper}])"
        r"[\)\]]?(?=[.!]?[ \t]*(?:\n|$))"
    )
    return re.compile(lead + "(?:" + "|".join(alternatives) + ")|" + trailing + "|" + conclusion)


def _alone(upper: str) -> re.Pattern[str]:
    """A capital letter standing alone, not the article ``A``/pronoun ``I`` before a word."""
    return re.compile(rf"(?<![\w'])([{upper}])(?![\w'])(?!(?<=[AI])\s+(?!is\b)[a-z])")


def _negated(upper: str) -> re.Pattern[str]:
    """A marker that rejects a letter: ``the answer is not B``, ``answer can't be (B)``."""
    return re.compile(
        r"\b(?i:answer)\s+(?i:is\s+not|isn't|is\s+never|cannot\s+be|can\s*not\s+be|can't\s+be)"
        rf"\s*(?:(?i:option|choice)\s*)?[\(\[]?([{upper}])(?![\w'])"
    )


def _last_marked(marked: str, upper: str) -> tuple[str | None, set[str]]:
    """The letter of the last explicit marker, and the letters rejected after it. A negated
    marker (``the answer is not B, it is C``) gives the last other letter standing alone
    after it on its line; with none it is passed over, its letter rejected."""
    found = [(m.start(), m, False) for m in _marker(upper).finditer(marked)]
    found += [(m.start(), m, True) for m in _negated(upper).finditer(marked)]
    rejected: set[str] = set()
    for _, m, negated in sorted(found, key=lambda hit: hit[0], reverse=True):
        if not negated:
            return next(g for g in m.groups() if g).upper(), rejected
        line_end = marked.find("\n", m.end())
        after = marked[m.end() : len(marked) if line_end < 0 else line_end]
        others = [a.group(1) for a in _alone(upper).finditer(after) if a.group(1) != m.group(1)]
        if others:
            return others[-1], rejected
        rejected.add(m.group(1))
    return None, rejected


# Where a completion that answered on its first line runs on into a new question.
_RUN_ON = re.compile(
    r"^[ \t]*(?:(?i:the following are)|(?i:question)\s*\d*\s*:)"
    r"|^[ \t]*[A-Z][.)][ \t][^\n]*\n[ \t]*[A-Z][.)][ \t]",
    re.MULTILINE,
)


def extract_choice(
    response: str, letters: str = MMLU_LETTERS, choices: Sequence[str] | None = None
) -> str | None:
    """The option letter a reply picks, or None if it does not pick exactly one. In order
    (docs/scoring.md has examples), after dropping a leading thinking section (up to
    ``</think>``):

    1. the whole reply is a letter: ``B``, ``(b)``, ``C.``, ``**D**``, ``\\boxed{A}``;
    2. the last explicit answer marker, so a reply that corrects itself counts its last word:
       ``Answer: B ... wait, actually the answer is C`` gives C, and so does ``Answer: B. No,
       the answer is not B, it is C`` (:func:`_last_marked`); also ``answer: c``,
       ``the correct answer is (C)``, ``answer is option D``, ``\\boxed{B}``. If the first
       line is a letter alone (``B\n\n...``), only markers before a run-on into a new question
       (``The following are ...``, ``Question:``, lines ``A. ...`` ``B. ...``) count, and
       without one that first letter is the pick (a completion that ran on);
    3. the reply starts with a letter: ``B. 42``, ``C) ...``, ``A: 12``, but not
       ``A triangle ...``;
    4. exactly one distinct letter stands alone in the reply (``I'd pick C.``; the article
       ``A``, the pronoun ``I`` before a lowercase word and a letter a negated marker
       rejected do not count);
    5. the reply is the text of exactly one of the choices.
    """
    response = strip_thinking(response)
    text = _EMPHASIS.sub("", _LATEX.sub(r"\1", response)).strip()
    if not text:
        return None
    upper = letters.upper()
    both = upper + upper.lower()
    m = re.fullmatch(rf"[\(\[$]?([{both}])[\)\]$]?[.:]?", text)
    if m:
        return m.group(1).upper()
    first = re.match(rf"[\(\[]?([{upper}])[\)\]\.:]?[ \t]*\n", text)
    marked = _EMPHASIS.sub("", _LATEX.sub(r"\1", _BOXED.sub(_BOX + r"\1", response))).strip()
    if first:  # markers count only before a run-on into the next question
        run_on = _RUN_ON.search(marked)
        marked = marked[: run_on.start()] if run_on else marked
    picked, rejected = _last_marked(marked, upper)
    if picked:
        return picked
    if first:
        return first.group(1)
    m = re.match(rf"[\(\[]?([{upper}])(?:[\)\]\.:,]|\s+[-\u2013\u2014]\s)", text)
    if m:
        return m.group(1)
    alone = {m.group(1) for m in _alone(upper).finditer(text)} - rejected
    if len(alone) == 1:
        return alone.pop()
    if choices:
        wanted = _norm(text)
        hits_ = [upper[i] for i, choice in enumerate(choices) if _norm(choice) == wanted]
        if len(hits_) == 1:
            return hits_[0]
    return None


def letters_for(n: int) -> str:
    return string.ascii_uppercase[:n]


def score_choice(item: Item, response: str | None) -> Scored:
    """Right if ``response`` picks the letter ``item.target`` among ``item.data["choices"]``
    (lettered A, B, ...); no response (None) picks nothing."""
    if response is None:
        return matched(None, item)
    choices = item.data["choices"]
    return matched(extract_choice(response, letters_for(len(choices)), choices), item)


# -- the task ---------------------------------------------------------------------------------


class MmluTask:
    name = "mmlu"
    metric = "accuracy"
    samples_per_item = 1

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        p = Params(params)
        self.num_fewshot = p.integer("num_fewshot", DEFAULT_FEWSHOT, 0, 5)
        self.subjects = p.string_list("subjects")
        if self.subjects:
            unknown = [s for s in self.subjects if s not in MMLU_SUBJECTS]
            if unknown:
                raise p.error(
                    "subjects",
                    f"unknown MMLU subject {unknown[0]!r}; subjects are named like the CSV files"
                    f" without _test.csv, e.g. {', '.join(MMLU_SUBJECTS[:3])}",
                )

    def load(self, limit: int | None, dataset_dir: str | None = None) -> list[Item]:
        folder = resolve_mmlu(dataset_dir)
        present = mmlu_subjects(folder)
        if self.subjects:
            wanted = sorted(dict.fromkeys(self.subjects))
            missing = [s for s in wanted if s not in present]
            if missing:
                raise DatasetError(
                    f"MMLU dataset folder {folder} has no test/{missing[0]}_test.csv"
                    f" (expected layout: {MMLU_LAYOUT})"
                )
        else:
            wanted = present
            missing = [s for s in MMLU_SUBJECTS if s not in present]
            if missing:
                raise DatasetError(
                    f"MMLU dataset folder {folder} has {len(MMLU_SUBJECTS) - len(missing)} of the"
                    f" 57 subjects (missing e.g. {', '.join(missing[:3])}); mount the complete"
                    " data folder, or list the subjects to run in config.params.extra.subjects"
                )
        items: list[Item] = []
        for subject in wanted:
            shots: list[McRow] = []
            if self.num_fewshot:
                dev_path = folder / "dev" / f"{subject}_dev.csv"
                if not dev_path.is_file():
                    raise DatasetError(
                        f"MMLU: {dev_path} is missing; it holds the few-shot examples"
                        f" (num_fewshot={self.num_fewshot}; set num_fewshot: 0 to run without)"
                    )
                shots = load_mmlu_csv(dev_path)[: self.num_fewshot]
                if len(shots) < self.num_fewshot:
                    raise DatasetError(
                        f"MMLU: {dev_path} has {len(shots)} examples, num_fewshot is"
                        f" {self.num_fewshot}"
                    )
            rows = load_mmlu_csv(folder / "test" / f"{subject}_test.csv")[:limit]
            for i, row in enumerate(rows):
                items.append(
                    Item(
                        id=f"mmlu/{subject}/{i}",
                        messages=[{"role": "user", "content": build_prompt(subject, shots, row)}],
                        target=row.answer,
                        data={"subject": subject, "choices": list(row.choices)},
                    )
                )
        return items

    def score(
        self, items: Sequence[Item], responses: Sequence[Sequence[str]]
    ) -> list[list[Scored]]:
        return score_each(items, responses, score_choice)

    def summarize(self, items: Sequence[Item], scored: Sequence[Sequence[Scored]]) -> Summary:
        by_subject: dict[str, list[float]] = {}
        for item, row in zip(items, scored, strict=True):
            by_subject.setdefault(item.data["subject"], []).append(item_mean(row))
        subjects: dict[str, Score] = {s: mean_score(v) for s, v in sorted(by_subject.items())}
        micro = mean_score([v for values in by_subject.values() for v in values])
        macro = macro_score(subjects.values())
        return Summary(
            {self.metric: {"micro": micro, "macro": macro}},
            groups={s: Summary({self.metric: {self.metric: sc}}) for s, sc in subjects.items()},
        )
