"""The built-in scorers on replies written the way chat models answer (issue 13): prose around
the answer, markdown, LaTeX, code fences, a first guess corrected later, a units remark after
the answer. Each table row is one reply and what the scorer must read from it; the rows are
ours (not taken from a dataset), one per habit seen in real replies.

docs/scoring.md gives the precedence rules these rows pin; its example tables are pinned
separately by test_scoring_doc.py.
"""

from __future__ import annotations

from typing import Any

import pytest

from launcher.harness.tasks import gsm8k, humaneval, mmlu

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
    ("Answer: 16. Hmm, no: the answer is not 16, it is 18.", "18"),
    ("the answer is not 16, it is 18 (9 x 2)", "18"),
    ("The answer is not 16 but 18 (9 eggs at $2).", "18"),
    ("The answer isn't 16.\n\nThe muffins use 4 eggs: 16 - 3 - 4 = 9, 9 * 2 = 18.", "18"),
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
    # a reasoning model's thinking (the opening tag may be in the prompt): not the answer
    ("<think>\nSo the answer is 16? No, the muffins use 4 more.\n</think>\n\n"
     "She makes 9 * $2 = $18 per day.", "18"),
    ("Okay, the answer is 16... no, 9 * 2 = 18.\n</think>\nJanet makes $18 every day.", "18"),
    # no marker: the last number
    ("Janet sells 16 - 3 - 4 = 9 eggs for 9 * $2 = $18 a day.", "18"),
    ("I could not work this out.", None),
]  # fmt: skip


@pytest.mark.parametrize(("reply", "number"), GSM8K_REPLIES)
def test_gsm8k_realistic_replies(reply: str, number: str | None) -> None:
    assert gsm8k.extract_answer(reply) == number


# -- mmlu: (reply, the letter read) ---------------------------------------------------------

MMLU_REPLIES: list[tuple[str, str | None]] = [
    # self-corrections: the last explicit marker
    ("Answer: B\n\nWait, let me reconsider: the mitochondria make ATP, so the answer is C.", "C"),
    ("I think the answer is B, but looking again, the correct answer is D.", "D"),
    ("Answer: B. Hmm, no. Answer: D", "D"),
    ("Answer: B. Hmm, the answer is not B, it is C.", "C"),
    ("Answer: B\n\nOn reflection, the answer cannot be B. It is C.", "C"),
    ("Answer: C\n\nWhy not B? Because B ignores friction.", "C"),
    ("The answer is A.\n\nActually, A ignores friction. The answer is actually C.", "C"),
    # markers in any case, lowercase letters after them
    ("answer: c", "C"),
    ("My answer: b", "B"),
    ("ANSWER: D", "D"),
    ("Final answer: (a)", "A"),
    # the letter's layouts
    ("(C)", "C"),
    ("**C**", "C"),
    ("The answer is C.", "C"),
    ("**Answer: (B)**", "B"),
    ("The answer is: **B) 42**", "B"),
    ("Final answer: $\\boxed{D}$", "D"),
    ("The correct answer is **(D) 3.0 × 10^8 m/s**.", "D"),
    ("(C) is correct, because the current halves when the resistance doubles.", "C"),
    # the article "a" and option text in prose are not options
    ("A good way to see this is energy conservation, so the answer is D.", "D"),
    ("The answer is a bit subtle; I would choose option C.", "C"),
    ("Let's check each option:\nA. wrong, it ignores friction\nB. wrong units\n"
     "C. right\nD. wrong sign\n\nAnswer: C", "C"),
    ("A and B are both partly right, but C is the best answer.", "C"),
    ("Option B is the correct answer.", "B"),
    ("The answer is, therefore, B.", "B"),
    ("Answer: D\n\nThe answer is actually a bit subtle, but D holds.", "D"),
    ("The answer is B.\n\nA is wrong because it ignores friction.", "B"),
    ("A ignores friction and B has the wrong units; D has the wrong sign. So C.", "C"),
    ("A is wrong, so B must be checked: B is wrong too.", None),
    # a reasoning model's thinking: not the answer
    ("<think>\nAnswer: B? No, B ignores friction.\n</think>\n\nI'd pick C.", "C"),
    # no pick
    ("I am not sure; it could be B or C.", None),
    ("The answer is not B.", None),
]  # fmt: skip


@pytest.mark.parametrize(("reply", "letter"), MMLU_REPLIES)
def test_mmlu_realistic_replies(reply: str, letter: str | None) -> None:
    assert mmlu.extract_choice(reply) == letter


# -- humaneval: (reply, passes) --------------------------------------------------------------

ADD: dict[str, Any] = {
    "task_id": "realistic/add",
    "prompt": 'def add(x, y):\n    """Return the sum of x and y."""\n',
    "entry_point": "add",
    "canonical_solution": "    return x + y\n",
    "test": "def check(candidate):\n    assert candidate(2, 3) == 5\n"
    "    assert candidate(-1, 1) == 0\n",
}
RIGHT = "def add(x, y):\n    return x + y\n"

HUMANEVAL_REPLIES: list[tuple[str, bool]] = [
    # unfenced code after a line of prose
    ("Here is the implementation:\n" + RIGHT, True),
    ("Here is the implementation:\n\n" + RIGHT + "\nIt simply returns the sum.", True),
    ("The function should return x + y:\n" + RIGHT + "That's it!", True),
    ("You can use the operator module:\n\nimport operator\n\n\ndef add(x, y):\n"
     "    return operator.add(x, y)\n\nThis is equivalent to x + y.", True),
    ("Here's a version with a helper:\n\ndef _sum(a, b):\n    return a + b\n\n"
     "def add(x, y):\n    return _sum(x, y)\n", True),
    ("<think>\nJust the sum.\n</think>\n\n" + RIGHT, True),
    ("Implementation:\n\n    def add(x, y):\n        return x + y\n", True),
    ("As an indented block:\n\n    import operator\n\n    def add(x, y):\n"
     "        return operator.add(x, y)\n\nDone.", True),
    # a method is not the function the tests call
    ("class Solution:\n    def add(self, x, y):\n        return x + y\n", False),
    # from __future__ at the top of a reply
    ("from __future__ import annotations\n\ndef add(x: int, y: int) -> int:\n    return x + y",
     True),
    ("```python\nfrom __future__ import annotations\nimport math\n\n"
     "def add(x: float, y: float) -> float:\n    return x + y\n```", True),
    ("from __future__ import annotations\nfrom typing import Union\n\nNumber = Union[int, float]"
     "\n\n\ndef add(x: Number, y: Number) -> Number:\n    return x + y\n", True),
    # fences
    ("```python\n" + RIGHT + "```", True),
    ("Sure! Here's the completed function:\n\n```python\ndef add(x, y):\n"
     '    """Return the sum of x and y."""\n    return x + y\n```\n\nIt returns the sum.', True),
    ("```Python\n" + RIGHT + "```", True),
    ("```py\n" + RIGHT + "```", True),
    ("Sure.\n\n```\n" + RIGHT + "```", True),
    ("Here is the code:\n```python\n" + RIGHT, True),  # cut off before the closing fence
    ("```python\n" + RIGHT + "```\n\nExample:\n```python\nassert add(2, 3) == 5\n```", True),
    ("First the import:\n```python\nimport operator\n```\nThen the function:\n```python\n"
     "def add(x, y):\n    return x + y\n```", True),
    # a reasoning model's drafts before its answer
    ("<think>\nMaybe:\n```python\ndef add(x, y):\n    return x - y\n```\nNo, a sum.\n"
     "</think>\n\n```python\n" + RIGHT + "```", True),
    ("The sum, no edge cases.\n</think>\n\n" + RIGHT, True),
    # a completion model's body, and wrong code
    ("    return x + y\n", True),
    ("Here is the implementation:\n" + RIGHT.replace("+", "-"), False),
    ("```python\n" + RIGHT.replace("+", "*") + "```", False),
]  # fmt: skip


@pytest.mark.parametrize(("reply", "passes"), HUMANEVAL_REPLIES)
def test_humaneval_realistic_replies(reply: str, passes: bool) -> None:
    assert humaneval.score_response(ADD, reply).passed is passes
