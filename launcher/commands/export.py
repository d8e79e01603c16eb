"""`launcher export ID... --dest local|mlflow`: the scores of invocations (or jobs) to a local
JSON or CSV file, upserted by job id, or to an MLflow tracking server, one run per job found
again by its job id tag (launcher.export_mlflow). W&B and gsheets are not built yet."""

from __future__ import annotations

import os
from collections.abc import Sequence

from launcher import export_local, runs
from launcher.errors import ConfigError, EnvironmentProblem

DESTS = ("local", "mlflow", "wandb", "gsheets")
LOCAL_KEYS = ("output_dir", "format", "filename")
# The reference's keys of export.mlflow; tags.KEY=VALUE adds one tag (repeatable).
MLFLOW_KEYS = ("tracking_uri", "experiment_name", "description", "tags", "log_artifacts",
               "log_logs")
KEYS = {"local": LOCAL_KEYS, "mlflow": MLFLOW_KEYS}
NESTED = {"mlflow": ("tags",)}  # keys that take a sub-key: export.mlflow.tags.team=x


def options(dest: str, overrides: Sequence[str]) -> dict[str, str]:
    """``-o export.<dest>.<key>=value`` lines as {key: value}, for ``dest`` only; a nested key
    (``export.mlflow.tags.team=x``) comes back as ``tags.team``."""
    keys = KEYS.get(dest, ())
    nested = NESTED.get(dest, ())
    found: dict[str, str] = {}
    for line in overrides:
        key, eq, value = line.lstrip("+").partition("=")
        parts = key.strip().split(".")
        if not eq or len(parts) < 3 or parts[0] != "export":
            raise ConfigError(f"-o {line}: expected export.{dest}.KEY=VALUE (keys: "
                              f"{', '.join(keys)})")
        if parts[1] != dest:
            raise ConfigError(f"-o {line}: applies to --dest {parts[1]}, not --dest {dest}")
        if parts[2] not in keys:
            raise ConfigError(f"-o {line}: unknown key '{parts[2]}' of export.{dest}; known: "
                              f"{', '.join(keys)}")
        if parts[2] in nested:
            if len(parts) < 4 or not all(parts[3:]):
                raise ConfigError(f"-o {line}: expected export.{dest}.{parts[2]}.NAME=VALUE")
        elif len(parts) != 3:
            raise ConfigError(f"-o {line}: export.{dest}.{parts[2]} takes a value, not "
                              "sub-keys")
        found[".".join(parts[2:])] = value.strip()
    return found


def export(output_dir: str, idents: Sequence[str], dest: str, overrides: Sequence[str]) -> int:
    if dest not in DESTS:
        raise ConfigError(f"--dest {dest} is unknown: use --dest local (JSON or CSV files) or "
                          "--dest mlflow")
    if dest not in KEYS:
        raise ConfigError(f"--dest {dest} is not built yet; export to files with --dest local "
                          "(-o export.local.format=json|csv) or to MLflow with --dest mlflow")
    opts = options(dest, overrides)
    if dest == "mlflow":
        from launcher import export_mlflow  # imports mlflow itself only when it exports

        return export_mlflow.export(output_dir, idents, opts)
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
