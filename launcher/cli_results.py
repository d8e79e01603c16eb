"""Commands on the results of finished runs: compare, gate, export, report (click wiring only;
the work is in launcher.commands.*, imported lazily)."""

from __future__ import annotations

import sys

import click

from launcher.cli_common import CONTEXT, _output_dir, output_dir_option


@click.command(context_settings=CONTEXT)
@click.argument("base")
@click.argument("candidate")
@output_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
def compare(base: str, candidate: str, output_dir: str | None, as_json: bool) -> None:
    """Compare two invocations (or jobs) task by task: scores with stderr, the difference,
    and a paired item-by-item McNemar test on samples.jsonl with a verdict per task.

    \b
    Example:
      launcher compare 3f9a0c2e 7b1d4a55 --output-dir ./results
    """
    from launcher.commands.compare import compare as do

    sys.exit(do(_output_dir(output_dir), base, candidate, as_json))


@click.command(context_settings=CONTEXT)
@click.argument("candidate")
@click.option("--baseline", metavar="ID", default=None,
              help="Invocation (or job) to measure drops against (needed by max_drop).")
@click.option("--min-score", type=float, default=None, metavar="X",
              help="Every task's headline score must be >= X (overrides the policy default).")
@click.option("--max-drop", type=float, default=None, metavar="X",
              help="No task may score more than X below the baseline (overrides the policy "
                   "default).")
@click.option("--policy", "policy_file", metavar="FILE", default=None,
              help="YAML policy: default and per-task min_score, max_drop, severity.")
@click.option("--junit", metavar="FILE", default=None,
              help="Write JUnit XML: one test case per task and threshold.")
@click.option("--json", "as_json", is_flag=True, help="Print the verdict as JSON.")
@output_dir_option
def gate(candidate: str, baseline: str | None, min_score: float | None,
         max_drop: float | None, policy_file: str | None, junit: str | None, as_json: bool,
         output_dir: str | None) -> None:
    """Check a run against thresholds: exit 0 GO, 1 NO-GO (a critical threshold is
    violated), 4 INCONCLUSIVE (a critical threshold could not be checked); 2 and 3 are
    config and environment errors as everywhere. Appends a Markdown table to
    $GITHUB_STEP_SUMMARY when it is set.

    \b
    Examples:
      launcher gate 7b1d4a55 --min-score 0.7
      launcher gate 7b1d4a55 --baseline 3f9a0c2e --max-drop 0.05 --junit gate.xml
      launcher gate 7b1d4a55 --baseline 3f9a0c2e --policy examples/gate/policy.yaml --json
    """
    from launcher.commands.gate import gate as do

    sys.exit(do(_output_dir(output_dir), candidate, baseline, min_score, max_drop,
                policy_file, junit, as_json))


@click.command(context_settings=CONTEXT)
@click.argument("idents", nargs=-1, required=True, metavar="ID...")
@click.option("--dest", default="local", show_default=True,
              help="Where to: local (JSON or CSV file), mlflow (one run per job) or wandb "
                   "(one run per job or per invocation; offline with WANDB_MODE=offline). "
                   "gsheets: not built yet.")
@click.option("-o", "--override", "overrides", multiple=True, metavar="export.DEST.KEY=VALUE",
              help="local: output_dir (default: the output folder), format (json|csv, default "
                   "json), filename (default export.<format>). mlflow: tracking_uri, "
                   "experiment_name, description, tags.NAME, log_artifacts (default true), "
                   "log_logs (default false). wandb: entity, project, name, group, job_type, "
                   "tags (a,b), description, log_mode (per_task|multi_task), log_metrics "
                   "(a,b), log_artifacts, log_logs, extra_metadata.NAME, mode "
                   "(online|offline), dir. The run's config's export.DEST block applies "
                   "first. Repeatable.")
@click.option("--format", "fmt", type=click.Choice(["json", "csv"]), default=None,
              help="--dest local: the file's format (the same as -o export.local.format=).")
@click.option("--output-filename", metavar="NAME", default=None,
              help="--dest local: the file's name (-o export.local.filename=).")
@output_dir_option
def export(idents: tuple[str, ...], dest: str, overrides: tuple[str, ...], fmt: str | None,
           output_filename: str | None, output_dir: str | None) -> None:
    """Export the scores of invocations (or jobs) as rows: invocation, job, task, metric,
    score, value, stderr, count, model, timestamp. Rows are upserted by job id: exporting
    again replaces a job's rows, never duplicates them. --dest mlflow makes one MLflow run
    per job (found again by its job id tag: exporting twice updates it); --dest wandb one W&B
    run per job (log_mode per_task) or per invocation (multi_task), under an id derived from
    the job or invocation id, so exporting twice resumes the run instead of adding one.

    \b
    Examples:
      launcher export 3f9a0c2e --dest local -o export.local.format=csv
      launcher export 3f9a0c2e 7b1d4a55 -o export.local.output_dir=./exports
      launcher export 3f9a0c2e --dest mlflow -o export.mlflow.tracking_uri=http://127.0.0.1:5000
      WANDB_MODE=offline launcher export 3f9a0c2e --dest wandb -o export.wandb.project=evals
      launcher export 3f9a0c2e --format csv --output-filename scores.csv
    """
    from launcher.commands.export import export as do

    if dest != "local" and (fmt or output_filename):
        from launcher.errors import ConfigError

        flag = "--format" if fmt else "--output-filename"
        raise ConfigError(f"{flag} applies to --dest local (a file), not --dest {dest}: "
                          f"drop it")
    shorthand = [f"export.local.{key}={value}" for key, value in
                 (("format", fmt), ("filename", output_filename)) if value is not None]
    sys.exit(do(_output_dir(output_dir), idents, dest, (*shorthand, *overrides)))


@click.command(context_settings=CONTEXT)
@click.argument("idents", nargs=-1, required=True, metavar="ID...")
@click.option("-o", "--output", "out", metavar="FILE.html", default=None,
              help="Where to write the page (default: report.html in the output folder).")
@click.option("--max-samples", type=int, default=2000, show_default=True,
              metavar="N", help="Samples embedded per job (all are counted; 0: none).")
@output_dir_option
def report(idents: tuple[str, ...], out: str | None, max_samples: int,
           output_dir: str | None) -> None:
    """Write one self-contained HTML page (no network needed to open it) for invocations (or
    jobs): scores with stderr per task, a plot of the headline scores across invocations,
    request stats (latency percentiles, tokens, errors) and a sample browser (prompt, reply,
    extracted answer, correct; filter to failures, by task, by invocation).

    \b
    Examples:
      launcher report 3f9a0c2e -o report.html
      launcher report 3f9a0c2e 7b1d4a55 --output-dir ./results -o compare.html
    """
    from launcher.commands.report import report as do

    sys.exit(do(_output_dir(output_dir), idents, out, max_samples))
