"""Command line: thin click commands; each imports its work lazily so ``--help`` stays fast."""

from __future__ import annotations

import sys

import click

from launcher import __version__, cli_results, errors
from launcher.cli_common import CONTEXT, _output_dir, output_dir_option
from launcher.errors import LauncherError


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


def config_options(func):
    """--config / --config-dir + --config-name, -o overrides, --env-file."""
    for decorator in reversed([
        click.option("-c", "--config", "config", metavar="FILE", help="YAML config file."),
        click.option("--config-dir", metavar="DIR", help="Folder of configs (with --config-name)."),
        click.option("--config-name", metavar="NAME",
                     help="Config in --config-dir (default .), with or without .yaml."),
        click.option("-o", "--override", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override a config value by dotted key (repeatable); the value is "
                          "parsed as YAML. +KEY=VALUE is accepted too."),
        click.option("--env-file", metavar="FILE",
                     help="NAME=value lines supplying host variables that are not already set "
                          "(a .env beside the config is read too)."),
    ]):
        func = decorator(func)
    return func


def _options(config, config_dir, config_name, overrides, env_file):
    from launcher.prepare import ConfigOptions

    return ConfigOptions(config, config_dir, config_name, tuple(overrides), env_file)


@cli.command(context_settings=CONTEXT)
@config_options
@click.option("-t", "--task", "tasks", multiple=True, metavar="NAME",
              help="Run only this configured task (repeatable).")
@click.option("--dry-run", is_flag=True,
              help="Print the resolved config, the plan and the scripts; write and start nothing.")
@click.option("--host-output-dir", metavar="PATH",
              help="Host path of execution.output_dir, when the launcher runs in a container "
                   "and cannot find it by inspecting its own mounts (env "
                   "EVAL_LAUNCHER_HOST_OUTPUT_DIR).")
@click.option("-d", "--detach", is_flag=True,
              help="Return at once; a supervisor container runs the jobs. The invocation id is "
                   "the last line of stdout.")
@click.option("--skip-endpoint-check", is_flag=True,
              help="Do not probe the endpoint before starting the tasks.")
def run(config, config_dir, config_name, overrides, env_file, tasks: tuple[str, ...],
        dry_run: bool, host_output_dir: str | None, detach: bool,
        skip_endpoint_check: bool) -> None:
    """Run every task of a config, one evaluation container per task, and print the scores.

    \b
    Examples:
      launcher run --config examples/local_reference.yaml
      launcher run --config-dir examples --config-name hosted_endpoint -t gsm8k \\
        -o evaluation.nemo_evaluator_config.config.params.limit_samples=10
      launcher run --config examples/hosted_endpoint.yaml --dry-run
    """
    from launcher.commands.run import run as do_run

    options = _options(config, config_dir, config_name, overrides, env_file)
    sys.exit(do_run(options, tasks, dry_run, host_output_dir, detach,
                    probe=not skip_endpoint_check))


@cli.group("config", context_settings=CONTEXT)
def config_group() -> None:
    """Check and show configs (for CI linting).

    \b
    Examples:
      launcher config validate examples/local_reference.yaml
      launcher config show -c examples/parallel.yaml -o execution.max_parallel=4
    """


@config_group.command("validate", context_settings=CONTEXT)
@click.argument("file", required=False)
@config_options
def config_validate(file, config, config_dir, config_name, overrides, env_file) -> None:
    """Validate a config: schema, tasks, env vars named; exit 0 if it would run, else 2.

    \b
    Example:
      launcher config validate examples/hosted_endpoint.yaml
    """
    from launcher.prepare import prepare

    prepared = prepare(_options(file or config, config_dir, config_name, overrides, env_file))
    tasks = ", ".join(job.task for job in prepared.invocation.jobs)
    click.echo(f"ok: {prepared.loaded.source} ({len(prepared.invocation.jobs)} tasks: {tasks})")


@config_group.command("show", context_settings=CONTEXT)
@click.argument("file", required=False)
@config_options
def config_show(file, config, config_dir, config_name, overrides, env_file) -> None:
    """Print the resolved config (defaults, overrides and ${...} applied; literals redacted).

    \b
    Example:
      launcher config show examples/local_reference.yaml -o execution.mode=parallel
    """
    from launcher.commands.dryrun import dump_yaml
    from launcher.prepare import load
    from launcher.store import redact

    loaded = load(_options(file or config, config_dir, config_name, overrides, env_file))
    click.echo(dump_yaml(redact(loaded.raw)))


@cli.command(context_settings=CONTEXT)
@click.argument("invocation", required=False)
@output_dir_option
@click.option("--json", "as_json", is_flag=True, help="A JSON array, one object per job.")
def status(invocation: str | None, output_dir: str | None, as_json: bool) -> None:
    """Show the jobs of an invocation (default: the newest): state, exit code, duration, score.

    \b
    Examples:
      launcher status 3f9a0c2e --output-dir ./results
      launcher status 3f9a0c2e7b1d4a55.1 --json
    """
    from launcher.commands.manage import status as do

    sys.exit(do(_output_dir(output_dir), invocation, as_json))


@cli.command(context_settings=CONTEXT)
@click.argument("ident")
@output_dir_option
@click.option("-f", "--follow", is_flag=True, help="Keep printing until the job ends.")
def logs(ident: str, output_dir: str | None, follow: bool) -> None:
    """Print a job's container log (all jobs of an invocation, prefixed, without -f).

    \b
    Example:
      launcher logs 3f9a0c2e.0 -f
    """
    from launcher.commands.manage import logs as do

    sys.exit(do(_output_dir(output_dir), ident, follow))


@cli.command(context_settings=CONTEXT)
@click.argument("ident")
@output_dir_option
def kill(ident: str, output_dir: str | None) -> None:
    """Stop an invocation's (or one job's) containers, found by label, and mark them killed.

    \b
    Example:
      launcher kill 3f9a0c2e
    """
    from launcher.commands.manage import kill as do

    sys.exit(do(_output_dir(output_dir), ident))


@cli.command(context_settings=CONTEXT)
@click.argument("ident")
@output_dir_option
@click.option("--config", "show_config", is_flag=True,
              help="Print the config it ran with, as recorded (no secret values).")
@click.option("--artifacts", "show_artifacts", is_flag=True,
              help="List each job's artifacts folder and its files.")
@click.option("--logs", "show_logs", is_flag=True,
              help="List each job's logs folder and its files.")
@click.option("--copy-artifacts", metavar="DIR",
              help="Copy each job's artifacts to DIR/<job id>/artifacts.")
@click.option("--copy-logs", metavar="DIR", help="Copy each job's logs to DIR/<job id>/logs.")
def info(ident: str, output_dir: str | None, show_config: bool, show_artifacts: bool,
         show_logs: bool, copy_artifacts: str | None, copy_logs: str | None) -> None:
    """Show where an invocation's files are, its jobs, rerun scripts and env var names
    (IDENT: an invocation, or one job as <id>.<index>).

    \b
    Examples:
      launcher info 3f9a0c2e
      launcher info 3f9a0c2e --config
      launcher info 3f9a0c2e.1 --copy-artifacts ./collected
    """
    if show_config or show_artifacts or show_logs or copy_artifacts or copy_logs:
        from launcher.commands.manage import info_parts

        sys.exit(info_parts(_output_dir(output_dir), ident, show_config, show_artifacts,
                            show_logs, copy_artifacts, copy_logs))
    from launcher.commands.manage import info as do

    sys.exit(do(_output_dir(output_dir), ident))


@cli.command(context_settings=CONTEXT)
@click.argument("ident")
@output_dir_option
@click.option("-d", "--detach", is_flag=True,
              help="Hand the jobs to a supervisor container and return at once.")
def resume(ident: str, output_dir: str | None, detach: bool) -> None:
    """Rerun the jobs of an invocation that did not succeed, in the same folders.

    Samples already answered are not requested again (the harness's response cache).

    \b
    Examples:
      launcher resume 3f9a0c2e
      launcher resume 3f9a0c2e --detach
    """
    from launcher.commands.manage import resume as do

    sys.exit(do(_output_dir(output_dir), ident, detach))


@cli.command(hidden=True, context_settings=CONTEXT)
@click.argument("invocation_dir")
@click.option("--only", default=None, help="Comma-separated job ids (default: all).")
@click.option("--env-stdin", is_flag=True, help="Read the env values as one line on stdin.")
def supervise(invocation_dir: str, only: str | None, env_stdin: bool) -> None:
    """Run a detached invocation's jobs (inside the supervisor container)."""
    from launcher.commands.manage import supervise as do

    sys.exit(do(invocation_dir, set(only.split(",")) if only else None, env_stdin))


@cli.command("probe-endpoint", context_settings=CONTEXT)
@click.option("--url", required=True, help="Chat or completions URL of the endpoint.")
@click.option("--model-id", required=True, help="Model the endpoint must serve.")
@click.option("--api-key-name", default=None, help="Env var holding the API key.")
@click.option("--api-key-file", default=None, help="File holding the API key.")
@click.option("--timeout", default=30.0, show_default=True, type=float,
              help="Seconds to wait for the endpoint to come up.")
@click.option("--health-url", default=None, help="First wait for 200 from this URL.")
@click.option("--interval", default=1.0, show_default=True, type=float,
              help="Seconds between attempts.")
def probe_endpoint(url: str, model_id: str, api_key_name: str | None,
                   api_key_file: str | None, timeout: float, health_url: str | None,
                   interval: float) -> None:
    """Check that an endpoint is up and serves the model (exit 0 ready, 2 unknown model,
    3 unreachable). `run` does this once before any task starts.

    \b
    Example:
      launcher probe-endpoint --url http://localhost:8000/v1/chat/completions --model-id m
    """
    from launcher.probe import probe

    sys.exit(probe(url, model_id, api_key_name, timeout, health_url, interval, api_key_file))


@cli.group(context_settings=CONTEXT)
def harness() -> None:
    """The built-in evaluation harness (runs inside evaluation containers).

    \b
    Example:
      launcher harness run_eval --run_config /results/run_config.yml
    """


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
@click.option("--dataset", "datasets", multiple=True, metavar="FILE.jsonl",
              help="A custom task's JSONL file whose questions it should answer (repeatable).")
@click.option("--fail-rate", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
              help="Fraction of completion requests that fail (random per request).")
@click.option("--fault", "faults", multiple=True, metavar="KIND[,KIND...]",
              help="How a failing request fails: 429, 500, timeout, reset or garbage; repeatable"
                   " or comma-separated, each failure picks one at random.  [default: 429,500]")
@click.option("--seed", default=None, type=int, help="Seed of the fault draws (reproducible).")
@click.option("--retry-after", default=0.0, show_default=True, type=click.FloatRange(0.0),
              help="Retry-After seconds sent with a 429.")
@click.option("--hang-s", default=600.0, show_default=True, type=click.FloatRange(0.0),
              help="How long a 'timeout' fault holds the connection before closing it.")
@click.option("--api-key-env", default=None, metavar="NAME",
              help="Require 'Authorization: Bearer $NAME' (401 otherwise).")
def reference_endpoint(host: str, port: int, accuracy: float, latency_ms: float,
                       dataset_dir: str | None, datasets: tuple[str, ...], fail_rate: float,
                       faults: tuple[str, ...], seed: int | None, retry_after: float,
                       hang_s: float, api_key_env: str | None) -> None:
    """Serve a fake OpenAI-compatible endpoint that answers the built-in tasks.

    It is NOT a model: it looks up each question's known solution and answers it correctly
    on a deterministic fraction ACCURACY of the items, wrongly on the rest, so a whole
    pipeline can be checked with no GPU and no API key, and the expected score is known.
    It knows HumanEval, GSM8K (from --dataset-dir) and custom-task JSONL files (--dataset);
    a prompt it does not know gets HTTP 422 naming the data it lacks, never a guess.

    With --fail-rate it also fails that fraction of completion requests, to test retrying
    clients: 429 (with Retry-After), 500, timeout (never answers), reset (TCP RST, no
    answer) or garbage (HTTP 200, body not JSON). GET /stats counts requests by outcome and
    ok answers per item; POST /stats/reset zeroes the counts.

    \b
    Examples:
      launcher reference-endpoint --port 8000 --accuracy 0.5 --latency-ms 20
      launcher reference-endpoint --dataset-dir ./gsm8k \\
        --dataset examples/data/custom/questions.jsonl
      launcher reference-endpoint --fail-rate 0.2 --fault 429,reset --seed 1
    """
    from launcher.errors import ConfigError
    from launcher.testing.faults import Faults
    from launcher.testing.reference_endpoint import key_from, serve

    try:  # before the data is loaded; click already checked the numbers' ranges
        plan = Faults(fail_rate, faults, seed, retry_after, hang_s)
    except ConfigError as e:
        raise click.BadParameter(e.message, param_hint="'--fault'") from None
    serve(host, port, accuracy, latency_ms, dataset_dir, faults=plan, custom=datasets,
          api_key=key_from(api_key_env))


@cli.group("datasets", context_settings=CONTEXT)
def datasets_group() -> None:
    """Benchmark data: fill the cache once so that later runs work offline.

    \b
    Example:
      launcher datasets fetch gsm8k
    """


@datasets_group.command("fetch", context_settings=CONTEXT)
@click.argument("name")
@output_dir_option
def datasets_fetch(name: str, output_dir: str | None) -> None:
    """Download NAME's data once into the dataset cache that `run` mounts into evaluation
    containers ($EVAL_LAUNCHER_CACHE; else, in the launcher container, <output dir>/.cache;
    else ~/.cache/eval-launcher), checked against its pinned sha256; print its path. A cached
    copy is verified and reused without network; GSM8K_DATA_DIR, if set, is used instead.
    Exit 0, or 3 when it can be neither found nor downloaded.

    \b
    Example:
      launcher datasets fetch gsm8k
    """
    from launcher.commands.datasets import fetch

    sys.exit(fetch(name, _output_dir(output_dir)))


@cli.group("ls", context_settings=CONTEXT)
def ls() -> None:
    """List things the launcher knows about: tasks, and runs in the output folder.

    \b
    Examples:
      launcher ls tasks
      launcher ls runs --output-dir ./results
    """


@ls.command("runs", context_settings=CONTEXT)
@output_dir_option
@click.option("--json", "as_json", is_flag=True, help="A JSON array, one object per run.")
@click.option("-n", "--limit", default=20, show_default=True, help="How many, newest first.")
@click.option("--since", metavar="WHEN", default=None,
              help="Only runs started since: Nd or Nh ago (2d, 3h), or an ISO date or "
                   "date-time (2026-12-01, 2026-12-01T12:00:00).")
def ls_runs(output_dir: str | None, as_json: bool, limit: int, since: str | None) -> None:
    """List recent invocations in the output folder: id, start, state, tasks, model.

    \b
    Examples:
      launcher ls runs --output-dir ./results --json
      launcher ls runs --since 2d
    """
    from launcher.commands.manage import ls_runs as do

    sys.exit(do(_output_dir(output_dir), as_json, limit, since))


@ls.command("tasks", context_settings=CONTEXT)
@click.option("--json", "as_json", is_flag=True, help="A JSON array, one object per task.")
@click.option("--harness", "harness_name", metavar="NAME", default=None,
              help="Only the tasks of this harness.")
def ls_tasks(as_json: bool, harness_name: str | None) -> None:
    """List the tasks that can be run: built-in ones (our image) and the external catalog.

    Name a task in a config by its short name when only one harness has it, else as
    HARNESS.TASK. Its endpoint type must match target.api_endpoint.type.

    \b
    Examples:
      launcher ls tasks
      launcher ls tasks --harness simple_evals
      launcher ls tasks --json
    """
    import json

    from launcher import catalog, report

    tasks = catalog.all_tasks()
    if harness_name is not None:
        tasks = [t for t in tasks if t.harness == harness_name]
        if not tasks:
            close = catalog.closest(harness_name, catalog.harnesses())
            hint = (f"did you mean {', '.join(repr(c) for c in close)}?" if close
                    else f"known: {', '.join(catalog.harnesses())}")
            raise LauncherError(f"--harness: unknown harness '{harness_name}'; {hint}")
    if as_json:
        click.echo(json.dumps([t.to_json() for t in tasks], indent=2))
        return
    rows = [(t.name, t.harness, ",".join(t.endpoint_types), "built-in" if t.builtin
             else "external", t.image or "- (pin a container)") for t in tasks]
    click.echo(report.format_table(rows, ("task", "harness", "endpoint", "kind", "image")))


for _command in (cli_results.compare, cli_results.gate, cli_results.export,
                 cli_results.report):
    cli.add_command(_command)


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
    except OSError as exc:
        problem = errors.from_os_error(exc)
        if problem is None or debug:
            raise
        click.echo(f"error: {problem.message}", err=True)
        sys.exit(problem.exit_code)
