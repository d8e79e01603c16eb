"""`launcher report ID... -o FILE.html`: one self-contained HTML page of finished runs (scores,
a plot across invocations, request stats, a sample browser), written atomically. Reads only
the output folder (launcher/report_data.py); the page is launcher/report_html.py."""

from __future__ import annotations

import os
from collections.abc import Sequence

from launcher import __version__, report_data, report_html, runs, safe_fs
from launcher.errors import ConfigError, EnvironmentProblem
from launcher.record import now_z

DEFAULT_NAME = "report.html"


def report(output_dir: str, idents: Sequence[str], out: str | None, max_samples: int) -> int:
    if max_samples < 0:
        raise ConfigError(f"--max-samples {max_samples}: give a count >= 0 (0 embeds no "
                          "samples)")
    selected = [runs.find(output_dir, ident) for ident in idents]  # all before writing
    path = out or os.path.join(output_dir, DEFAULT_NAME)
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"-o {path}: folder {folder} does not exist: create it, or write "
                          "the report elsewhere")
    data = report_data.gather(selected, max_samples, now_z(), __version__)
    page = report_html.render(data)
    try:
        safe_fs.write_atomic(path, page, 0o644)
    except OSError as e:
        raise EnvironmentProblem(f"cannot write {path}: {e.strerror or e}; choose another "
                                 "-o FILE") from None
    jobs = [j for r in data.runs for j in r.jobs]
    shown = sum(len(j.samples) for j in jobs)
    total = sum(j.samples_total for j in jobs)
    capped = f" (of {total:,}; --max-samples {max_samples})" if shown < total else ""
    print(f"wrote {path}: {len(data.runs)} invocation(s), {len(jobs)} job(s), "
          f"{shown:,} samples{capped}")
    return 0
