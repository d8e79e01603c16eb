"""Export to an MLflow tracking server: one MLflow run per job, found again by the tag
``eval_launcher.job_id`` so exporting twice updates the run instead of adding one. Params:
task, model id, endpoint url and the task's config params; metrics: every score (and its
stderr as ``<name>_stderr``); tags: invocation, job, task, launcher version, the config's
user_provided_metadata and the user's tags; artifacts: results.yml, samples.jsonl and (with
log_logs) the job's logs.

mlflow is imported here only, and only when exporting. Secrets (MLFLOW_TRACKING_TOKEN,
MLFLOW_TRACKING_USERNAME/PASSWORD, ...) are read from the environment by mlflow itself; this
module never writes or prints them. Nothing in the invocation folder is written."""

from __future__ import annotations

import os
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from typing import Any

from launcher import __version__, exportopts, outcomes
from launcher.errors import ConfigError, EnvironmentProblem
from launcher.runs import Run

JOB_TAG = "eval_launcher.job_id"
DEFAULT_EXPERIMENT = "eval-launcher"
PROBE_TIMEOUT = 3.0
# For the export's calls: mlflow's own HTTP retries capped (exponential backoff, minutes by
# default), and no "View run ... at" line per run on stdout (we print one summary line). A
# value set by the user wins.
HTTP_ENV = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
            "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
            "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true"}
PARAM_MAX, TAG_MAX = 500, 5000
_BAD = re.compile(r"[^A-Za-z0-9_\-. /]")
INSTALL = "pip install 'eval-launcher[mlflow]'"


def sanitize(name: str) -> str:
    """A metric/param/tag key MLflow accepts (letters, digits, _ - . space /; 250 chars)."""
    return _BAD.sub("_", name).strip("/ ")[:250] or "_"


def shown_uri(uri: str) -> str:
    """``uri`` without a user:password part, for messages."""
    parts = urllib.parse.urlsplit(uri)
    if parts.password is None and parts.username is None:
        return uri
    host = parts.hostname or ""
    netloc = f"***@{host}" + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def flag(opts: Mapping[str, str], key: str, default: bool) -> bool:
    value = opts.get(key)
    if value is None:
        return default
    if value.lower() in ("true", "1", "yes"):
        return True
    if value.lower() in ("false", "0", "no"):
        return False
    raise ConfigError(f"export.mlflow.{key}={value}: use true or false")


def flatten(data: Any, prefix: str) -> dict[str, str]:
    """Nested mappings as {"<prefix>.a.b": "value"}; lists and scalars as their text."""
    if isinstance(data, Mapping):
        out: dict[str, str] = {}
        for k, v in data.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {} if data is None or not prefix else {prefix: str(data)}


def metrics(scores: Sequence[Any]) -> dict[str, float]:
    found: dict[str, float] = {}
    for s in scores:
        name = sanitize(s.metric if s.score == s.metric else f"{s.metric}_{s.score}")
        found[name] = float(s.value)
        if s.stderr is not None:
            found[f"{name}_stderr"] = float(s.stderr)
    return found


def describe(run: Run, outcome: outcomes.TaskOutcome,
             user_tags: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """(params, tags) of one job's MLflow run."""
    found = outcomes.job_params(run, outcome.job_id)
    params = {k: str(v) for k, v in found.items() if k != "params"}
    params.update(flatten(found.get("params"), "params"))
    tags = {"eval_launcher.invocation_id": run.invocation_id, JOB_TAG: outcome.job_id,
            "eval_launcher.task": outcome.task, "eval_launcher.version": __version__}
    tags.update(flatten(run.record.user_provided_metadata, "user_provided_metadata"))
    tags.update(user_tags)
    return ({sanitize(k): v[:PARAM_MAX] for k, v in params.items()},
            {sanitize(k): v[:TAG_MAX] for k, v in tags.items()})


def probe(uri: str) -> None:
    """An http(s) tracking server answers ``/health`` within seconds, or one line (exit 3)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.scheme not in ("http", "https"):
        return
    # No credentials in the probe: /health is open; user:password is stripped from the URL.
    netloc = (parts.hostname or "") + (f":{parts.port}" if parts.port else "")
    if ":" in (parts.hostname or ""):
        netloc = f"[{parts.hostname}]" + (f":{parts.port}" if parts.port else "")
    url = urllib.parse.urlunsplit((parts.scheme, netloc, parts.path.rstrip("/") + "/health",
                                   "", ""))
    try:
        with urllib.request.urlopen(url, timeout=PROBE_TIMEOUT):  # noqa: S310 (http/https only)
            return
    except urllib.error.HTTPError:
        return  # it answers (a proxy may guard /health); the export's own calls tell the rest
    except (urllib.error.URLError, OSError, ValueError) as e:
        reason = getattr(e, "reason", None) or e
        raise EnvironmentProblem(
            f"the MLflow tracking server {shown_uri(uri)} is unreachable ({reason}): start it "
            "(mlflow server --host 127.0.0.1 --port 5000) or fix -o "
            "export.mlflow.tracking_uri=URL; the results are unchanged") from None



def export(output_dir: str, idents: Sequence[str], opts: Mapping[str, str]) -> int:
    uri = opts.get("tracking_uri") or os.environ.get("MLFLOW_TRACKING_URI") or ""
    if not uri:
        raise ConfigError("export.mlflow.tracking_uri is required: pass -o "
                          "export.mlflow.tracking_uri=http://HOST:5000 (or set "
                          "MLFLOW_TRACKING_URI)")
    log_artifacts = flag(opts, "log_artifacts", True)
    log_logs = flag(opts, "log_logs", False)
    user_tags = {k.removeprefix("tags."): v for k, v in opts.items() if k.startswith("tags.")}
    if "tags" in opts:
        raise ConfigError("export.mlflow.tags takes NAME=VALUE pairs: pass -o "
                          "export.mlflow.tags.NAME=VALUE")
    jobs, empty = outcomes.finished_jobs(output_dir, idents)  # resolved before anything is sent
    try:
        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient
    except ImportError:
        raise EnvironmentProblem(f"--dest mlflow needs the mlflow client: {INSTALL}") from None
    probe(uri)
    name = opts.get("experiment_name") or DEFAULT_EXPERIMENT
    created = updated = 0
    with exportopts.env_defaults(HTTP_ENV):
        try:
            client = MlflowClient(tracking_uri=uri)
            experiment = client.get_experiment_by_name(name)
            exp_id = (experiment.experiment_id if experiment is not None
                      else client.create_experiment(name))
            for run, outcome in jobs:
                new = _export_job(client, exp_id, run, outcome, user_tags,
                                  opts.get("description"), log_artifacts, log_logs)
                created += new
                updated += not new
        except MlflowException as e:
            raise EnvironmentProblem(_one_line(f"MLflow at {shown_uri(uri)} refused the "
                                               f"export: {e.message}")) from None
        except OSError as e:  # requests' ConnectionError is an OSError
            raise EnvironmentProblem(_one_line(
                f"the MLflow tracking server {shown_uri(uri)} failed during the export ({e}); "
                "check it and export again (runs are updated, not duplicated)")) from None
    print(f"exported {len(jobs)} job(s) to MLflow {shown_uri(uri)} experiment '{name}' "
          f"({created} runs created, {updated} updated)")
    for job_id in empty:
        print(f"skipped job {job_id}: no results.yml")
    return 0


def _export_job(client: Any, exp_id: str, run: Run, outcome: outcomes.TaskOutcome,
                user_tags: Mapping[str, str], description: str | None, log_artifacts: bool,
                log_logs: bool) -> bool:
    """Create or update the MLflow run of one job; True when it was created."""
    from mlflow.entities import Metric, Param, RunTag

    params, tags = describe(run, outcome, user_tags)
    if description:
        tags["mlflow.note.content"] = description[:TAG_MAX]
    found = client.search_runs([exp_id], filter_string=f"tags.`{JOB_TAG}` = "
                               f"'{outcome.job_id}'", max_results=1)
    if found:
        mlrun = found[0]
        run_id = mlrun.info.run_id
        old_params, old_metrics = mlrun.data.params, mlrun.data.metrics
    else:
        mlrun = client.create_run(exp_id, run_name=outcome.job_id, tags=tags)
        run_id = mlrun.info.run_id
        old_params, old_metrics = {}, {}
    stamp = int(mlrun.info.start_time or 0)
    # params cannot change once logged: only the new ones; metrics: only changed values.
    client.log_batch(
        run_id,
        metrics=[Metric(k, v, stamp, 0) for k, v in metrics(outcome.scores).items()
                 if old_metrics.get(k) != v],
        params=[Param(k, v) for k, v in params.items() if k not in old_params],
        tags=[RunTag(k, v) for k, v in tags.items()])
    for path, name in outcomes.job_files(run, outcome, log_artifacts, log_logs):
        client.log_artifact(run_id, path, os.path.dirname(name) or None)
    client.set_terminated(run_id, "FINISHED")
    return not found


def _one_line(text: str) -> str:
    return " ".join(text.split())[:600]
