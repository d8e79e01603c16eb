"""Synthetic GSM8K-shaped problems the project writes itself (for tests, demos and benchmarks).

They have GSM8K's file layout and answer format (``{"question", "answer"}`` JSONL lines whose
answer ends ``#### <number>``), so the harness's gsm8k task and the reference endpoint read them
exactly as they read the real test split. They are not GSM8K: scores on them say nothing about a
model, only that the pipeline works.

    python -m launcher.testing.synthetic DIR [N]   # writes DIR/test.jsonl
"""

from __future__ import annotations

import functools
import json
import random
import sys
import tempfile
from pathlib import Path
from typing import Any

GSM8K_TEST_ROWS = 1319  # as many as GSM8K's test split
_NAMES = ("Ava", "Ben", "Chen", "Dana", "Eli", "Fatima", "Goran", "Hana", "Ivo", "Jules")
_THINGS = (
    ("baker", "trays", "rolls"), ("farmer", "crates", "apples"), ("teacher", "boxes", "pencils"),
    ("librarian", "shelves", "books"), ("gardener", "rows", "tulips"),
    ("grocer", "bags", "oranges"), ("tailor", "packs", "buttons"), ("potter", "kilns", "bowls"),
)


def gsm8k_rows(n: int = 200, seed: int = 8) -> list[dict[str, Any]]:
    """``n`` distinct problems, the same for the same ``n`` and ``seed``."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        name = _NAMES[i % len(_NAMES)]
        job, holders, things = _THINGS[(i // len(_NAMES)) % len(_THINGS)]
        groups, each = rng.randint(3, 40), rng.randint(2, 25)
        total = groups * each
        sold = rng.randint(1, total - 1)
        left = total - sold
        question = (
            f"Problem {i + 1}: {name} the {job} has {groups} {holders} with {each} {things} in"
            f" each of them. {name} gives away {sold} {things} to the neighbours. How many"
            f" {things} does {name} have left?"
        )
        answer = (
            f"{name} starts with {groups} * {each} = <<{groups}*{each}={total}>>{total} {things}.\n"
            f"After giving {sold} away, {name} has {total} - {sold} = <<{total}-{sold}={left}>>"
            f"{left} {things}.\n#### {left}"
        )
        rows.append({"question": question, "answer": answer})
    return rows


def write_gsm8k(folder: Path, n: int = 200, seed: int = 8) -> Path:
    """Write ``folder/test.jsonl`` (the layout ``--dataset-dir``/``dataset_dir`` expect)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "test.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in gsm8k_rows(n, seed)), "utf-8")
    return path


@functools.cache
def gsm8k_dir(n: int = GSM8K_TEST_ROWS) -> Path:
    """A temporary folder holding ``n`` synthetic problems as ``test.jsonl`` (once a process)."""
    parent = Path(tempfile.mkdtemp(prefix="eval-launcher-data-"))
    parent.chmod(0o755)  # read by containers running as other users
    folder = parent / "gsm8k"  # so <parent>/gsm8k/test.jsonl works as well
    write_gsm8k(folder, n)
    return folder


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python -m launcher.testing.synthetic DIR [N]")
    print(write_gsm8k(Path(sys.argv[1]), int(sys.argv[2]) if len(sys.argv) == 3 else 200))
