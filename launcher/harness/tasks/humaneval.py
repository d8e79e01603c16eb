"""HumanEval (164 Python problems), scored pass@1 by running each problem's tests in the sandbox."""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from launcher.harness import sandbox
from launcher.harness.datasets import load_humaneval
from launcher.harness.tasks.base import Item, Message, Scored

TIMEOUT = 10.0
CPU_SECONDS = 10
MEMORY_BYTES = 2 * sandbox.GIB

INSTRUCTION = (
    "Complete the following Python function. Reply with the complete function (signature"
    " included) in a single ```python code block.\n\n"
)
_FENCE = re.compile(r"```([^\n`]*)\n(.*?)(?:```|\Z)", re.DOTALL)


def build_messages(problem: dict[str, Any]) -> list[Message]:
    prompt = problem["prompt"]
    newline = "" if prompt.endswith("\n") else "\n"
    return [{"role": "user", "content": f"{INSTRUCTION}```python\n{prompt}{newline}```"}]


def extract_code(response: str) -> str:
    """The first ```python block, else the first ``` block, else the whole text."""
    blocks = _FENCE.findall(response)
    for lang, body in blocks:
        if lang.strip().lower() in ("python", "py", "python3"):
            return body
    if blocks:
        return blocks[0][1]
    return response


def build_program(problem: dict[str, Any], code: str) -> str:
    """Prompt + completion (a full function overrides the prompt's stub) + tests + check()."""
    entry = problem["entry_point"]
    if re.search(rf"(?m)^\s*def\s+{re.escape(entry)}\s*\(", code):
        program = problem["prompt"] + "\n" + code
    else:
        program = problem["prompt"] + code
    return program + "\n" + problem["test"] + f"\ncheck({entry})\n"


def score_response(problem: dict[str, Any], response: str) -> sandbox.Outcome:
    program = build_program(problem, extract_code(response))
    return sandbox.run_program(
        program, timeout=TIMEOUT, cpu_seconds=CPU_SECONDS, memory_bytes=MEMORY_BYTES
    )


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))  # respects the container's cpuset
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class HumanEvalTask:
    name = "humaneval"
    metric = "pass@1"

    def load(self, limit: int | None, dataset_dir: str | None = None) -> list[Item]:
        problems = load_humaneval()[:limit]
        return [
            Item(
                id=p["task_id"],
                messages=build_messages(p),
                target=p["canonical_solution"],
                data=p,
            )
            for p in problems
        ]

    def score(self, items: Sequence[Item], responses: Sequence[str]) -> list[Scored]:
        workers = _cpus()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sandbox") as pool:
            outcomes = list(pool.map(score_response, [i.data for i in items], responses))
        return [
            Scored(int(o.passed), {"reason": o.reason, "seconds": round(o.seconds, 3)})
            for o in outcomes
        ]
