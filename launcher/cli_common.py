"""What the click commands share: context settings and the output-folder option."""

from __future__ import annotations

import click

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


def output_dir_option(func):
    return click.option(
        "--output-dir", metavar="DIR", default=None,
        help="Output folder holding the invocations (default: $EVAL_LAUNCHER_OUTPUT_DIR, else "
             "/results in the launcher container, else ./results).")(func)


def _output_dir(value: str | None) -> str:
    import os

    if value:
        return value
    if os.environ.get("EVAL_LAUNCHER_OUTPUT_DIR"):
        return os.environ["EVAL_LAUNCHER_OUTPUT_DIR"]
    return "/results" if os.path.exists("/.dockerenv") and os.path.isdir("/results") else (
        "./results")
