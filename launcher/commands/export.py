"""`launcher export ID... --dest local|mlflow|wandb`: the scores of invocations (or jobs) to a
local JSON or CSV file, upserted by job id; to an MLflow tracking server, one run per job found
again by its job id tag (launcher.export_mlflow); or to W&B, online or offline, one run per job
or per invocation under an id derived from it (launcher.export_wandb). gsheets is not built
yet. Options: the ``export.<dest>`` block of the run's config (as recorded), then ``-o``
lines, which win."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

from launcher import export_local, exportopts, record, runs
from launcher.errors import ConfigError, EnvironmentProblem

# The keys per destination and their parsing live in launcher.exportopts (shared with
# auto-export); the names stay importable from here.
DESTS, KEYS, NESTED = exportopts.DESTS, exportopts.KEYS, exportopts.NESTED
options = exportopts.options


def export(output_dir: str, idents: Sequence[str], dest: str, overrides: Sequence[str]) -> int:
    if dest not in KEYS:
        raise ConfigError(f"--dest {dest}: {exportopts.unknown_dest(dest)}")
    opts = {**recorded(output_dir, idents, dest), **options(dest, overrides)}
    return export_with(output_dir, idents, dest, opts)


def recorded(output_dir: str, idents: Sequence[str], dest: str) -> dict[str, str]:
    """The ``export.<dest>`` block of the first run's recorded config ({} when none)."""
    if not idents:
        return {}
    run, _ = runs.find(output_dir, idents[0])
    section = (run.record.config or {}).get("export") or {}
    if not isinstance(section, dict) or section.get(dest) is None:
        return {}
    return exportopts.from_section(dest, section[dest], os.path.join(run.dir, record.RECORD))


def export_with(output_dir: str, idents: Sequence[str], dest: str,
                opts: Mapping[str, str]) -> int:
    """Export with options already parsed (``export`` and auto-export)."""
    if dest == "mlflow":
        from launcher import export_mlflow  # imports mlflow itself only when it exports

        return export_mlflow.export(output_dir, idents, opts)
    if dest == "wandb":
        from launcher import export_wandb  # imports wandb itself only when it exports

        return export_wandb.export(output_dir, idents, opts)
    fmt = opts.get("format", "json")
    if fmt not in export_local.FORMATS:
        raise ConfigError(f"export.local.format={fmt}: use json or csv")
    folder = opts.get("output_dir") or output_dir
    if not os.path.isdir(folder):
        raise ConfigError(f"export.local.output_dir {folder} does not exist: create it, or "
                          "pass -o export.local.output_dir=DIR")
    filename = opts.get("filename") or f"export.{fmt}"
    if "/" in filename or filename in (".", ".."):
        raise ConfigError(f"export.local.filename={filename}: a file name, not a path (put "
                          "the folder in export.local.output_dir)")
    path = os.path.join(folder, filename)
    new: list[dict[str, object]] = []
    job_ids: list[str] = []
    empty: list[str] = []
    for ident in idents:  # all resolved before anything is written
        run, index = runs.find(output_dir, ident)
        found, no_scores = export_local.rows(run, index)
        new += found
        empty += no_scores
        job_ids += sorted({str(r["job_id"]) for r in found})
    if not new:
        raise ConfigError(f"nothing to export: job(s) {', '.join(empty) or '-'} wrote no "
                          "results.yml (see `launcher status`); export finished runs")
    merged, replaced = export_local.upsert(export_local.read(path, fmt), new, job_ids)
    try:
        export_local.write(path, merged, fmt)
    except OSError as e:
        raise EnvironmentProblem(f"cannot write {path}: {e.strerror or e}; choose another "
                                 "export.local.output_dir") from None
    print(f"exported {len(new)} rows of {len(set(job_ids))} job(s) to {path} ({replaced} "
          f"earlier rows of these jobs replaced, {len(merged)} rows in the file)")
    for job_id in empty:
        print(f"skipped job {job_id}: no results.yml")
    return 0
