"""Export to Weights & Biases: ``log_mode: per_task`` (default) makes one W&B run per job,
``multi_task`` one run per invocation holding every task's metrics. Works in W&B's offline
mode (``WANDB_MODE=offline`` or ``-o export.wandb.mode=offline``; the files go to
``$WANDB_DIR/wandb/offline-run-*``, uploaded later with ``wandb sync``).

Idempotent: a run's id is derived from the job id (``el-<invocation id>-<index>``) or the
invocation id (``el-<invocation id>``), and ``wandb.init(id=..., resume="allow")`` continues
that run instead of adding one; metrics go to the run's summary (set, not appended) and into
its history only when the run is new. Offline, where W&B cannot look the run up, an earlier
offline folder of the same run id that was never synced is replaced by the new one (a full
snapshot of the same run), so ``wandb sync`` still finds one run per job; one that was synced
stays, and the new folder resumes the same run when it is synced.

Metrics: ``<task>/<metric>`` (``<task>/<metric>_<score>`` when a metric has several scores)
with ``<name>_stderr``; config: invocation and job id, task, model id, endpoint url, the
task's params, user_provided_metadata and ``extra_metadata``. wandb is imported here only,
and only when exporting; WANDB_API_KEY is read by wandb from the environment, never written
or printed. Nothing in the invocation folder is written."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sys
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from launcher import __version__, outcomes
from launcher.errors import ConfigError, EnvironmentProblem
from launcher.exportopts import env_defaults, flag, names
from launcher.runs import Run

INSTALL = "pip install 'eval-launcher[wandb]'"
DEFAULT_PROJECT = "eval-launcher"
LOG_MODES = ("per_task", "multi_task")
MODES = ("online", "offline")
QUIET_ENV = {"WANDB_SILENT": "true", "WANDB_CONSOLE": "off", "WANDB_INIT_TIMEOUT": "30"}
_ID_BAD = re.compile(r"[^A-Za-z0-9_-]")


@attrs.frozen
class WandbRun:
    """One W&B run to write: its id, name, config and metrics."""

    run_id: str
    name: str
    config: dict[str, Any]
    metrics: dict[str, float]
    files: tuple[tuple[str, str], ...]  # (path on disk, name in the artifact)
    artifact: str  # the artifact's name


def run_id(ident: str) -> str:
    """A W&B run id for a job id (``3f9a.0`` → ``el-3f9a-0``) or an invocation id."""
    return "el-" + _ID_BAD.sub("-", ident)[:60]


def metric_names(outcome: outcomes.TaskOutcome, wanted: Sequence[str]) -> dict[str, float]:
    """``<task>/<metric>[_<score>]`` and ``..._stderr``; with ``wanted``, only the scores
    whose metric or score name contains one of those words."""
    found: dict[str, float] = {}
    for s in outcome.scores:
        if wanted and not any(w in s.metric or w in s.score for w in wanted):
            continue
        name = f"{outcome.task}/" + (s.metric if s.score == s.metric else f"{s.metric}_{s.score}")
        found[name] = float(s.value)
        if s.stderr is not None:
            found[f"{name}_stderr"] = float(s.stderr)
    return found


def _files(run: Run, outcome: outcomes.TaskOutcome, artifacts: bool, logs: bool,
           prefix: str) -> list[tuple[str, str]]:
    return [(path, f"{prefix}{name}")
            for path, name in outcomes.job_files(run, outcome, artifacts, logs)]


def plan(jobs: Sequence[tuple[Run, outcomes.TaskOutcome]], opts: Mapping[str, str]
         ) -> list[WandbRun]:
    """The W&B runs that exporting ``jobs`` writes (pure: reads the output folder only)."""
    mode = opts.get("log_mode") or "per_task"
    if mode not in LOG_MODES:
        raise ConfigError(f"export.wandb.log_mode={mode}: use per_task or multi_task")
    wanted = names(opts.get("log_metrics"))
    artifacts = flag("wandb", opts, "log_artifacts", True)
    logs = flag("wandb", opts, "log_logs", False)
    extra = {k.removeprefix("extra_metadata."): v for k, v in opts.items()
             if k.startswith("extra_metadata.")}
    if "extra_metadata" in opts:
        raise ConfigError("export.wandb.extra_metadata takes NAME=VALUE pairs: pass -o "
                          "export.wandb.extra_metadata.NAME=VALUE")
    planned: list[WandbRun] = []
    if mode == "per_task":
        for run, outcome in jobs:
            config: dict[str, Any] = {"invocation_id": run.invocation_id,
                                      "job_id": outcome.job_id,
                                      **outcomes.job_params(run, outcome.job_id)}
            config["task"] = outcome.task
            planned.append(WandbRun(
                run_id(outcome.job_id), opts.get("name") or outcome.job_id,
                _common(run, config, extra), metric_names(outcome, wanted),
                tuple(_files(run, outcome, artifacts, logs, "")), f"results-{outcome.job_id}"))
        return planned
    by_invocation: dict[str, Run] = {}
    for run, _ in jobs:
        by_invocation.setdefault(run.invocation_id, run)
    for inv_id, run in by_invocation.items():
        # every finished job of the invocation, so the run is a full snapshot however many
        # of its jobs were named
        done = [o for o in outcomes.task_outcomes(run).values() if o.scores]
        metrics: dict[str, float] = {}
        files: list[tuple[str, str]] = []
        tasks: dict[str, Any] = {}
        for outcome in done:
            metrics.update(metric_names(outcome, wanted))
            files += _files(run, outcome, artifacts, logs, f"{outcome.task}/")
            tasks[outcome.task] = {"job_id": outcome.job_id,
                                   **outcomes.job_params(run, outcome.job_id)}
        first: dict[str, Any] = next(iter(tasks.values()), {})
        config = {"invocation_id": inv_id, "model_id": first.get("model_id", ""),
                  "endpoint_url": first.get("endpoint_url", ""), "tasks": tasks}
        planned.append(WandbRun(run_id(inv_id), opts.get("name") or inv_id,
                                _common(run, config, extra), metrics, tuple(files),
                                f"results-{inv_id}"))
    return planned


def _common(run: Run, config: dict[str, Any], extra: Mapping[str, str]) -> dict[str, Any]:
    config["launcher_version"] = __version__
    if run.record.user_provided_metadata:
        config["user_provided_metadata"] = run.record.user_provided_metadata
    if extra:
        config["extra_metadata"] = dict(extra)
    return config


def wandb_mode(opts: Mapping[str, str]) -> str:
    """export.wandb.mode, else $WANDB_MODE (wandb's own values), else online."""
    mode = opts.get("mode")
    if mode:
        if mode not in MODES:
            raise ConfigError(f"export.wandb.mode={mode}: use online or offline")
        return mode
    mode = os.environ.get("WANDB_MODE") or "online"
    if mode not in (*MODES, "dryrun", "disabled"):
        raise ConfigError(f"WANDB_MODE={mode}: use online or offline (or unset it)")
    return "offline" if mode == "dryrun" else mode


def offline(opts: Mapping[str, str]) -> bool:
    return wandb_mode(opts) == "offline"


def export(output_dir: str, idents: Sequence[str], opts: Mapping[str, str]) -> int:
    mode = wandb_mode(opts)
    jobs, empty = outcomes.finished_jobs(output_dir, idents)  # resolved before anything is sent
    planned = plan(jobs, opts)
    # read here, not left to wandb: its settings are read once per process (wandb.setup)
    folder = opts.get("dir") or os.environ.get("WANDB_DIR") or None
    if folder and not os.path.isdir(folder):
        raise ConfigError(f"export.wandb.dir {folder} does not exist: create it, or pass -o "
                          "export.wandb.dir=DIR (or set WANDB_DIR)")
    try:
        import wandb
    except ImportError:
        raise EnvironmentProblem(f"--dest wandb needs the wandb client: {INSTALL}") from None
    project = opts.get("project") or DEFAULT_PROJECT
    created = resumed = 0
    where = mode
    hint = ("check export.wandb.dir and the disk" if mode == "offline" else
            "set WANDB_API_KEY (or `wandb login`), or export offline with -o "
            "export.wandb.mode=offline")
    with _quiet_env(), _torn_down(wandb):
        for item in planned:
            try:
                new, sync_dir = _write(wandb, item, opts, project, folder)
            except Exception as e:  # wandb's errors: auth, network, a bad entity or project
                raise EnvironmentProblem(_one_line(
                    f"W&B ({where}) refused the export of run {item.run_id}: "
                    f"{type(e).__name__}: {e}; {hint} (the results are unchanged)")
                ) from None
            if offline(opts) and sync_dir:
                _drop_earlier_offline(Path(sync_dir), item.run_id)
            created += new
            resumed += not new
    tail = (f"; offline files under {_offline_root(folder)}, upload with `wandb sync`"
            if offline(opts) else "")
    print(f"exported {len(jobs)} job(s) to W&B project '{project}' ({where}, "
          f"{opts.get('log_mode') or 'per_task'}: {created} runs created, {resumed} "
          f"resumed){tail}")
    for job_id in empty:
        print(f"skipped job {job_id}: no results.yml")
    return 0


def _write(wandb: Any, item: WandbRun, opts: Mapping[str, str], project: str,
           folder: str | None) -> tuple[bool, str | None]:
    """Create or resume one W&B run; (created, its local folder)."""
    settings = wandb.Settings(console="off", silent=True, x_disable_stats=True,
                              x_disable_meta=True, disable_git=True, save_code=False,
                              disable_job_creation=True, x_save_requirements=False)
    tags = names(opts.get("tags")) or None
    run = wandb.init(id=item.run_id, resume="allow", project=project,
                     entity=opts.get("entity") or None, name=item.name,
                     group=opts.get("group") or None,
                     job_type=opts.get("job_type") or "evaluation", tags=tags,
                     notes=opts.get("description") or None, config=item.config,
                     mode=wandb_mode(opts), dir=folder,
                     settings=settings)
    try:
        new = not run.resumed
        if new and item.metrics:
            run.log(item.metrics, step=0)
        run.summary.update(item.metrics)
        if tags:
            run.tags = tuple(tags)
        if item.files:
            artifact = wandb.Artifact(item.artifact, type="evaluation")
            for path, name in item.files:
                artifact.add_file(path, name=name, policy="immutable")
            run.log_artifact(artifact)
        sync_dir = getattr(run.settings, "sync_dir", None)
    except BaseException:
        run.finish(exit_code=1)
        raise
    run.finish()
    return new, sync_dir


def _offline_root(folder: str | None) -> str:
    base = folder or os.environ.get("WANDB_DIR") or "."
    return os.path.join(base, "wandb")


def _drop_earlier_offline(current: Path, ident: str) -> None:
    """Remove the never-synced offline folders of run ``ident`` other than ``current``: the
    new one holds everything they held, for the same run."""
    pattern = re.compile(rf"offline-run-\d{{8}}_\d{{6}}-{re.escape(ident)}(-\d+)?")
    for other in current.parent.iterdir():
        if other == current or not other.is_dir() or not pattern.fullmatch(other.name):
            continue
        log = other / f"run-{ident}.wandb"
        if log.is_file() and not (other / f"run-{ident}.wandb.synced").exists():
            shutil.rmtree(other, ignore_errors=True)


@contextlib.contextmanager
def _torn_down(wandb: Any) -> Iterator[None]:
    """wandb's service process and process-wide settings end with the export, so a later
    export in the same process (auto-export after each run) reads its environment anew."""
    try:
        yield
    finally:
        with contextlib.suppress(Exception):
            wandb.teardown()


@contextlib.contextmanager
def _quiet_env() -> Iterator[None]:
    """No W&B banner or prompt while exporting, and an unreachable W&B server fails in 30 s,
    not wandb's 90 (a value set by the user wins)."""
    with env_defaults(QUIET_ENV), contextlib.redirect_stdout(sys.stderr):
        yield


def _one_line(text: str) -> str:
    return " ".join(text.split())[:600]
