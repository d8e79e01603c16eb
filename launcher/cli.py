"""Command line: thin click commands; each imports its work lazily so ``--help`` stays fast."""

from __future__ import annotations

import sys

import click

from launcher import __version__
from launcher.errors import LauncherError

CONTEXT = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(context_settings=CONTEXT)
@click.version_option(__version__, "--version", prog_name="eval-launcher")
@click.option("--debug", is_flag=True, help="Show tracebacks for errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool) -> None:
    """Run LLM evaluations in containers against an OpenAI-compatible endpoint.

    \b
    Example:
      launcher run --config examples/local_reference.yaml -o execution.output_dir=./results
    """
    ctx.obj = {"debug": debug}


@cli.command(context_settings=CONTEXT)
@click.option("-c", "--config", "config_path", type=str, help="YAML config file.")
@click.option("-o", "--override", "overrides", multiple=True, metavar="KEY=VALUE",
              help="Override a config value by dotted key (repeatable); values parse as YAML.")
@click.option("--dry-run", is_flag=True, help="Print the resolved config and plan; start nothing.")
@click.option("--host-output-dir", metavar="PATH",
              help="Host path of execution.output_dir, when the launcher runs in a container "
                   "and cannot find it by inspecting its own mounts (env "
                   "EVAL_LAUNCHER_HOST_OUTPUT_DIR).")
def run(config_path: str | None, overrides: tuple[str, ...], dry_run: bool,
        host_output_dir: str | None) -> None:
    """Run every task of a config, one evaluation container per task, and print the scores.

    \b
    Example:
      launcher run --config examples/local_reference.yaml \\
        -o evaluation.nemo_evaluator_config.config.params.limit_samples=10
    """
    from launcher.commands.run import run as do_run

    sys.exit(do_run(config_path, overrides, dry_run, host_output_dir))


@cli.group(context_settings=CONTEXT)
def harness() -> None:
    """The built-in evaluation harness (runs inside evaluation containers)."""


@harness.command("run_eval", context_settings=CONTEXT)
@click.option("--run_config", "--run-config", "run_config", required=True,
              help="Run config YAML (evaluation-container contract).")
def harness_run_eval(run_config: str) -> None:
    """Evaluate one task as the run config says and write results.yml next to it.

    \b
    Example:
      launcher harness run_eval --run_config /results/run_config.yml
    """
    from launcher.harness.run_eval import main as run_eval_main

    sys.exit(run_eval_main(run_config))


@cli.command("reference-endpoint", context_settings=CONTEXT)
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", default=8000, show_default=True, type=int, help="Port to listen on.")
@click.option("--accuracy", default=1.0, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Fraction of items answered correctly (deterministic).")
@click.option("--latency-ms", default=0.0, show_default=True, type=click.FloatRange(0.0),
              help="Delay before each answer.")
@click.option("--dataset-dir", default=None, help="Folder holding gsm8k's test.jsonl.")
def reference_endpoint(host: str, port: int, accuracy: float, latency_ms: float,
                       dataset_dir: str | None) -> None:
    """Serve a fake OpenAI-compatible endpoint that answers the built-in tasks.

    It is NOT a model: it looks up each question's known solution and answers it correctly
    on a deterministic fraction ACCURACY of the items, wrongly on the rest, so a whole
    pipeline can be checked with no GPU and no API key, and the expected score is known.

    \b
    Example:
      launcher reference-endpoint --port 8000 --accuracy 0.5 --latency-ms 20
    """
    from launcher.reference_endpoint import serve

    serve(host, port, accuracy, latency_ms, dataset_dir)


@cli.group("ls", context_settings=CONTEXT)
def ls() -> None:
    """List things the launcher knows about."""


@ls.command("tasks", context_settings=CONTEXT)
def ls_tasks() -> None:
    """List the tasks that can be run.

    \b
    Example:
      launcher ls tasks
    """
    from launcher import catalog, report

    rows = [(t.name, t.harness, t.image, "built-in", t.description)
            for t in catalog.builtin_tasks().values()]
    click.echo(report.format_table(rows, ("task", "harness", "image", "kind", "description")))


def main() -> None:
    debug = "--debug" in sys.argv[1:]
    try:
        cli.main(standalone_mode=False)
    except LauncherError as exc:
        if debug:
            raise
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        sys.exit(130)
