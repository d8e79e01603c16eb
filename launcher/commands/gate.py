"""`launcher gate CANDIDATE`: thresholds → GO (exit 0) / NO-GO (1) / INCONCLUSIVE (4);
config errors exit 2, environment errors 3. Writes JUnit XML and the GitHub job summary."""

from __future__ import annotations

import json
import os

import yaml

from launcher import gate_eval, gate_policy, gate_render, safe_fs, yamlfile
from launcher.commands.compare import load_outcomes
from launcher.errors import ConfigError, EnvironmentProblem

SUMMARY_ENV = "GITHUB_STEP_SUMMARY"


def load_policy(path: str | None) -> gate_policy.Policy:
    if path is None:
        return gate_policy.Policy()
    if not os.path.isfile(path):
        raise ConfigError(f"policy file {path} does not exist: pass --policy FILE.yaml")
    try:
        data = yamlfile.read(path)
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ConfigError(f"cannot read the policy: {first}; fix the YAML", source=path) from None
    return gate_policy.parse(data, path)


def gate(output_dir: str, candidate: str, baseline: str | None, min_score: float | None,
         max_drop: float | None, policy_file: str | None, junit: str | None,
         as_json: bool) -> int:
    policy = gate_policy.with_flags(load_policy(policy_file), min_score, max_drop)
    if policy.empty:
        raise ConfigError("the gate has nothing to check: pass --min-score, --max-drop "
                          "(with --baseline) or --policy FILE")
    cand_run, cand_tasks = load_outcomes(output_dir, candidate)
    base_id, base_tasks = None, None
    if baseline is not None:
        base_run, base_tasks = load_outcomes(output_dir, baseline)
        base_id = base_run.invocation_id
    result = gate_eval.evaluate(policy, cand_run.invocation_id, cand_tasks, base_id,
                                base_tasks)
    if junit:
        _write(junit, gate_render.render_junit(result), "--junit")
    summary = os.environ.get(SUMMARY_ENV)
    if summary:
        _append(summary, gate_render.render_markdown(result))
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(gate_render.render_text(result))
    return result.verdict.exit_code


def _write(path: str, text: str, what: str) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ConfigError(f"{what} {path}: folder {folder} does not exist; create it first")
    try:
        safe_fs.write_atomic(path, text)
    except OSError as e:
        raise EnvironmentProblem(f"cannot write {what} {path}: {e.strerror or e}") from None


def _append(path: str, text: str) -> None:
    try:
        with safe_fs.open_append(path) as fh:
            fh.write(text.encode("utf-8"))
    except OSError as e:
        raise EnvironmentProblem(f"cannot append the job summary to ${SUMMARY_ENV} ({path}): "
                                 f"{e.strerror or e}") from None
