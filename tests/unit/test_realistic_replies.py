"""The built-in scorers on replies written the way chat models answer (issue 13): prose around
the answer, markdown, LaTeX, code fences, a first guess corrected later, a units remark after
the answer. Each table row is one reply and what the scorer must read from it; the rows are
ours (not taken from a dataset), one per habit seen in real replies.

docs/scoring.md gives the precedence rules these rows pin; its example tables are pinned
separately by test_scoring_doc.py.
"""

from __future__ import annotations

import pytest

from launcher.harness.tasks import gsm8k

# -- gsm8k: (reply, the number read) --------------------------------------------------------

GSM8K_REPLIES: list[tuple[str, str | None]] = [
    # an explicit marker with a remark after it: the marked number, not the remark's last one
    ("Janet has 16 - 3 - 4 = 9 eggs left to sell.\n\nFinal answer: 18 (9 eggs x $2)", "18"),
    ("She sells 9 eggs at $2 each, so \\boxed{18} (9 x 2).", "18"),
    ("Answer: 18 dollars per day (she sells 9 eggs after eating 3 and baking 4)", "18"),
    ("**Final Answer:** $18 (that is, 9 × $2)", "18"),
    # two markers: the last one
    ("#### 16\n\nWait, she also bakes muffins with 4: 16 - 3 - 4 = 9, 9 * 2 = 18.\n#### 18", "18"),
    ("The answer is 16. Wait, I forgot the muffins. The answer is 18.", "18"),
    ("The answer is 16.\n\nHmm, that ignores the muffins: 9 * 2 = 18,"
     " so the answer is actually 18.", "18"),
    ("The answer is therefore 18 (9 eggs x $2).", "18"),
    ("The answer is not 16, it is 18.", "18"),
    ("The answer is 36.\nLet me re-check: 9 * 2 = 18, not 36.\n**Final answer: 18**", "18"),
    # an expression: a minus between two numbers is not a sign
    ("He starts with 20 and gives 2 away: 20 - 2", "2"),
    ("The answer is 20 - 2 = 18.", "18"),
    ("It was 20 degrees and fell by 22: 20 - 22 = -2.\nThe answer is -2.", "-2"),
    ("Temperature now: 20 -2 = 18 degrees.", "18"),
    # normalised numbers
    ("Total: 1,000 + 234 = 1,234.\n\nThe answer is 1,234.", "1234"),
    ("The answer is $18.00.", "18"),
    ("She makes 9 * 2 = 18.", "18"),
    ("#### 18.", "18"),
    ("Final answer: \\(\\boxed{1,234}\\)", "1234"),
    # LaTeX and markdown layouts
    ("**Step 3.** 9 × 2 = 18\n\n**Final Answer**\n\\[\n\\boxed{18}\n\\]", "18"),
    ("The final answer is: **18** dollars.", "18"),
    ("It takes 0.5 hours.\n\nAnswer: 0.5 hours, i.e. 30 minutes", "0.5"),
    ("The answer is −5 degrees (it fell 8 from 3).", "-5"),
    # no marker: the last number
    ("Janet sells 16 - 3 - 4 = 9 eggs for 9 * $2 = $18 a day.", "18"),
    ("I could not work this out.", None),
]  # fmt: skip


@pytest.mark.parametrize(("reply", "number"), GSM8K_REPLIES)
def test_gsm8k_realistic_replies(reply: str, number: str | None) -> None:
    assert gsm8k.extract_answer(reply) == number
